"""Translations as translators work: the shipped languages, export to XLSX and .po, the checks of
an import, the project's file over the shipped one, and the review mark; through the command line
and a real form build (ODK Validate runs, so Java is required)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import polib
import pytest
from openpyxl import load_workbook

from conftest import write_project
from kobo_tip.cli import main
from kobo_tip.config import load_settings, parse_language
from kobo_tip.form import build_form
from kobo_tip.form.writer import read_sheet
from kobo_tip.labels import REPORT_PREFIX, TRANSLATIONS_DIR, english_texts, is_country_name, load_labels
from kobo_tip.translation.catalogue import placeholders
from kobo_tip.translation.checks import CHOICE_LIMIT

ENGLISH = "English (en)"
SHIPPED = ("Spanish (es)", "Portuguese (pt)", "Arabic (ar)", "Thai (th)")
LANGUAGE_KINDS = ("label", "hint", "required_message", "constraint_message")
# Words spelled the same in a language and in English: Spanish "No" is Spanish, French "District" is
# French. Anything else identical to the English in a language column is English left behind.
SAME_WORD = {"Spanish (es)": {"No"}, "French (fr)": {"District"}}
# Choice lists whose labels are the project's own data (roster, locations, ethnicities, referral
# directory), copied into every language by design (contract section 2); their not_listed is a text.
COPIED_LISTS = {"stakeholder", "admin1", "admin2", "ethnicity", "referral_org"}
UNREVIEWED = (
    "the translation kobo-tip ships has not been reviewed; have a native speaker check an export of "
    "it, then import it with kobo-tip translations import FILE --reviewed."
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _project(root: Path, languages: tuple[str, ...]) -> Path:
    quoted = ", ".join(f'"{language}"' for language in languages)
    return write_project(
        root,
        project='name = "Test project"\ncountry = "th"\nstart_date = 2025-10-01\nend_date = 2028-09-30\n'
        f'languages = [{quoted}]\nreport_language = "{languages[0]}"',
    )


@pytest.fixture(autouse=True)
def fresh_labels() -> None:
    # Texts are cached per language; each test writes its own project files.
    load_labels.cache_clear()


# --- the shipped languages ------------------------------------------------------------------


def _keys(table: dict[str, object], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in table.items():
        keys |= _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}  # type: ignore[arg-type]
    return keys


@pytest.mark.parametrize("label", SHIPPED)
def test_each_shipped_language_has_every_form_text_and_says_it_is_unreviewed(label: str) -> None:
    language = parse_language(label)
    table = tomllib.loads((TRANSLATIONS_DIR / f"{language.code}.toml").read_text(encoding="utf-8"))
    assert table.pop("reviewed") is False
    form_keys = {key for key in english_texts() if not key.startswith(REPORT_PREFIX)}
    # The report texts are a [report] table of their own at the end of the file.
    assert {
        key for key in _keys(table) if not is_country_name(key) and not key.startswith(REPORT_PREFIX)
    } == (form_keys)
    assert load_labels(language).warnings == (f"{label}: {UNREVIEWED}",)


@pytest.mark.parametrize("label", ("French (fr)", *SHIPPED))
def test_each_shipped_language_has_every_report_text_with_its_placeholders(label: str) -> None:
    """Every ``[report]`` text of en.toml is in the file, with the same ``{placeholders}``; none
    English lacks (the report would never show it)."""
    code = parse_language(label).code
    table = tomllib.loads((TRANSLATIONS_DIR / f"{code}.toml").read_text(encoding="utf-8"))
    english = {k: v for k, v in english_texts().items() if k.startswith(REPORT_PREFIX)}
    own = {key: _value(table, key) for key in _keys(table) if key.startswith(REPORT_PREFIX)}
    assert set(own) == set(english), (sorted(set(english) - set(own)), sorted(set(own) - set(english)))
    changed = {key for key, text in english.items() if placeholders(own[key]) != placeholders(text)}
    assert not changed, f"{label}: placeholders differ from English in {sorted(changed)}"
    assert sum(own[key] != text for key, text in english.items()) > len(english) // 2, "translated"


def _value(table: dict[str, object], key: str) -> str:
    value: object = table
    for part in key.split("."):
        assert isinstance(value, dict)
        value = value[part]
    return str(value)


@pytest.fixture(scope="module")
def every_language(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """One form built in English and every shipped language: its survey and choices rows."""
    config = _project(tmp_path_factory.mktemp("all"), (ENGLISH, "French (fr)", *SHIPPED))
    load_labels.cache_clear()
    build = build_form(load_settings(config))
    assert build.validated
    assert [warning for warning in build.warnings if UNREVIEWED in warning] == [
        f"{label}: {UNREVIEWED}" for label in SHIPPED
    ]
    return read_sheet(build.xlsx_path, "survey"), read_sheet(build.xlsx_path, "choices")


@pytest.mark.parametrize("label", ("French (fr)", *SHIPPED))
def test_a_form_in_each_shipped_language_has_no_english_left(
    every_language: tuple[list[dict[str, str]], list[dict[str, str]]], label: str
) -> None:
    survey, choices = every_language
    catalogue = load_labels(parse_language(label)).country_names
    compared = 0
    for row in survey:
        for kind in LANGUAGE_KINDS:
            english = row.get(f"{kind}::{ENGLISH}")
            if english:
                compared += 1
                text = row.get(f"{kind}::{label}", "")
                assert text and (text != english or text in SAME_WORD.get(label, set())), (row["name"], kind)
    for row in choices:
        english, text = row[f"label::{ENGLISH}"], row.get(f"label::{label}", "")
        assert text, (row["list_name"], row["name"])
        if row["list_name"] in COPIED_LISTS and row["name"] != "not_listed":
            continue  # the project's own names
        if row["list_name"] == "country" and english in getattr(catalogue, "_catalog", {}):
            continue  # pycountry's catalogue translates it, maybe to the same spelling ("Chile")
        compared += 1
        assert text != english or text in SAME_WORD.get(label, set()), (row["list_name"], row["name"])
    assert compared > 100


# --- export ---------------------------------------------------------------------------------


def test_export_writes_every_text_with_where_it_appears_and_what_to_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _project(tmp_path, (ENGLISH, "Khmer (km)"))
    code, out, err = run(capsys, "translations", "export", "--language", "Khmer (km)", "-c", str(config))
    assert (code, err) == (0, "")
    english = english_texts()
    path = tmp_path / "translations" / "km.xlsx"
    assert out == f"wrote {path}: {len(english)} texts, {len(english)} without translation\n"
    sheet = load_workbook(path, read_only=True)["translations"]
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert header == ("key", "English (en)", "where it appears", "Khmer (km)", "keep unchanged")
    by_key = {row[0]: row for row in rows}
    assert list(by_key) == list(english)
    assert all(row[3] is None for row in rows)  # no Khmer text yet: empty, not English
    assert by_key["fields.consent.hint"][2] == "Form, question consent: hint under the question"
    assert by_key["choices.gender.female"][2] == "Form, answer female of the list gender"
    with_placeholders = _placeholder_key()
    assert by_key[with_placeholders][2] == f"Report: {' / '.join(with_placeholders.split('.')[1:])}"
    for placeholder in placeholders(english[with_placeholders]):
        assert placeholder in by_key[with_placeholders][4]
    assert by_key["fields.uic_mother.hint"][4] == "Keep unchanged: 99."
    # The name-code examples are filled in per form language at build time: only their slot is kept.
    assert by_key["fields.uic_given.hint"][4] == "Keep unchanged: {examples}."


def test_export_as_po_carries_the_current_translation_context_and_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _project(tmp_path, (ENGLISH, "Thai (th)"))
    out_file = tmp_path / "th.po"
    code, _, _ = run(
        capsys, "translations", "export", "--language", "Thai (th)", "-o", str(out_file), "-c", str(config)
    )
    assert code == 0
    catalogue = polib.pofile(str(out_file))
    assert catalogue.metadata["Language"] == "th" and catalogue.metadata["X-Kobo-Tip-Language"] == "Thai (th)"
    entries = {entry.msgctxt: entry for entry in catalogue}
    assert len(entries) == len(english_texts())
    assert entries["choices.gender.female"].msgstr == "หญิง"
    assert "python-brace-format" in entries[_placeholder_key()].flags
    assert "Keep unchanged: 99." in entries["fields.uic_mother.hint"].comment


# --- round trips: export -> translate -> import -> build --------------------------------------


def _placeholder_key() -> str:
    """The first text with a placeholder such as {k} (the report's key to hidden numbers)."""
    return next(
        key for key, text in english_texts().items() if key.startswith("report.") and placeholders(text)
    )


def _translated(english: str) -> str:
    """A stand-in translator: a Khmer word before the English keeps every placeholder and number."""
    return f"ខ្មែរ {english}"


def _build(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[str, list[dict[str, str]]]:
    load_labels.cache_clear()
    code, _, err = run(capsys, "form", "build", "-c", str(config))
    assert code == 0, err
    return err, read_sheet(config.parent / "forms" / "tip_victims.xlsx", "survey")


def test_round_trip_through_an_xlsx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _project(tmp_path, (ENGLISH, "Khmer (km)"))
    err, _ = _build(capsys, config)
    assert 'kobo-tip translations export --language "Khmer (km)"' in err and len(err.splitlines()) == 1
    assert run(capsys, "translations", "export", "--language", "Khmer (km)", "-c", str(config))[0] == 0
    path = tmp_path / "translations" / "km.xlsx"
    workbook = load_workbook(path)
    sheet = workbook["translations"]
    for row in sheet.iter_rows(min_row=2):
        row[3].value = _translated(str(row[1].value))
    workbook.save(path)
    code, out, err = run(capsys, "translations", "import", str(path), "-c", str(config))
    assert (code, err) == (0, "")
    assert out == f"wrote {tmp_path / 'translations' / 'km.toml'}: {len(english_texts())} Khmer (km) texts\n"
    err, survey = _build(capsys, config)
    assert "Khmer" not in err
    consent = next(row for row in survey if row["name"] == "consent")
    assert consent["label::Khmer (km)"] == _translated(consent["label::English (en)"])
    assert consent["hint::Khmer (km)"] == _translated(consent["hint::English (en)"])


def test_round_trip_through_a_po_file_and_the_review_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _project(tmp_path, (ENGLISH, "Thai (th)"))
    err, _ = _build(capsys, config)
    assert err == f"warning: Thai (th): {UNREVIEWED}\n"
    path = tmp_path / "th.po"
    assert (
        run(capsys, "translations", "export", "--language", "Thai (th)", "-o", str(path), "-c", str(config))[
            0
        ]
        == 0
    )
    catalogue = polib.pofile(str(path))
    for entry in catalogue:
        if entry.msgctxt == "choices.gender.female":
            entry.msgstr = "ผู้หญิง"  # the reviewer's correction
        elif not entry.msgstr:
            entry.msgstr = f"ไทย {entry.msgid}"  # the report texts the shipped file lacks
    catalogue.save(str(path))
    code, out, _ = run(capsys, "translations", "import", str(path), "--reviewed", "-c", str(config))
    assert code == 0 and out.endswith("Thai (th) texts, marked reviewed\n")
    written = tomllib.loads((tmp_path / "translations" / "th.toml").read_text(encoding="utf-8"))
    assert written["reviewed"] is True and written["choices"]["gender"]["female"] == "ผู้หญิง"
    err, _ = _build(capsys, config)
    assert err == ""  # reviewed and complete: nothing to say
    choices = read_sheet(config.parent / "forms" / "tip_victims.xlsx", "choices")
    female = next(row for row in choices if (row["list_name"], row["name"]) == ("gender", "female"))
    assert female["label::Thai (th)"] == "ผู้หญิง"


# --- the project's file over the shipped one ----------------------------------------------------


def test_a_project_file_overrides_and_adds_to_the_shipped_texts(tmp_path: Path) -> None:
    config = _project(tmp_path, (ENGLISH, "French (fr)"))
    (tmp_path / "translations").mkdir()
    (tmp_path / "translations" / "fr.toml").write_text(
        '[choices.gender]\nfemale = "Féminin"\n', encoding="utf-8"
    )
    french = load_labels(load_settings(config).project.languages[1])
    assert french.choice("gender", "female") == "Féminin"  # the project's
    assert french.choice("gender", "male") == "Homme"  # the shipped file's
    assert french.warnings == ()


def test_an_unreviewed_language_stays_unreviewed_until_the_project_marks_it(tmp_path: Path) -> None:
    config = _project(tmp_path, (ENGLISH, "Arabic (ar)"))
    (tmp_path / "translations").mkdir()
    own = tmp_path / "translations" / "ar.toml"
    own.write_text('[choices.gender]\nfemale = "امرأة"\n', encoding="utf-8")
    assert load_labels(load_settings(config).project.languages[1]).warnings == (f"Arabic (ar): {UNREVIEWED}",)
    own.write_text('reviewed = true\n\n[choices.gender]\nfemale = "امرأة"\n', encoding="utf-8")
    load_labels.cache_clear()
    assert load_labels(load_settings(config).project.languages[1]).warnings == ()


# --- the checks of an import ---------------------------------------------------------------


@pytest.fixture
def french_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """A project, and the shipped French exported to XLSX: every text translated."""
    config = _project(tmp_path, (ENGLISH, "French (fr)"))
    path = tmp_path / "fr.xlsx"
    assert (
        run(
            capsys, "translations", "export", "--language", "French (fr)", "-o", str(path), "-c", str(config)
        )[0]
        == 0
    )
    return config, path


def _edit(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    workbook = load_workbook(path)
    sheet = workbook["translations"]
    cells = {row[0].value: row[3] for row in sheet.iter_rows(min_row=2)}
    change(cells)  # type: ignore[arg-type]
    workbook.save(path)


def _import_fails(capsys: pytest.CaptureFixture[str], config: Path, path: Path) -> str:
    code, out, err = run(capsys, "translations", "import", str(path), "-c", str(config))
    assert (code, out) == (2, "")
    assert not (config.parent / "translations" / "fr.toml").exists()  # nothing written
    return err


def test_a_removed_placeholder_is_refused(
    french_export: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, path = french_export

    key = _placeholder_key()
    placeholder = placeholders(english_texts()[key])[-1]

    def drop(cells: dict[str, object]) -> None:
        cell = cells[key]
        cell.value = str(cell.value).replace(placeholder, "quatre")  # type: ignore[attr-defined]

    _edit(path, drop)
    assert _import_fails(capsys, config, path) == (
        "error: fr.xlsx was not imported: fix 1 problem(s) in it and import it again: "
        f"{key} lost the placeholder(s) {placeholder}.\n"
    )


def test_a_missing_text_a_lost_number_and_written_out_examples_are_refused(
    french_export: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, path = french_export

    def damage(cells: dict[str, object]) -> None:
        cells["fields.consent.label"].value = None  # type: ignore[attr-defined]
        cells["fields.uic_mother.hint"].value = "Saisissez quatre-vingt-dix-neuf si le nom est inconnu."  # type: ignore[attr-defined]
        cells["fields.uic_given.hint"].value = "Maria donne Ma ; Somsri donne So."  # type: ignore[attr-defined]
        # The examples are filled in per form language: a translator who writes their own loses the slot.

    _edit(path, damage)
    assert _import_fails(capsys, config, path) == (
        "error: fr.xlsx was not imported: fix 3 problem(s) in it and import it again: "
        "1 text(s) have no translation (fields.consent.label); "
        "fields.uic_given.hint lost the placeholder(s) {examples}; "
        "fields.uic_mother.hint lost the number(s) 99.\n"
    )


def test_a_text_too_long_for_a_phone_is_refused(
    french_export: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, path = french_export

    def lengthen(cells: dict[str, object]) -> None:
        cells["choices.gender.female"].value = "Femme " * 20  # type: ignore[attr-defined]
        # Thai marks take no place of their own: 40 letters with 80 marks are 40 characters.
        cells["choices.gender.male"].value = "ที่" * 40  # type: ignore[attr-defined]

    _edit(path, lengthen)
    assert _import_fails(capsys, config, path) == (
        "error: fr.xlsx was not imported: fix 1 problem(s) in it and import it again: "
        "choices.gender.female is 119 characters long, more than a phone screen should show here "
        f"({CHOICE_LIMIT}).\n"
    )


def test_a_file_that_is_not_an_export_is_refused_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _project(tmp_path, (ENGLISH,))
    stray = tmp_path / "texts.csv"
    stray.write_text("key,text\n", encoding="utf-8")
    code, _, err = run(capsys, "translations", "import", str(stray), "-c", str(config))
    assert code == 2
    assert (
        err
        == f"error: {stray} is neither .xlsx nor .po; import the file 'kobo-tip translations export' wrote.\n"
    )


def test_an_export_whose_format_and_file_name_disagree_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _project(tmp_path, (ENGLISH,))
    out_file = tmp_path / "km.xlsx"
    code, _, err = run(
        capsys,
        "translations",
        "export",
        "--language",
        "Khmer (km)",
        "--format",
        "po",
        "-o",
        str(out_file),
        "-c",
        str(config),
    )
    assert (code, err) == (2, f"error: --format po would write {out_file} in another format; name it .po.\n")
    assert not out_file.exists()
