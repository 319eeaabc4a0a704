"""`kobo-tip form deploy` to a fake ODK Central: create, new drafts, warnings, versions, attachments."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from fakes.central_server import FakeCentral
from fakes.fixtures import CENTRAL_EMAIL_ENV, CENTRAL_PASSWORD_ENV
from kobo_tip.cli import main
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import ServerError, SourceError
from kobo_tip.form import build_form
from kobo_tip.sources.base import FormFiles
from kobo_tip.sources.odk_central import CentralSource

REPO = Path(__file__).resolve().parents[1]
WARNING = "Languages 'English' are missing a language code: use 'English (en)'."


@pytest.fixture
def config(make_project: Callable[..., Path], central: FakeCentral) -> Path:
    return make_project(
        source=(
            f'kind = "odk_central"\nurl = "{central.url}"\nproject_id = {central.project_id}\n'
            f'username_env = "{CENTRAL_EMAIL_ENV}"\npassword_env = "{CENTRAL_PASSWORD_ENV}"'
        )
    )


@pytest.fixture
def settings(config: Path) -> Settings:
    return load_settings(config)


@pytest.fixture(scope="module")
def form_once(tmp_path_factory: pytest.TempPathFactory) -> FormFiles:
    """One build of the example form for the module (ODK Validate takes seconds)."""
    return build_form(
        load_settings(REPO / "config.example.toml"), out_dir=tmp_path_factory.mktemp("form")
    ).files


@pytest.fixture
def built(form_once: FormFiles, tmp_path: Path) -> FormFiles:
    """A private copy of the built form, in a folder of its own."""
    folder = tmp_path / "built"
    folder.mkdir()
    xlsx = Path(shutil.copy(form_once.xlsx_path, folder))
    xml = Path(shutil.copy(form_once.xml_path, folder))
    return dataclasses.replace(form_once, xlsx_path=xlsx, xml_path=xml)


def source_for(settings: Settings) -> CentralSource:
    return dataclasses.replace(CentralSource.from_settings(settings), retries=0, backoff=0.0)


def calls(central: FakeCentral) -> list[str]:
    return [f"{method} {path}" for method, path, _ in central.requests if not path.startswith("/v1/sessions")]


def test_first_and_second_deploy_through_the_command(
    central: FakeCentral, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["form", "deploy", "-c", str(config)]) == 0
    form = central.forms["tip_victims"]
    assert len(form.published_versions) == 1 and form.version == form.published_versions[0]
    forms = f"/v1/projects/{central.project_id}/forms"
    assert calls(central) == [
        f"GET {forms}/tip_victims",  # 404: not there yet
        f"POST {forms}",
        f"GET {forms}/tip_victims/draft.xml",  # the draft is the XForm built, or nothing is published
        f"GET {forms}/tip_victims/draft/attachments",
        f"POST {forms}/tip_victims/draft/publish",
        f"GET {forms}/tip_victims",
    ]
    assert central.requests[-1][:2] == ("DELETE", "/v1/sessions/current") and central.tokens == {}
    publish = next(query for method, path, query in central.requests if path.endswith("/publish"))
    assert publish == {}, "the XForm carries its version: Central must not rewrite it"
    built_xml = (config.parent / "forms" / "tip_victims.xml").read_bytes()
    assert served_xform(central, "tip_victims.xml") == built_xml
    out = capsys.readouterr().out
    assert f"deployed tip_victims version {form.version}" in out
    assert f"{central.url}/-/{form.enketo_id}" in out

    central.requests.clear()
    assert main(["form", "deploy", "-c", str(config)]) == 0
    assert len(form.published_versions) == 2 and form.published_versions[1] > form.published_versions[0]
    assert f"POST {forms}/tip_victims/draft" in calls(central)
    assert f"POST {forms}" not in calls(central)


def test_warnings_fail_the_deploy_unless_ignored(
    central: FakeCentral, config: Path, built: FormFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    central.form_warnings = [WARNING]  # an XForm is not converted: pyxform's warnings never come
    central.workflow_warnings = [{"type": "deletedFormExists", "details": {"xmlFormId": "tip_victims"}}]
    with pytest.raises(ServerError) as caught:
        source_for(load_settings(config)).deploy(built)
    assert "400.16" in str(caught.value) and "deletedFormExists" in str(caught.value)
    assert WARNING not in str(caught.value)
    assert "--ignore-warnings" in str(caught.value)
    assert "tip_victims" not in central.forms

    assert main(["form", "deploy", "-c", str(config), "--ignore-warnings"]) == 0
    refused, created = [q for m, p, q in central.requests if m == "POST" and p.endswith("/forms")]
    assert "ignoreWarnings" not in refused and created["ignoreWarnings"] == ["true"]
    assert central.forms["tip_victims"].published_versions


def served_xform(central: FakeCentral, path: str) -> bytes:
    """What Central serves at ``.../forms/<path>``, asked over HTTP as Collect would."""
    login = requests.post(
        f"{central.url}/v1/sessions", json={"email": central.email, "password": central.password}, timeout=5
    )
    answer = requests.get(
        f"{central.url}/v1/projects/{central.project_id}/forms/{path}",
        headers={"Authorization": f"Bearer {login.json()['token']}"},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/xml")
    return answer.content


def test_the_validated_xform_goes_up_and_is_what_central_serves(
    central: FakeCentral, settings: Settings, built: FormFiles
) -> None:
    built.xlsx_path.unlink()  # never read: Central gets the XForm, not the XLSForm to convert
    result = source_for(settings).deploy(built)
    form = central.forms["tip_victims"]
    assert result.uid == "tip_victims" and result.version == built.version == form.version
    assert result.url == f"{central.url}/#/projects/1/forms/tip_victims"
    assert result.enketo_url == f"{central.url}/-/{form.enketo_id}"
    assert form.name == settings.form.title  # the XForm's <h:title>
    assert served_xform(central, "tip_victims.xml") == built.xml_path.read_bytes()
    # The XForm's root is the form's own name, as ODK Validate and the Web Forms engine checked it.
    assert b"<tip_victims " in form.xml and b"<data " not in form.xml  # type: ignore[operator]


def test_a_draft_central_changed_is_not_published(
    central: FakeCentral, settings: Settings, built: FormFiles
) -> None:
    central.managed_key = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"  # managed encryption on
    with pytest.raises(SourceError, match=r"not published; .*managed encryption.*a project without it"):
        source_for(settings).deploy(built)
    form = central.forms["tip_victims"]
    assert form.published_versions == [] and form.xml is None


def test_a_version_published_before_is_refused_with_its_code(
    central: FakeCentral, settings: Settings, built: FormFiles
) -> None:
    source = source_for(settings)
    source.deploy(built)
    with pytest.raises(ServerError, match=r"error 409\.6.*kobo-tip form build") as caught:
        source.deploy(built)
    assert caught.value.status == 409
    assert central.forms["tip_victims"].published_versions == [built.version]


def test_without_the_built_xform_nothing_is_sent(
    central: FakeCentral, settings: Settings, built: FormFiles
) -> None:
    built.xml_path.unlink()
    with pytest.raises(SourceError, match="kobo-tip form build"):
        source_for(settings).deploy(built)
    assert calls(central) == []


def test_attachments_the_draft_expects_are_uploaded(
    central: FakeCentral, settings: Settings, built: FormFiles
) -> None:
    central.attachments_expected = ("villages.csv",)
    source = source_for(settings)
    with pytest.raises(SourceError, match=r"villages\.csv"):
        source.deploy(built)
    (built.xml_path.parent / "villages.csv").write_text("name,label\nv1,Village 1\n", encoding="utf-8")
    result = source.deploy(built)  # the form exists now (as a draft): a new draft, then publish
    form = central.forms["tip_victims"]
    assert form.attachments_uploaded == {"villages.csv": b"name,label\nv1,Village 1\n"}
    assert form.published_versions == [built.version]
    assert "uploaded attachment villages.csv" in result.messages
    uploads = [p for m, p, _ in central.requests if m == "POST" and "/draft/attachments/" in p]
    assert uploads == ["/v1/projects/1/forms/tip_victims/draft/attachments/villages.csv"]


def test_a_form_id_other_than_the_source_is_refused(settings: Settings, built: FormFiles) -> None:
    with pytest.raises(SourceError, match="form_id"):
        source_for(settings).deploy(dataclasses.replace(built, form_id="other"))


def test_list_assets_shows_the_project_forms(
    central: FakeCentral,
    config: Path,
    settings: Settings,
    built: FormFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = source_for(settings)
    source.deploy(built)
    assert source.list_assets() == [
        {
            "uid": "tip_victims",
            "name": settings.form.title,
            "deployment_status": "open",
            "submission_count": "0",
        }
    ]
    capsys.readouterr()
    assert main(["status", "-c", str(config), "--assets"]) == 0
    out = capsys.readouterr().out
    assert "1 form(s)" in out and "uid=tip_victims" in out and "deployment_status=open" in out
