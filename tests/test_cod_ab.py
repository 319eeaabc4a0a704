"""OCHA COD-AB admin-boundary tables as the locations file: names in each form language, choices
in the order of their names, a searchable list when it is long, and ``init --locations``."""

from __future__ import annotations

import csv
import dataclasses
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import openpyxl
import pytest

from conftest import write_project
from kobo_tip import indicator as ind
from kobo_tip.cli import main
from kobo_tip.cod_ab import load_cod_ab, name_order
from kobo_tip.config import Location, Settings, load_locations, load_settings, parse_language
from kobo_tip.errors import ConfigError
from kobo_tip.form import build_form
from kobo_tip.form.builder import LONG_LIST, build_sheets
from kobo_tip.form.name_examples import EXAMPLES_BY_LANGUAGE, name_examples
from kobo_tip.form.writer import read_sheet
from kobo_tip.init_project import write_starter
from kobo_tip.labels import load_labels
from kobo_tip.report.texts import ReportWords

# A level-2 COD-AB table of Cambodia as OCHA publishes it (the columns kobo-tip reads, and two
# it ignores): English and Khmer names; one district has no Khmer name.
ADM2_HEADER = (
    "ADM2_EN", "ADM2_KM", "ADM2_PCODE", "ADM2_REF", "ADM1_EN", "ADM1_KM", "ADM1_PCODE",
    "ADM0_EN", "ADM0_KM", "ADM0_PCODE", "ADM1ALT1EN",
)  # fmt: skip
PROVINCES = {
    "KH01": ("Banteay Meanchey", "បន្ទាយមានជ័យ"),
    "KH02": ("Battambang", "បាត់ដំបង"),
    "KH07": ("Kampot", "កំពត"),
    "KH12": ("Phnom Penh", "ភ្នំពេញ"),
    "KH17": ("Siemreap", "សៀមរាប"),
    "KH23": ("Kep", "កែប"),
}
DISTRICTS = (
    ("KH0202", "Thma Koul", "ថ្មគោល", "KH02"),
    ("KH0201", "Banan", "បាណន់", "KH02"),
    ("KH1201", "Chamkar Mon", "ចំការមន", "KH12"),
    ("KH1703", "Angkor Thum", "", "KH17"),
    ("KH1702", "Angkor Chum", "អង្គរជុំ", "KH17"),
    ("KH0701", "Angkor Chey", "អង្គរជ័យ", "KH07"),
    ("KH2301", "Damnak Chang'aeur", "ដំណាក់ចង្អើរ", "KH23"),
    ("KH0101", "Mongkol Borei", "មង្គលបូរី", "KH01"),
)
# Admin1 in the order of the English names, and of the Khmer names (code points, case folded:
# PyICU is not installed here), neither the order of the codes.
BY_ENGLISH = ["KH01", "KH02", "KH07", "KH23", "KH12", "KH17"]
BY_KHMER = ["KH23", "KH07", "KH01", "KH02", "KH12", "KH17"]


def adm2_rows() -> list[tuple[str, ...]]:
    return [
        (en, km, code, "", *PROVINCES[parent], parent, "Cambodia", "កម្ពុជា", "KH", "")
        for code, en, km, parent in DISTRICTS
    ]


def write_adm2_csv(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ADM2_HEADER)
        writer.writerows(adm2_rows())
    return path


def write_workbook(path: Path) -> Path:
    """The XLSX as HDX has it: a sheet per level (adm0 has no ADM1_PCODE and is skipped)."""
    book = openpyxl.Workbook()
    adm0 = book.active
    assert adm0 is not None
    adm0.title = "khm_adm0"
    adm0.append(("ADM0_EN", "ADM0_PCODE"))
    adm0.append(("Cambodia", "KH"))
    adm1 = book.create_sheet("khm_adm1")
    adm1.append(("ADM1_EN", "ADM1_KM", "ADM1_PCODE", "ADM0_EN", "ADM0_PCODE"))
    for code, (en, km) in PROVINCES.items():
        adm1.append((en, km, code, "Cambodia", "KH"))
    adm2 = book.create_sheet("khm_adm2")
    adm2.append(ADM2_HEADER)
    for row in adm2_rows():
        adm2.append(row)
    book.save(path)
    return path


def test_a_level_2_table_gives_both_levels_with_names_per_language(tmp_path: Path) -> None:
    locations = load_locations(write_adm2_csv(tmp_path / "khm_adm2.csv"))
    admin1 = {loc.code: loc for loc in locations if loc.level == 1}
    admin2 = {loc.code: loc for loc in locations if loc.level == 2}
    assert set(admin1) == set(PROVINCES) and all(loc.parent == "kh" for loc in admin1.values())
    assert {code: loc.parent for code, loc in admin2.items()} == {d[0]: d[3] for d in DISTRICTS}
    assert admin1["KH02"].name == "Battambang" and admin1["KH02"].name_in("km") == "បាត់ដំបង"
    # A row with no Khmer name falls back to English; a language without a column, too.
    assert admin2["KH1703"].name_in("km") == "Angkor Thum"
    assert admin2["KH1702"].name_in("km") == "អង្គរជុំ" and admin2["KH1702"].name_in("fr") == "Angkor Chum"


def test_a_long_table_in_a_non_latin_script_is_recognised(tmp_path: Path) -> None:
    """Thousands of bytes of Khmer after the header: the file is still read as a COD-AB table."""
    path = write_adm2_csv(tmp_path / "khm_adm2.csv")
    extra = [
        (
            f"District {i}",
            "ស្រុក" * 8,
            f"KH02{i:02d}",
            "",
            *PROVINCES["KH02"],
            "KH02",
            "Cambodia",
            "កម្ពុជា",
            "KH",
            "",
        )
        for i in range(10, 60)
    ]
    with path.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(extra)
    assert path.stat().st_size > 8192
    assert sum(loc.level == 2 for loc in load_locations(path)) == len(DISTRICTS) + len(extra)


def test_the_workbook_reads_as_the_csv(tmp_path: Path) -> None:
    from_csv = load_cod_ab(write_adm2_csv(tmp_path / "khm_adm2.csv"))
    from_xlsx = load_locations(write_workbook(tmp_path / "khm_adm.xlsx"))
    assert sorted(from_xlsx, key=repr) == sorted(from_csv, key=repr)


def test_a_table_without_admin1_codes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "khm_adm0.csv"
    path.write_text("ADM0_EN,ADM0_PCODE,ADM1_PCODE\nCambodia,KH,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no ADM1_PCODE rows"):
        load_locations(path)


def test_digits_in_names_sort_as_numbers() -> None:
    names = ["District 10", "district 2", "District 1", "Zone"]
    assert sorted(names, key=name_order("en")) == ["District 1", "district 2", "District 10", "Zone"]


def _project(country: str, languages: list[str]) -> str:
    quoted = ", ".join(f'"{lang}"' for lang in languages)
    return (
        f'name = "Project"\ncountry = "{country}"\nstart_date = 2025-10-01\nend_date = 2028-09-30\n'
        f'languages = [{quoted}]\nreport_language = "{languages[0]}"'
    )


def _cambodian_project(root: Path, languages: list[str]) -> Path:
    config = write_project(root, project=_project("kh", languages))
    write_adm2_csv(root / "forms" / "locations.csv")
    return config


@pytest.fixture(scope="module")
def khmer_first(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, str]], ET.Element]:
    """The form of a project whose default language is Khmer, with English and French: its
    choices sheet and its XForm."""
    config = _cambodian_project(tmp_path_factory.mktemp("kh"), ["Khmer (km)", "English (en)", "French (fr)"])
    build = build_form(load_settings(config), ignore_warnings=True)
    assert build.validated
    return read_sheet(build.xlsx_path, "choices"), ET.parse(build.xml_path).getroot()


def test_choices_carry_the_name_in_each_form_language(
    khmer_first: tuple[list[dict[str, str]], ET.Element],
) -> None:
    choices, xform = khmer_first
    rows = {row["name"]: row for row in choices if row["list_name"] in ("admin1", "admin2")}
    assert rows["KH02"]["label::Khmer (km)"] == "បាត់ដំបង"
    assert rows["KH02"]["label::English (en)"] == "Battambang"
    assert rows["KH02"]["label::French (fr)"] == "Battambang"  # no ADM1_FR column: English
    assert rows["KH1703"]["label::Khmer (km)"] == "Angkor Thum"  # no Khmer name in its row
    assert rows["KH1702"]["parent"] == "KH17" and rows["KH02"]["country"] == "kh"
    # The XForm's itext says the same per language.
    texts = {
        (translation.get("lang"), text.get("id")): "".join(text.itertext()).strip()
        for translation in xform.iter("{http://www.w3.org/2002/xforms}translation")
        for text in translation
    }
    khmer = {value for (lang, _), value in texts.items() if lang == "Khmer (km)"}
    english = {value for (lang, _), value in texts.items() if lang == "English (en)"}
    assert {"បាត់ដំបង", "អង្គរជុំ", "Angkor Thum"} <= khmer and "Battambang" not in khmer
    assert {"Battambang", "Angkor Chum"} <= english


def test_choices_come_in_the_order_of_the_default_language_names(
    khmer_first: tuple[list[dict[str, str]], ET.Element], tmp_path: Path
) -> None:
    choices, _ = khmer_first
    assert [row["name"] for row in choices if row["list_name"] == "admin1"] == BY_KHMER
    settings = load_settings(_cambodian_project(tmp_path, ["English (en)", "Khmer (km)"]))
    sheets = build_sheets(settings, "1", [load_labels(lang) for lang in settings.project.languages])
    admin1 = [row for row in sheets.choices.rows if row["list_name"] == "admin1"]
    assert [row["name"] for row in admin1] == BY_ENGLISH
    admin2 = [row["label::English (en)"] for row in sheets.choices.rows if row["list_name"] == "admin2"]
    assert admin2 == sorted(d[1] for d in DISTRICTS)


def test_a_long_list_searches_as_one_types_and_a_short_one_does_not(tmp_path: Path) -> None:
    settings = load_settings(_cambodian_project(tmp_path, ["English (en)"]))
    labels = [load_labels(lang) for lang in settings.project.languages]

    def appearances(locations: tuple[Location, ...]) -> tuple[str, str]:
        form = dataclasses.replace(settings.form, locations=locations)
        survey = build_sheets(dataclasses.replace(settings, form=form), "1", labels).survey.rows
        row = {r["name"]: r for r in survey if "name" in r}
        return row[ind.LOCATION_ADMIN1]["appearance"], row[ind.LOCATION_ADMIN2]["appearance"]

    assert appearances(settings.form.locations) == ("", "")
    many = tuple(Location(2, f"KH02{i:02d}", f"District {i}", "KH02") for i in range(LONG_LIST + 1))
    assert appearances(settings.form.locations + many) == ("", "autocomplete")
    provinces = tuple(Location(1, f"KH{i}", f"Province {i}", "kh") for i in range(30, 30 + LONG_LIST))
    assert appearances(settings.form.locations + provinces + many) == ("autocomplete", "autocomplete")


def test_init_takes_the_cod_ab_table_and_the_project_builds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_workbook(tmp_path / "khm_adm.xlsx")
    assert main(["init", str(tmp_path / "p"), "--country", "kh", "--locations", str(table)]) == 0
    out = capsys.readouterr().out
    assert "ADMn_<code>" in out
    settings = load_settings(tmp_path / "p" / "kobo-tip.toml")
    assert settings.form.locations_path == tmp_path / "p" / "forms" / "locations.xlsx"
    assert {loc.code for loc in settings.form.locations if loc.level == 1} == set(PROVINCES)
    # A table of another country than the project's is refused.
    with pytest.raises(ConfigError, match="not only of 'th'"):
        write_starter(tmp_path / "q", "th", locations_file=table)


def test_init_without_a_table_uses_the_names_in_use_and_says_where_the_table_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path / "kh"), "--country", "kh"]) == 0
    assert "https://data.humdata.org/dataset/cod-ab-khm" in capsys.readouterr().out
    names = {loc.code: loc.name for loc in load_settings(tmp_path / "kh" / "kobo-tip.toml").form.locations}
    assert names["KH-2"] == "Battambang" and names["KH-17"] == "Siemreap"
    write_starter(tmp_path / "th", "th")
    names = {loc.code: loc.name for loc in load_settings(tmp_path / "th" / "kobo-tip.toml").form.locations}
    assert names["TH-10"] == "Bangkok"


# --- the name-code hint's examples ------------------------------------------------------------


def _uic_hints(settings: Settings) -> dict[str, str]:
    labels = [load_labels(lang) for lang in settings.project.languages]
    survey = build_sheets(settings, "1", labels).survey.rows
    row = next(r for r in survey if r.get("name") == ind.UIC_GIVEN)
    return {key: text for key, text in row.items() if key.startswith("hint::")}


def test_the_hint_examples_follow_the_form_languages(tmp_path: Path) -> None:
    cambodian = _uic_hints(load_settings(_cambodian_project(tmp_path / "kh", ["English (en)", "Khmer (km)"])))
    assert set(cambodian) == {"hint::English (en)", "hint::Khmer (km)"}
    for text in cambodian.values():
        assert "Maria → Ma" in text and "សុភាព → សុភា" in text
        assert "สมศรี" not in text and "{examples}" not in text
    config = write_project(tmp_path / "th", project=_project("th", ["French (fr)", "Thai (th)"]))
    thai = _uic_hints(load_settings(config))
    assert "สมศรี → สม" in thai["hint::French (fr)"] and "เมย์ → เม" in thai["hint::Thai (th)"]
    assert "Saisissez" in thai["hint::French (fr)"] and "សុភាព" not in thai["hint::French (fr)"]
    # A language with no examples of its own: the neutral one alone.
    assert name_examples(["fr", "sw"]) == "Maria → Ma"


def _first_two_letters(name: str) -> str:
    """The contract's rule as the form's constraint checks it: letters (Unicode L) with the
    marks (M) after each, up to the third letter."""
    starts = [i for i, char in enumerate(name) if unicodedata.category(char)[0] == "L"]
    assert starts and starts[0] == 0 and all(unicodedata.category(c)[0] in "LM" for c in name)
    return name[: starts[2]] if len(starts) > 2 else name


@pytest.mark.parametrize("pair", [p for pairs in EXAMPLES_BY_LANGUAGE.values() for p in pairs])
def test_every_example_is_the_first_two_letters_the_form_accepts(pair: tuple[str, str]) -> None:
    name, letters = pair
    assert _first_two_letters(name) == letters


def test_the_report_names_places_in_the_report_language(tmp_path: Path) -> None:
    locations = load_locations(write_adm2_csv(tmp_path / "khm_adm2.csv"))
    khmer = ReportWords.for_language(load_labels(parse_language("Khmer (km)")), locations)
    english = ReportWords.for_language(load_labels(parse_language("English (en)")), locations)
    assert khmer.category("location", "KH02") == "បាត់ដំបង"
    assert english.category("location", "KH02") == "Battambang"
    assert khmer.category("location", "KH1703") == "Angkor Thum"  # no Khmer name in the table
