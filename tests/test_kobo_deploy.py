"""Deploying to the fake Kobo server on loopback, and writing the asset uid back into the config."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fakes.kobo_server import FakeKobo
from kobo_tip import cli
from kobo_tip.config import load_settings
from kobo_tip.config_file import save_asset_uid
from kobo_tip.errors import ConfigError, ServerError
from kobo_tip.sources.base import FormFiles
from kobo_tip.sources.kobo import KoboSource


@pytest.fixture
def kobo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKobo]:
    with FakeKobo(import_polls=2) as fake:
        monkeypatch.setenv("KOBO_TOKEN", fake.token)
        monkeypatch.setattr("kobo_tip.sources.kobo.time.sleep", lambda seconds: None)
        yield fake


@pytest.fixture
def form(tmp_path: Path) -> FormFiles:
    xlsx = tmp_path / "tip_victims.xlsx"
    xlsx.write_bytes(b"PK\x03\x04 an xlsx stands here")
    return FormFiles("tip_victims", "Victims", "20260101000000", xlsx, tmp_path / "tip_victims.xml")


def _source(kobo: FakeKobo, uid: str = "") -> KoboSource:
    return KoboSource(url=kobo.url, asset_uid=uid, timeout=(2, 5), backoff=0.01)


def _calls(kobo: FakeKobo) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in kobo.requests]


def test_first_deploy_creates_a_survey_and_deploys_it_active(kobo: FakeKobo, form: FormFiles) -> None:
    result = _source(kobo).deploy(form)
    asset = kobo.assets[result.uid]
    assert asset.asset_type == "survey"  # library=false was sent
    assert asset.deployed_version_id == asset.version_id == result.version
    assert asset.active
    assert result.url == f"{kobo.url}/api/v2/assets/{result.uid}/"
    assert result.enketo_url == f"https://ee.example.org/x/{result.uid}"
    calls = _calls(kobo)
    assert calls.count(("GET", "/api/v2/imports/i000000000000000000001/")) == 3  # polled until complete
    assert calls[-1] == ("POST", f"/api/v2/assets/{result.uid}/deployment/")
    assert all(path.endswith("/") for _, path in calls)


def test_redeploy_replaces_the_configured_asset_and_deploys_the_new_version(
    kobo: FakeKobo, form: FormFiles
) -> None:
    asset = kobo.assets[kobo.asset_uid]
    before = asset.deployed_version_id
    result = _source(kobo, kobo.asset_uid).deploy(form)
    assert result.uid == kobo.asset_uid
    assert asset.deployed_version_id == asset.version_id == result.version != before
    assert _calls(kobo)[-1] == ("PATCH", f"/api/v2/assets/{kobo.asset_uid}/deployment/")
    assert len(kobo.assets) == 2  # no new asset was created


def test_import_error_is_shown_verbatim_and_nothing_is_deployed(kobo: FakeKobo, form: FormFiles) -> None:
    kobo.import_error = {"error": "Duplicate node name: 'gender'", "error_type": "DuplicateNameException"}
    with pytest.raises(ServerError, match="DuplicateNameException: Duplicate node name: 'gender'"):
        _source(kobo).deploy(form)
    assert not any("deployment" in path for _, path in _calls(kobo))


def test_a_file_that_is_not_xlsx_fails_at_import(kobo: FakeKobo, form: FormFiles) -> None:
    form.xlsx_path.write_text("survey,type\n", encoding="utf-8")
    with pytest.raises(ServerError, match="xls upload must have one of these sheets"):
        _source(kobo).deploy(form)


def test_deploy_error_is_shown_verbatim(kobo: FakeKobo, form: FormFiles) -> None:
    kobo.deploy_error = "The survey element named 'event_date' has no label or hint."
    with pytest.raises(ServerError) as caught:
        _source(kobo, kobo.asset_uid).deploy(form)
    assert str(caught.value).endswith(": The survey element named 'event_date' has no label or hint.")
    assert caught.value.status == 400


def test_deploy_to_an_unknown_asset_names_it(kobo: FakeKobo, form: FormFiles) -> None:
    with pytest.raises(ServerError, match="user cannot update asset"):
        _source(kobo, "aMissing").deploy(form)


def test_list_assets_lists_only_surveys(kobo: FakeKobo) -> None:
    kobo.add_submissions(3)
    assets = _source(kobo).list_assets()
    assert assets == [
        {
            "uid": kobo.asset_uid,
            "name": "Victims identified or referred",
            "deployment_status": "deployed",
            "submission_count": "3",
        }
    ]


# --- the asset uid written back into the config ---------------------------------------------------

CONFIG = """# top comment
[project]
name = "P"  # project name

[source]
# which server
kind = "kobo"
url = "https://kf.kobotoolbox.org"
asset_uid = ""   # filled by --save-uid
token_env = "KOBO_TOKEN"

[store]
path = "data/x.sqlite"
"""


def test_save_asset_uid_replaces_the_value_and_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "kobo-tip.toml"
    path.write_text(CONFIG, encoding="utf-8")
    path.chmod(0o640)
    save_asset_uid(path, "aNewUid123")
    text = path.read_text(encoding="utf-8")
    assert text == CONFIG.replace('asset_uid = ""   #', 'asset_uid = "aNewUid123"   #')
    assert tomllib.loads(text)["source"]["asset_uid"] == "aNewUid123"
    assert path.stat().st_mode & 0o777 == 0o640
    save_asset_uid(path, "aSecond")
    assert tomllib.loads(path.read_text(encoding="utf-8"))["source"]["asset_uid"] == "aSecond"


def test_save_asset_uid_adds_the_key_or_the_table_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "kobo-tip.toml"
    path.write_text(CONFIG.replace('asset_uid = ""   # filled by --save-uid\n', ""), encoding="utf-8")
    save_asset_uid(path, "aAdded")
    parsed = tomllib.loads(path.read_text(encoding="utf-8"))
    assert parsed["source"]["asset_uid"] == "aAdded" and parsed["store"] == {"path": "data/x.sqlite"}
    path.write_text('[project]\nname = "P"', encoding="utf-8")
    save_asset_uid(path, "aTable")
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {
        "project": {"name": "P"},
        "source": {"asset_uid": "aTable"},
    }


def test_save_asset_uid_refuses_what_it_cannot_write_safely(tmp_path: Path) -> None:
    path = tmp_path / "kobo-tip.toml"
    path.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(ConfigError, match="not a KoboToolbox asset uid"):
        save_asset_uid(path, 'a" \nkind = "file')
    path.write_text(CONFIG.replace('asset_uid = ""', "asset_uid = 5"), encoding="utf-8")
    with pytest.raises(ConfigError, match="by hand"):
        save_asset_uid(path, "aUid")
    assert "asset_uid = 5" in path.read_text(encoding="utf-8")  # left untouched


def test_cli_form_deploy_save_uid_end_to_end(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_project(
        source=f'kind = "kobo"\nurl = "{kobo.url}"\nasset_uid = ""\ntoken_env = "KOBO_TOKEN"'
    )
    code = cli.main(["form", "deploy", "-c", str(config), "--save-uid"])
    out = capsys.readouterr()
    assert code == 0, out.err
    uid = load_settings(config).source.asset_uid
    assert uid in kobo.assets and kobo.assets[uid].active
    assert f"https://ee.example.org/x/{uid}" in out.out
    assert kobo.token not in out.out + out.err
    # The upload was the xlsx the build wrote.
    assert (config.parent / "forms" / "tip_victims.xlsx").read_bytes()[:2] == b"PK"
