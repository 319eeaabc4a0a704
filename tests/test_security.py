"""Attacks on kobo-tip as a hostile server and a careless config would make them, on loopback.

A second listener stands at another origin and records every request that reaches it: a server
that points kobo-tip there (a ``next`` page, an import ``url``, a redirected login) must get an
error naming it, and the listener nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import grp
import json
import os
import sqlite3
import stat
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import version_2_store
from fakes.central_server import FakeCentral
from fakes.fixtures import CENTRAL_EMAIL_ENV, CENTRAL_PASSWORD_ENV
from fakes.kobo_server import FakeKobo
from fakes.listener import Listener
from kobo_tip.cli import main
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import ConfigError, ServerError
from kobo_tip.labels import TRANSLATIONS_DIR, load_labels
from kobo_tip.report import render_reports
from kobo_tip.rows import recognise_project_labels, stored_json
from kobo_tip.serve.intake import PushRefused, read_push
from kobo_tip.sources.base import FormFiles
from kobo_tip.sources.kobo import KoboSource
from kobo_tip.sources.odk_central import CentralSource
from kobo_tip.store import SqliteStore, open_store
from kobo_tip.sync import run_sync
from test_files_source import GROUPS, answers, kobo_submission


@pytest.fixture
def kobo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKobo]:
    with FakeKobo(import_polls=1) as fake:
        monkeypatch.setenv("KOBO_TOKEN", fake.token)
        monkeypatch.setattr("kobo_tip.sources.kobo.time.sleep", lambda seconds: None)
        yield fake


def kobo_config(make_project: Callable[..., Path], kobo: FakeKobo) -> Path:
    return make_project(source=f'kind = "kobo"\nurl = "{kobo.url}"\nasset_uid = "{kobo.asset_uid}"')


def test_an_asset_list_whose_next_page_is_elsewhere_is_refused(
    kobo: FakeKobo, listener: Listener, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(120):  # more than one page of 100
        kobo.assets[f"aSurvey{number:015d}"] = dataclasses.replace(
            kobo.assets[kobo.asset_uid], uid=f"aSurvey{number:015d}"
        )
    kobo.foreign_links = listener.url
    assert main(["status", "--assets", "-c", str(kobo_config(make_project, kobo))]) == 1
    err = capsys.readouterr().err
    assert listener.url.removeprefix("http://") in err and "not the configured" in err
    assert listener.received == []


def test_an_import_whose_status_url_is_elsewhere_is_refused(
    kobo: FakeKobo, listener: Listener, tmp_path: Path
) -> None:
    xlsx = tmp_path / "tip_victims.xlsx"
    xlsx.write_bytes(b"PK\x03\x04 an xlsx stands here")
    form = FormFiles("tip_victims", "Victims", "20260101000000", xlsx, tmp_path / "tip_victims.xml")
    kobo.foreign_links = listener.url
    source = KoboSource(url=kobo.url, asset_uid=kobo.asset_uid, timeout=(2, 5), backoff=0.01)
    with pytest.raises(ServerError, match="not the configured"):
        source.deploy(form)
    assert listener.received == []


@pytest.mark.parametrize(("status", "host"), [(307, "127.0.0.1"), (308, "127.0.0.2"), (302, "127.0.0.1")])
def test_a_login_redirected_elsewhere_never_sends_the_password(
    central: FakeCentral, make_project: Callable[..., Path], status: int, host: str
) -> None:
    with Listener(host) as other:
        central.login_redirect = (status, f"{other.url}/v1/sessions")
        config = make_project(
            source=(
                f'kind = "odk_central"\nurl = "{central.url}"\nproject_id = {central.project_id}\n'
                f'username_env = "{CENTRAL_EMAIL_ENV}"\npassword_env = "{CENTRAL_PASSWORD_ENV}"'
            )
        )
        source = dataclasses.replace(
            CentralSource.from_settings(load_settings(config)), retries=0, backoff=0.0
        )
        with pytest.raises(ServerError, match="not the configured"):
            source.list_assets()
    assert other.received == []


def test_a_login_redirected_on_the_same_server_is_not_sent_again(
    central: FakeCentral, make_project: Callable[..., Path]
) -> None:
    central.login_redirect = (307, f"{central.url}/v1/sessions2")
    config = make_project(
        source=(
            f'kind = "odk_central"\nurl = "{central.url}"\nproject_id = {central.project_id}\n'
            f'username_env = "{CENTRAL_EMAIL_ENV}"\npassword_env = "{CENTRAL_PASSWORD_ENV}"'
        )
    )
    source = dataclasses.replace(CentralSource.from_settings(load_settings(config)), retries=0, backoff=0.0)
    with pytest.raises(ServerError, match="never sends a request body"):
        source.list_assets()
    assert [path for method, path, _ in central.requests if method == "POST"] == ["/v1/sessions"]


@pytest.mark.parametrize("kind", ["kobo", "odk_central"])
def test_credentials_written_in_the_url_are_refused_and_never_printed(
    kind: str, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_project(
        source=f'kind = "{kind}"\nurl = "http://alice:PASS-in-url@kobo.example.org"\nproject_id = 1'
    )
    with pytest.raises(ConfigError, match="environment variable") as caught:
        load_settings(config)
    assert "PASS-in-url" not in str(caught.value)
    assert main(["status", "-c", str(config)]) == 2
    out, err = capsys.readouterr()
    assert "PASS-in-url" not in out + err and "alice" not in out + err


# --- name codes never reach the disk ------------------------------------------------------------

CANARY = ("ჯჰჯ", "ꝏꝏꝏ")  # UIC parts no real answer and no report text holds
CANARY_BYTES = [
    form
    for text in CANARY
    for form in (text.encode("utf-8"), json.dumps(text).encode("ascii").strip(b'"'), text.encode("utf-16-le"))
]


def answers_with_canary(sid: int) -> dict[str, str]:
    return {**answers(sid), "uic_given": CANARY[0], "uic_mother": CANARY[1]}


def styled(sid: int, separator: str) -> dict[str, Any]:
    """A submission whose group paths are written with ``separator``."""
    data = {k: v for k, v in kobo_submission(sid).items() if "/" not in k or k.startswith("meta/")}
    for name, value in answers_with_canary(sid).items():
        data[f"{GROUPS[name].replace('/', separator)}{separator}{name}"] = value
    return data


def nested(sid: int) -> dict[str, Any]:
    """ODK Central's shape: groups as objects, the person group repeated as a list."""
    groups: dict[str, dict[str, str]] = {}
    for name, value in answers_with_canary(sid).items():
        groups.setdefault(GROUPS[name].split("/")[0], {})[name] = value
    person = groups.pop("person")
    return {"__id": f"uuid:{sid}", "meta": {"instanceID": f"uuid:{sid}"}, **groups, "person": [person]}


def write_rows(settings: Settings, rows: list[dict[str, Any]]) -> None:
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    settings.source.path.write_text(json.dumps(rows), encoding="utf-8")


def scan(paths: list[Path]) -> list[str]:
    hits = []
    for path in paths:
        data = path.read_bytes()
        hits += [f"{path.name}: {form!r}" for form in CANARY_BYTES if form in data]
    return hits


def every_file(settings: Settings) -> list[Path]:
    store = settings.store.path
    files = [p for p in store.parent.glob(store.name + "*") if p.is_file()]
    return files + [p for p in settings.report.out_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "style",
    ["kobo json", "central json (groups nested, a repeat)", "csv /", "csv -", "csv .", "csv :"],
)
def test_name_codes_in_every_key_style_reach_no_byte_on_disk(
    style: str, make_project: Callable[..., Path], secret: str
) -> None:
    settings = load_settings(
        make_project(report='out_dir = "reports"\naudiences = ["internal", "donor", "public"]')
    )
    assert settings.source.path is not None
    path = settings.source.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "kobo json":
        path.write_text(json.dumps([styled(sid, "/") for sid in range(1, 40)]), encoding="utf-8")
    elif style.startswith("central"):
        path.write_text(json.dumps({"value": [nested(sid) for sid in range(1, 40)]}), encoding="utf-8")
    else:
        rows = [styled(sid, style[-1]) for sid in range(1, 40)]
        path = path.with_suffix(".csv")
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(
                {k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()} for row in rows
            )
        settings = dataclasses.replace(settings, source=dataclasses.replace(settings.source, path=path))
    summary = run_sync(settings, progress=False)
    assert summary.new == 39
    render_reports(settings, as_of=dt.date(2026, 6, 1))
    with open_store(settings) as store:
        keys = {s.key_basis for s in store.submissions()}
    assert keys == {"uic"} or style.startswith("central"), "the codes were found by name"
    assert scan(every_file(settings)) == []


def test_an_export_with_labels_as_headers_is_read_and_its_name_codes_dropped(
    make_project: Callable[..., Path], secret: str
) -> None:
    settings = load_settings(make_project())
    rows = [styled(sid, "/") for sid in range(1, 10)]
    labels = load_labels(settings.project.languages[0])
    labelled = [
        {(labels.field(k.split("/")[-1]) if k.split("/")[-1] in GROUPS else k): v for k, v in row.items()}
        for row in rows
    ]
    assert settings.source.path is not None
    path = settings.source.path.with_suffix(".csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(labelled[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()} for row in labelled
        )
    settings = dataclasses.replace(settings, source=dataclasses.replace(settings.source, path=path))
    with open_store(settings):  # held open: the WAL is scanned as the sync left it
        assert run_sync(settings, progress=False).new == 9
        files = every_file(settings)
        with open_store(settings) as store:
            assert {s.key_basis for s in store.submissions()} == {"uic"}  # the codes were read
        assert any(path.name.endswith("-wal") for path in files)
        assert scan(files) == []


# Issue 27: name-code answers under keys the check did not recognise, each stored in clear before.
FRENCH_LABEL = "Deux premières lettres du prénom de la personne"
OWN_LABEL = "Initiales du prénom (deux lettres)"  # the project's own translation of the label
ODD_KEYS = {
    "upper case": "person/UIC_GIVEN",
    "mixed case, no group": "Uic_Given",
    "trailing space": "person/uic_given ",
    "trailing slash": "person/uic_given/",
    "backslash": "person\\uic_given",
    "bar": "person|uic_given",
    "repeat index": "person/uic_given[1]",
    "zero-width space": "person/uic\u200b_given",
    "full-width letters": "person/\uff55\uff49\uff43_given",
    "label in lower case": "person/first two letters of the person's given name",
    "typographic apostrophe": "First two letters of the person\u2019s given name",
    "decomposed French label": unicodedata.normalize("NFD", FRENCH_LABEL),
    "the project's own label": OWN_LABEL,
}


def own_label_project(make_project: Callable[..., Path]) -> Settings:
    config = make_project()
    own = config.parent / "translations"
    own.mkdir()
    shipped = (TRANSLATIONS_DIR / "fr.toml").read_text("utf-8")
    own.joinpath("fr.toml").write_text(shipped.replace(FRENCH_LABEL, OWN_LABEL), encoding="utf-8")
    return load_settings(config)


def pushable(sid: int) -> dict[str, Any]:
    """A submission as Kobo pushes it: its _uuid is a uuid."""
    return {**kobo_submission(sid), "_uuid": str(uuid.UUID(int=sid))}


def with_odd_key(sid: int, key: str) -> dict[str, Any]:
    row = {k: v for k, v in pushable(sid).items() if not k.endswith("uic_given")}
    row[key] = CANARY[0]
    row["person/uic_mother"] = CANARY[1]
    return row


@pytest.mark.parametrize("key", ODD_KEYS.values(), ids=ODD_KEYS.keys())
def test_a_name_code_under_an_odd_key_is_read_and_never_stored(
    key: str, make_project: Callable[..., Path], secret: str
) -> None:
    settings = own_label_project(make_project)
    write_rows(settings, [with_odd_key(sid, key) for sid in range(1, 30)])
    with open_store(settings):
        assert run_sync(settings, progress=False).new == 29
        with open_store(settings) as store:
            stored = list(store.submissions())
        assert scan(every_file(settings)) == []
    assert {s.key_basis for s in stored} == {"uic"}  # read as the name code it is
    assert all(key not in s.data for s in stored)


@pytest.mark.parametrize("key", ODD_KEYS.values(), ids=ODD_KEYS.keys())
def test_a_push_with_a_name_code_under_an_odd_key_is_refused(
    key: str, make_project: Callable[..., Path]
) -> None:
    recognise_project_labels(own_label_project(make_project))
    body = json.dumps(with_odd_key(7, key)).encode()
    with pytest.raises(PushRefused) as refused:
        read_push(body, "aAsset")
    assert refused.value.status == 422 and CANARY[0] not in refused.value.message
    assert read_push(json.dumps(pushable(7)).encode(), "aAsset").submission_id == "7"


def test_the_instance_name_is_never_stored(make_project: Callable[..., Path], secret: str) -> None:
    settings = load_settings(make_project())
    rows = [{**kobo_submission(sid), "meta/instanceName": f"{CANARY[0]} {CANARY[1]}"} for sid in range(1, 9)]
    write_rows(settings, rows)
    with open_store(settings):
        run_sync(settings, progress=False)
        assert scan(every_file(settings)) == []
    assert stored_json({"meta": {"instanceName": CANARY[0]}, "a": 1}) == b'{"meta":{},"a":1}'


PLANTED = {
    "_uuid": "Xylophona Quokkamum",
    "form_version": "<b>Xylophona</b>",
    "__version__": "v1 Xylophona",
    "_submission_time": "Xylophona",
}


@pytest.mark.parametrize(("key", "value"), PLANTED.items(), ids=PLANTED.keys())
def test_metadata_not_in_its_shape_is_refused_on_a_push_and_kept_out_of_a_sync(
    key: str, value: str, make_project: Callable[..., Path], secret: str
) -> None:
    planted = {**pushable(3), key: value}
    with pytest.raises(PushRefused) as refused:
        read_push(json.dumps(planted).encode(), "aAsset")
    assert (
        refused.value.status == 422
        and refused.value.message.startswith(f"The submission's {key} is not in its own shape")
        and "Xylophona" not in refused.value.message
    )
    settings = load_settings(
        make_project(report='out_dir = "reports"\naudiences = ["internal"]\nformats = ["html", "csv"]')
    )
    write_rows(settings, [planted, kobo_submission(4)])
    run_sync(settings, progress=False)
    render_reports(settings, as_of=dt.date(2026, 6, 1))
    with open_store(settings) as store:
        held = {s.submission_id: s for s in store.submissions()}
    assert key not in held["3"].data and "Xylophona" not in repr(held["3"])
    assert held["4"].form_version == "20251001000000"  # a row in shape keeps its metadata
    files = every_file(settings)
    assert not [path for path in files if b"Xylophona" in path.read_bytes()]
    quality = (settings.report.out_dir / "internal" / "data_quality.csv").read_text(encoding="utf-8")
    assert "3,malformed,metadata," in quality


def test_a_version_2_store_holding_name_codes_is_scrubbed_by_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    version_2_store(path)
    leaked = {
        "_id": 1,
        "person": [{"uic_given": CANARY[0]}],
        "person.uic_mother": CANARY[1],
        "event/event_date": "2026-01-01",
    }
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO submission_data VALUES (1, ?)", (json.dumps(leaked, ensure_ascii=False),))
    assert scan([p for p in tmp_path.iterdir() if p.is_file()]) != []  # in the file or its WAL
    SqliteStore.open(path, migrate=True).close()
    assert scan([p for p in tmp_path.iterdir() if p.is_file()]) == []
    with sqlite3.connect(path) as db:
        (text,) = db.execute("SELECT data FROM submission_data").fetchone()
    assert json.loads(text) == {"_id": 1, "person": [{}], "event/event_date": "2026-01-01"}


# --- stores and report folders -------------------------------------------------------------------


def test_missing_never_synced_and_damaged_stores_are_one_sentence_each(
    make_project: Callable[..., Path], secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_project()
    settings = load_settings(config)
    assert main(["report", "-c", str(config)]) == 1
    assert "No store at" in capsys.readouterr().err
    open_store(settings).close()
    assert main(["report", "-c", str(config)]) == 1
    assert "Nothing has been synced" in capsys.readouterr().err
    rows = [kobo_submission(sid) for sid in range(1, 200)]
    write_rows(settings, rows)
    assert main(["sync", "-c", str(config), "--no-report"]) == 0
    capsys.readouterr()
    with settings.store.path.open("r+b") as handle:  # garbage over the pages that hold the rows
        handle.seek(16384 * 3)
        handle.write(os.urandom(16384 * 4))
    assert main(["report", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is damaged" in err and "move it away" in err and "unexpected" not in err


def test_report_folders_are_their_owner_s_only(make_project: Callable[..., Path], secret: str) -> None:
    config = make_project(report='out_dir = "reports"\naudiences = ["internal", "donor"]')
    settings = load_settings(config)
    write_rows(settings, [kobo_submission(sid) for sid in range(1, 60)])
    run_sync(settings, progress=False)
    render_reports(settings, as_of=dt.date(2026, 6, 1))
    for audience in ("internal", "donor"):
        folder = (settings.report.out_dir / audience).resolve()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        modes = {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
        assert modes == {0o600}, audience


def test_a_configured_group_may_read_the_shared_audiences_only(
    make_project: Callable[..., Path], secret: str
) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    config = make_project(report=f'out_dir = "reports"\naudiences = ["internal", "donor"]\ngroup = "{group}"')
    settings = load_settings(config)
    write_rows(settings, [kobo_submission(sid) for sid in range(1, 60)])
    run_sync(settings, progress=False)
    render_reports(settings, as_of=dt.date(2026, 6, 1))
    donor = (settings.report.out_dir / "donor").resolve()
    internal = (settings.report.out_dir / "internal").resolve()
    assert stat.S_IMODE(donor.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in donor.iterdir()} == {0o640}
    assert stat.S_IMODE(internal.stat().st_mode) == 0o700, "internal is shared only when listed"


def test_renders_at_the_same_time_all_succeed_and_each_folder_is_whole(
    make_project: Callable[..., Path], secret: str
) -> None:
    config = make_project(report='out_dir = "reports"\naudiences = ["internal", "donor", "public"]')
    settings = load_settings(config)
    write_rows(settings, [kobo_submission(sid) for sid in range(1, 120)])
    run_sync(settings, progress=False)
    command = [sys.executable, "-m", "kobo_tip", "report", "-c", str(config), "--as-of", "2026-06-01"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], [err.decode()[-500:] for _, err in results]
    for audience in ("internal", "donor", "public"):
        folder = settings.report.out_dir / audience
        assert (
            folder.is_symlink() and (folder / "counts.csv").is_file() and (folder / "report.html").is_file()
        )
    leftovers = [p.name for p in settings.report.out_dir.iterdir() if p.name.endswith((".old", ".link"))]
    assert leftovers == [] and len(list(settings.report.out_dir.iterdir())) == 6


def test_outside_reports_carry_no_text_of_a_submission(
    make_project: Callable[..., Path], secret: str
) -> None:
    config = make_project(report='out_dir = "reports"\naudiences = ["internal", "donor"]')
    settings = load_settings(config)
    rows = [kobo_submission(sid) for sid in range(1, 60)]
    for row in rows[:2]:  # a version not in its shape is planted (issue 27): not stored at all
        row["form_version"] = "<b>version-from-a-submission</b>"
    write_rows(settings, rows)
    run_sync(settings, progress=False)
    render_reports(settings, as_of=dt.date(2026, 6, 1))
    donor = settings.report.out_dir / "donor"
    for path in donor.iterdir():
        data = path.read_bytes()
        assert b"version-from-a-submission" not in data and str(settings.source.path).encode() not in data, (
            path.name
        )
    internal = (settings.report.out_dir / "internal" / "report.html").read_text(encoding="utf-8")
    assert "version-from-a-submission" not in internal and "20251001000000" in internal
    quality = (settings.report.out_dir / "internal" / "data_quality.csv").read_text(encoding="utf-8")
    assert quality.count(",malformed,metadata,") == 2
