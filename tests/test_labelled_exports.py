"""Kobo exports made with labels (issue 25): read as the names export of the same submissions, in
any form language, or refused in one sentence; never a donor report with another number.

The exports are written from the demo's generated submissions and the labels of the XLSForm
kobo-tip builds, as Kobo's exporter writes them (``kobo_exports``)."""

from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from conftest import SECRET, write_project
from kobo_exports import (
    Form,
    Style,
    demo_submissions,
    export_rows,
    read_form,
    write_csv,
    write_json,
)
from kobo_tip import indicator as ind
from kobo_tip.answers import find_answers
from kobo_tip.cli import main
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import SourceError
from kobo_tip.form import build_form
from kobo_tip.labels import TRANSLATIONS_DIR
from kobo_tip.person_key import person_key
from kobo_tip.sources.files import FileSource
from kobo_tip.store import SqliteStore

EN, FR = "English (en)", "French (fr)"
SYNC_AS_OF = "2026-11-15"


@dataclasses.dataclass(frozen=True)
class Project:
    root: Path
    settings: Settings
    form: Form
    submissions: list[dict[str, Any]]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("labelled")
    settings = load_settings(write_project(root / "form"))
    form = read_form(build_form(settings, ignore_warnings=True).xlsx_path)
    return Project(root, settings, form, demo_submissions(settings))


def answers_of(path: Path, project: Project) -> list[dict[str, Any]]:
    fields = tuple(question.name for question in project.form.questions)
    return [
        {**find_answers(raw.data, fields), "_key": person_key(raw.data, raw.submission_id, SECRET.encode())}
        for raw in FileSource(path, settings=project.settings).submissions()
    ]


@pytest.fixture(scope="module")
def names_answers(project: Project) -> list[dict[str, Any]]:
    path = write_csv(project.root / "xml.csv", export_rows(project.form, project.submissions, Style()))
    read = answers_of(path, project)
    assert len(read) == len(project.submissions) == 300
    assert sum(row.get(ind.CONSENT) == "yes" for row in read) > 200
    return read


STYLES = {
    "label values, English": Style(values=EN),
    "labels, French": Style(values=FR, headers=FR),
    "labels, English, no groups": Style(values=EN, headers=EN, groups=False),
    "labels, English, choice columns only": Style(values=EN, headers=EN, multiple="details"),
    "labels, French, both, '-' separator": Style(values=FR, headers=FR, multiple="both", separator="-"),
    "names, choice columns only": Style(multiple="details"),
    "French headers, names as values": Style(headers=FR),
}


@pytest.mark.parametrize("style", STYLES.values(), ids=STYLES.keys())
@pytest.mark.parametrize("kind", ["csv", "json"])
def test_a_labelled_export_reads_as_the_names_export(
    project: Project, names_answers: list[dict[str, Any]], style: Style, kind: str, tmp_path: Path
) -> None:
    rows = export_rows(project.form, project.submissions, style)
    path = (write_csv if kind == "csv" else write_json)(tmp_path / f"export.{kind}", rows)
    assert answers_of(path, project) == names_answers


def test_labels_are_matched_whatever_their_accents_apostrophes_and_spaces(
    project: Project, tmp_path: Path
) -> None:
    rows = export_rows(project.form, project.submissions[:40], Style(values=FR, headers=FR))
    labels = {fold_free(question.labels[FR]) for question in project.form.questions if question.list_name}

    def odd(text: str) -> str:  # typographic apostrophes, accents decomposed, spaces doubled
        return unicodedata.normalize("NFD", text.replace("'", "\u2019").replace(" ", "  "))

    changed = [
        {
            # Headers in any case too: Kobo writes them from the form, spreadsheets retype them.
            (odd(key).upper() if " " in key else key): (odd(value) if fold_free(key) in labels else value)
            for key, value in row.items()
        }
        for row in rows
    ]
    assert changed[0] != rows[0]
    plain = answers_of(write_csv(tmp_path / "plain.csv", rows), project)
    assert answers_of(write_csv(tmp_path / "shouted.csv", changed), project) == plain


def fold_free(header: str) -> str:
    """A header without its group path."""
    return header.rsplit("/", 1)[-1]


def refused(path: Path, project: Project) -> str:
    with pytest.raises(SourceError) as caught:
        list(FileSource(path, settings=project.settings).submissions())
    message = caught.value.message
    assert "XML values and headers" in message and "\n" not in message
    return message


def test_a_column_that_is_no_question_in_a_labelled_export_is_refused(
    project: Project, tmp_path: Path
) -> None:
    # The officer renamed a question on the server: kobo-tip cannot tell what it holds.
    rows = export_rows(project.form, project.submissions[:5], Style(values=EN, headers=EN))
    header = next(key for key in rows[0] if key.endswith("Year of birth"))
    renamed = [{("Born in" if key == header else key): value for key, value in row.items()} for row in rows]
    assert "'Born in'" in refused(write_csv(tmp_path / "renamed.csv", renamed), project)
    # In a names export, columns it does not know are other tools' and are kept as they are.
    names = export_rows(project.form, project.submissions[:5], Style())
    extra = [{**row, "notes_of_the_officer": "x"} for row in names]
    assert (
        len(
            list(
                FileSource(write_csv(tmp_path / "extra.csv", extra), settings=project.settings).submissions()
            )
        )
        == 5
    )


def test_a_label_two_choices_share_is_refused(tmp_path: Path, secret: str) -> None:
    root = tmp_path / "twins"
    config = write_project(root)
    roster = root / "forms" / "stakeholders.csv"
    lines = roster.read_text(encoding="utf-8").splitlines()
    first = lines[1].split(",")
    lines.append(",".join(["bc_twin", first[1], *first[2:]]))  # a second stakeholder of the same name
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings(config)
    form = read_form(build_form(settings, ignore_warnings=True).xlsx_path)
    subs = [sub for sub in demo_submissions(settings, n=100) if sub.get("event/stakeholder_id") == first[0]]
    assert subs
    rows = export_rows(form, subs, Style(values=EN))
    message = refused(write_csv(tmp_path / "twins.csv", rows), Project(root, settings, form, subs))
    assert first[1] in message and "more than one choice" in message


# --- end to end, on the command line ------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def lop_total(root: Path, audience: str) -> int:
    with (root / "reports" / audience / "counts.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if (row["indicator"], row["period"], row["dimension"]) == (ind.HEADLINE_VARIANT, "LOP", "total"):
                return int(row["value"])
    raise AssertionError("no LOP total")


def synced_project(project: Project, name: str, rows: list[dict[str, str]]) -> Path:
    root = project.root / name
    config = write_project(
        root,
        source='kind = "file"\npath = "data/export.csv"',
        report='out_dir = "reports"\naudiences = ["internal", "donor", "public"]\nformats = ["csv"]',
    )
    (root / "data").mkdir()
    write_csv(root / "data" / "export.csv", rows)
    return config


EXPORTS = {
    "XML values and headers": Style(),
    "label values": Style(values=EN),
    "labels as headers": Style(values=EN, headers=EN),
    "French labels": Style(values=FR, headers=FR),
}


def test_three_exports_of_the_same_submissions_give_the_same_donor_number(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    totals: dict[str, dict[str, int]] = {}
    for name, style in EXPORTS.items():
        config = synced_project(
            project, name.replace(" ", "_"), export_rows(project.form, project.submissions, style)
        )
        code, said = cli(capsys, "sync", "-c", str(config))
        assert code == 0, said
        assert "300 new" in said
        code, said = cli(capsys, "report", "-c", str(config), "--as-of", SYNC_AS_OF)
        assert code == 0, said
        root = config.parent
        totals[name] = {audience: lop_total(root, audience) for audience in ("internal", "donor", "public")}
    expected = totals["XML values and headers"]
    assert expected["internal"] > 150  # the demo's persons, each counted once
    assert all(found == expected for found in totals.values()), totals


def test_name_codes_of_a_labelled_export_never_reach_the_store(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    canaries = ("Xylophona", "Quokkamum")
    subs = [
        {**sub, "person/uic_given": canaries[0], "person/uic_mother": canaries[1]}
        for sub in project.submissions[:40]
        if sub.get("intro/consent") == "yes"
    ]
    for language in (EN, FR):
        name = f"canaries_{language[-3:-1]}"
        config = synced_project(
            project, name, export_rows(project.form, subs, Style(values=language, headers=language))
        )
        store = config.parent / "data" / "kobo-tip.sqlite"
        # A reader held open keeps the WAL from being checkpointed away when the sync ends.
        with SqliteStore.open(store):
            code, said = cli(capsys, "sync", "--no-report", "-c", str(config))
            assert code == 0, said
            wal = Path(f"{store}-wal")
            assert wal.stat().st_size > 0
            contents = store.read_bytes() + wal.read_bytes()
        assert b"person/birth_year" in contents  # the scan sees the stored answers
        for canary in canaries:
            assert canary.encode() not in contents
        rows = sqlite3.connect(store).execute("SELECT data FROM submission_data").fetchall()
        assert len(rows) == len(subs)
        for (data,) in rows:
            assert not any(
                "uic" in key or "lettres" in key.lower() or "letters" in key.lower()
                for key in json.loads(data)
            )


def test_a_store_too_unreadable_gets_no_outside_report_until_an_officer_has_looked(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    # Another tool's export: consent coded Y/N, which is no name or label of the form.
    rows = export_rows(project.form, project.submissions, Style())
    coded = [{**row, "intro/consent": {"yes": "Y", "no": "N"}[row["intro/consent"]]} for row in rows]
    config = synced_project(project, "coded", coded)
    root = config.parent
    code, said = cli(capsys, "sync", "-c", str(config))
    assert code == 0, said  # the sync stores what it read, and says what it could not
    assert "300 of 300 submissions (100.0%) cannot be read for counting (most often consent: 300," in said
    assert "no donor or public report was written" in said
    assert (root / "reports" / "internal" / "counts.csv").exists()
    assert not (root / "reports" / "donor").exists() and not (root / "reports" / "public").exists()

    code, said = cli(capsys, "status", "-c", str(config))
    assert code == 0
    assert "unreadable for counting: 300 of 300 submissions (100.0%)" in said and "HELD" in said

    code, said = cli(capsys, "report", "--audience", "donor", "-c", str(config), "--as-of", SYNC_AS_OF)
    assert code == 1
    sentence = said.strip().splitlines()[-1]
    assert "no donor or public report was written" in sentence and "--accept-unreadable" in sentence
    assert not (root / "reports" / "donor").exists()

    code, said = cli(
        capsys,
        "report",
        "--audience",
        "donor",
        "--accept-unreadable",
        "-c",
        str(config),
        "--as-of",
        SYNC_AS_OF,
    )
    assert code == 0, said
    assert (root / "reports" / "donor" / "counts.csv").exists()
    code, said = cli(capsys, "status", "-c", str(config))
    assert "released anyway by an officer (300 unreadable accepted)" in said and "HELD" not in said
    # Looked at once: the next release of the same store needs no flag.
    code, said = cli(capsys, "report", "--audience", "public", "-c", str(config), "--as-of", SYNC_AS_OF)
    assert code == 0, said

    # The share changes (more unreadable rows): held again until the officer looks again.
    more = export_rows(project.form, demo_submissions(project.settings, n=320), Style())
    write_csv(
        root / "data" / "export.csv",
        [{**row, "intro/consent": {"yes": "Y", "no": "N"}[row["intro/consent"]]} for row in more],
    )
    code, said = cli(capsys, "sync", "--no-report", "-c", str(config))
    assert code == 0 and "cannot be read for counting" in said and "--accept-unreadable" in said
    code, said = cli(capsys, "report", "--audience", "donor", "-c", str(config), "--as-of", SYNC_AS_OF)
    assert code == 1 and "--accept-unreadable" in said


def test_a_readable_store_releases_without_a_word_about_it(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    config = synced_project(
        project, "readable", export_rows(project.form, project.submissions, Style(values=FR))
    )
    code, said = cli(capsys, "sync", "-c", str(config))
    assert code == 0 and "cannot be read" not in said, said
    assert (config.parent / "reports" / "public" / "counts.csv").exists()
    code, said = cli(capsys, "status", "-c", str(config))
    assert "unreadable for counting: " in said and "HELD" not in said


def test_a_value_in_another_case_than_its_label_stays_malformed(project: Project, tmp_path: Path) -> None:
    # 'femme' in a names export is a mistake the data-quality list must show, not the label 'Femme'.
    rows = export_rows(project.form, project.submissions[:5], Style())
    rows[0]["person/gender"] = "femme"
    rows[1]["person/gender"] = "Femme"  # the French label as Kobo writes it
    read = answers_of(write_csv(tmp_path / "cased.csv", rows), project)
    assert (read[0][ind.GENDER], read[1][ind.GENDER]) == ("femme", "female")


def test_the_terminal_is_told_once_when_labels_are_read(
    project: Project, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = export_rows(project.form, project.submissions[:50], Style(values=FR, headers=FR))
    with caplog.at_level("INFO", logger="kobo_tip"):
        list(FileSource(write_csv(tmp_path / "fr.csv", rows), settings=project.settings).submissions())
    told = [record.getMessage() for record in caplog.records]
    assert sum("names its columns by label" in line for line in told) == 1
    assert sum("gives answers as labels" in line for line in told) == 1
    caplog.clear()
    names = export_rows(project.form, project.submissions[:50], Style())
    with caplog.at_level("INFO", logger="kobo_tip"):
        list(FileSource(write_csv(tmp_path / "names.csv", names), settings=project.settings).submissions())
    assert not [r for r in caplog.records if "label" in r.getMessage()]


def test_a_header_two_questions_share_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "same_label"
    config = write_project(root)
    own = root / "translations"
    own.mkdir()
    french = (TRANSLATIONS_DIR / "fr.toml").read_text(encoding="utf-8")
    fields = tomllib.loads(french)["fields"]
    seeing, hearing = fields["wg_seeing"]["label"], fields["wg_hearing"]["label"]
    own.joinpath("fr.toml").write_text(french.replace(hearing, seeing), encoding="utf-8")
    settings = load_settings(config)
    form = read_form(build_form(settings, ignore_warnings=True).xlsx_path)
    subs = demo_submissions(settings, n=100)
    rows = export_rows(form, subs, Style(values=FR, headers=FR, groups=False))
    message = refused(write_csv(tmp_path / "same.csv", rows), Project(root, settings, form, subs))
    assert seeing in message and "more than one question" in message
    # In English the two labels differ: the same form's English export is read.
    english = export_rows(form, subs, Style(values=EN, headers=EN))
    assert (
        len(list(FileSource(write_csv(tmp_path / "en.csv", english), settings=settings).submissions())) == 100
    )
