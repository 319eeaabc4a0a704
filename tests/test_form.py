"""The form generator: the XLSForm of contract section 2, converted and checked by a real ODK Validate.

Each config is built once per module (ODK Validate costs about a second of Java per run). Java
is required: without it these tests fail rather than pass without the validator.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pycountry
import pytest
from openpyxl import load_workbook
from pyxform.xls2xform import convert

from conftest import REPO, write_project
from kobo_tip import indicator as ind
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import FormError
from kobo_tip.form import FormBuild, build_form
from kobo_tip.form.builder import Sheet
from kobo_tip.form.convert import convert_xlsform
from kobo_tip.form.writer import read_sheet, write_xlsx
from kobo_tip.labels import load_labels

NS = {
    "h": "http://www.w3.org/1999/xhtml",
    "xf": "http://www.w3.org/2002/xforms",
    "jr": "http://openrosa.org/javarosa",
}
JR_CONSTRAINT_MSG = "{http://openrosa.org/javarosa}constraintMsg"
JR_REQUIRED_MSG = "{http://openrosa.org/javarosa}requiredMsg"
SPEC_FIELDS = (
    ind.CONSENT_STATEMENT,
    ind.IMMEDIATE_DANGER,
    ind.EMERGENCY_REFERRAL,
    ind.CONSENT,
    ind.CONSENT_BY,
    ind.EVENT_DATE,
    ind.ACTION,
    ind.STAKEHOLDER_TYPE,
    ind.STAKEHOLDER_ID,
    ind.IDENTIFICATION_COUNTRY,
    ind.LOCATION_ADMIN1,
    ind.LOCATION_ADMIN2,
    ind.CASE_REF,
    ind.PERSON_CATEGORY,
    ind.EXPLOITATION_TYPE,
    ind.GBV_TYPE,
    ind.UIC_GIVEN,
    ind.UIC_MOTHER,
    ind.BIRTH_YEAR,
    ind.GENDER,
    ind.AGE_YEARS,
    ind.AGE_ESTIMATED,
    ind.COUNTRY_ORIGIN,
    ind.REPORTED_ELSEWHERE,
    ind.SERVICES,
    ind.REFERRAL_OUTCOME,
    ind.REFERRAL_ORG,
    ind.REFERRAL_DATE,
    ind.CONSENT_TO_SHARE,
    ind.FOLLOW_UP_DATE,
)
META_FIELDS = ("start", "end", "today", "deviceid", "username")
ETHNICITIES = ("akha", "karen", "shan", "hmong")
OTHER_COUNTRY = "mm"  # a second country in the two-level locations of the wide config


@dataclass(frozen=True)
class Built:
    settings: Settings
    build: FormBuild
    survey: list[dict[str, str]]
    choices: list[dict[str, str]]
    settings_row: dict[str, str]
    xform: ET.Element

    def row(self, name: str) -> dict[str, str]:
        return next(row for row in self.survey if row.get("name") == name)

    def choice_names(self, list_name: str) -> list[str]:
        return [row["name"] for row in self.choices if row["list_name"] == list_name]

    def bind(self, name: str) -> ET.Element:
        return next(
            b for b in self.xform.iter(f"{{{NS['xf']}}}bind") if b.get("nodeset", "").endswith(f"/{name}")
        )


def _load(settings: Settings, build: FormBuild) -> Built:
    return Built(
        settings=settings,
        build=build,
        survey=read_sheet(build.xlsx_path, "survey"),
        choices=read_sheet(build.xlsx_path, "choices"),
        settings_row=read_sheet(build.xlsx_path, "settings")[0],
        xform=ET.parse(build.xml_path).getroot(),
    )


def _project_section(languages: list[str]) -> str:
    quoted = ", ".join(f'"{lang}"' for lang in languages)
    return (
        'name = "Test project"\ncountry = "th"\nstart_date = 2025-10-01\nend_date = 2028-09-30\n'
        f'languages = [{quoted}]\nreport_language = "{languages[0]}"'
    )


def _form_section(*, disability: bool, ethnicities: tuple[str, ...] = ()) -> str:
    quoted = ", ".join(f'"{name}"' for name in ethnicities)
    return (
        'form_id = "tip_victims"\ntitle = "Victims identified or referred"\n'
        'roster = "forms/stakeholders.csv"\nlocations = "forms/locations.csv"\n'
        f"disability = {str(disability).lower()}\nethnicities = [{quoted}]"
    )


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The example config exactly: English and French, disability on, no ethnicity."""
    config = write_project(tmp_path_factory.mktemp("example"))
    settings = load_settings(config)
    return _load(settings, build_form(settings))


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Three languages (Khmer has no translation file), 40 stakeholders, admin1 + admin2 in two
    countries, ethnicity on, disability off."""
    root = tmp_path_factory.mktemp("wide")
    config = write_project(
        root,
        project=_project_section(["English (en)", "French (fr)", "Khmer (km)"]),
        form=_form_section(disability=False, ethnicities=ETHNICITIES),
    )
    types = ind.CHOICES["stakeholder_type"]
    with (root / "forms" / "stakeholders.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("id", "name", "type", "trained_on"))
        writer.writerows(
            (f"sh_{i:02d}", f"Stakeholder {i}, office", types[i % len(types)], "") for i in range(40)
        )
    with (root / "forms" / "locations.csv").open("a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((1, "MM-13", "Kayin", OTHER_COUNTRY))
        writer.writerow((2, "MM-13-01", "Myawaddy", "MM-13"))
    settings = load_settings(config)
    return _load(settings, build_form(settings))


# --- ODK Validate ---------------------------------------------------------------------------


def test_example_form_passes_odk_validate_without_warnings(example: Built) -> None:
    assert example.build.validated
    assert example.build.warnings == []
    assert example.build.xlsx_path.is_file()


def test_wide_form_passes_odk_validate_and_counts_missing_khmer_texts(wide: Built) -> None:
    assert wide.build.validated
    assert len(wide.settings.form.roster) == 40
    # Khmer has no translation file: one short warning with the count and the command to run.
    (warning,) = wide.build.warnings
    english = load_labels(wide.settings.project.languages[0])
    form_texts = sum(1 for key in english.texts if not key.startswith("report."))
    assert warning == (
        f"Khmer (km): {form_texts} form text(s) have no translation and show in English; export them "
        'for a translator with kobo-tip translations export --language "Khmer (km)".'
    )


# --- the XLSForm ------------------------------------------------------------------------------


def test_every_spec_field_is_in_the_survey(example: Built, wide: Built) -> None:
    names = {row.get("name") for row in example.survey}
    assert set(SPEC_FIELDS) | set(META_FIELDS) | {ind.FORM_VERSION} <= names
    assert set(ind.WG_FIELDS) <= {row.get("name") for row in example.survey}
    assert ind.ETHNICITY not in {row.get("name") for row in example.survey}
    wide_names = {row.get("name") for row in wide.survey}
    assert ind.ETHNICITY in wide_names
    # No referral directory in the wide config: no question about the receiving organisation.
    assert ind.REFERRAL_ORG not in wide_names and wide.choice_names("referral_org") == []
    assert set(SPEC_FIELDS) - {ind.REFERRAL_ORG, ind.LOCATION_ADMIN2} <= wide_names
    assert not set(ind.WG_FIELDS) & wide_names
    assert ind.GROUP_WG not in wide_names


def test_questions_sit_in_the_spec_groups_with_field_list(example: Built) -> None:
    group_of: dict[str, str] = {}
    stack: list[str] = []
    for row in example.survey:
        if row["type"] == "begin_group":
            assert row["appearance"] == "field-list"
            stack.append(row["name"])
        elif row["type"] == "end_group":
            stack.pop()
        else:
            group_of[row["name"]] = "/".join(stack)
    assert group_of[ind.CONSENT] == group_of[ind.CONSENT_BY] == group_of[ind.CONSENT_STATEMENT] == "intro"
    assert group_of[ind.EVENT_DATE] == group_of[ind.GBV_TYPE] == "event"
    assert group_of[ind.UIC_GIVEN] == group_of[ind.REPORTED_ELSEWHERE] == "person"
    assert group_of["wg_seeing"] == "person/wg"
    assert group_of[ind.SERVICES] == group_of[ind.REFERRAL_OUTCOME] == "referral"
    for name in (ind.REFERRAL_ORG, ind.REFERRAL_DATE, ind.CONSENT_TO_SHARE, ind.FOLLOW_UP_DATE):
        assert group_of[name] == "referral", name
    assert group_of["start"] == group_of[ind.FORM_VERSION] == ""


def test_the_intro_reads_the_statement_then_asks_about_danger_first(example: Built) -> None:
    names = [row["name"] for row in example.survey if row["type"] not in ("begin_group", "end_group")]
    intro = names[names.index(ind.CONSENT_STATEMENT) : names.index(ind.CONSENT_BY) + 1]
    assert intro == [
        ind.CONSENT_STATEMENT,
        ind.IMMEDIATE_DANGER,
        ind.EMERGENCY_REFERRAL,
        ind.CONSENT,
        ind.CONSENT_BY,
    ]
    assert example.row(ind.CONSENT_STATEMENT)["type"] == example.row(ind.EMERGENCY_REFERRAL)["type"] == "note"
    assert example.row(ind.IMMEDIATE_DANGER)["type"] == "select_one yes_no_unknown"
    assert example.row(ind.EMERGENCY_REFERRAL)["relevant"] == "${immediate_danger} = 'yes'"
    assert example.row(ind.CONSENT_BY)["type"] == "select_one consent_by"
    assert example.row(ind.CONSENT_BY)["relevant"] == "${consent} = 'yes'"
    # The age's check against the birth year reads whether it is estimated: asked before it.
    assert names.index(ind.AGE_ESTIMATED) == names.index(ind.AGE_YEARS) - 1


def test_the_referral_group_asks_organisation_dates_and_consent_to_share(example: Built) -> None:
    assert example.row(ind.REFERRAL_ORG)["type"] == "select_one referral_org"
    directory = example.settings.form.referral_directory
    assert example.choice_names("referral_org") == [org.id for org in directory] + ["not_listed"]
    first = next(row for row in example.choices if row["list_name"] == "referral_org")
    assert first["label::English (en)"] == first["label::French (fr)"] == directory[0].name
    assert example.row(ind.REFERRAL_DATE)["type"] == example.row(ind.FOLLOW_UP_DATE)["type"] == "date"
    assert example.row(ind.REFERRAL_DATE)["constraint"] == ". >= ${event_date} and . <= today()"
    assert example.row(ind.FOLLOW_UP_DATE)["constraint"] == ". >= ${event_date}"
    assert example.row(ind.CONSENT_TO_SHARE)["type"] == "select_one yes_no"
    # None of the new questions is free text about the person.
    for name in (ind.IMMEDIATE_DANGER, ind.CONSENT_BY, ind.REFERRAL_ORG, ind.CONSENT_TO_SHARE):
        assert example.row(name)["type"].startswith("select_one "), name


def test_question_types_follow_the_spec(example: Built) -> None:
    assert example.row(ind.EVENT_DATE)["type"] == "date"
    assert example.row(ind.BIRTH_YEAR)["type"] == example.row(ind.AGE_YEARS)["type"] == "integer"
    assert example.row(ind.UIC_GIVEN)["type"] == example.row(ind.CASE_REF)["type"] == "text"
    assert example.row(ind.ACTION)["type"] == "select_multiple action"
    assert example.row(ind.SERVICES)["type"] == "select_multiple service"
    assert example.row(ind.GBV_TYPE)["type"] == "select_one gbv_type"
    assert example.row(ind.STAKEHOLDER_ID)["type"] == "select_one stakeholder"
    assert example.row(ind.COUNTRY_ORIGIN)["appearance"] == "autocomplete"
    assert example.row(ind.IDENTIFICATION_COUNTRY)["appearance"] == "autocomplete"
    assert example.row(ind.IDENTIFICATION_COUNTRY)["default"] == "th"
    assert example.row(ind.FORM_VERSION) == {
        "type": "calculate",
        "name": ind.FORM_VERSION,
        "calculation": f"'{example.build.version}'",
    }
    required = {row["name"] for row in example.survey if row.get("required") == "yes"}
    assert required == {
        ind.IMMEDIATE_DANGER,
        ind.CONSENT,
        ind.CONSENT_BY,  # when shown: relevant only with consent
        ind.CONSENT_TO_SHARE,  # when shown: in the referral group
        ind.EVENT_DATE,
        ind.ACTION,
        ind.STAKEHOLDER_TYPE,
        ind.STAKEHOLDER_ID,
        ind.STAKEHOLDER_OTHER_ORG,  # when shown: relevant only for a stakeholder not on the roster
        ind.IDENTIFICATION_COUNTRY,
        ind.LOCATION_ADMIN1,
        ind.PERSON_CATEGORY,
        ind.UIC_GIVEN,
        ind.UIC_MOTHER,
        ind.BIRTH_YEAR,
        ind.GENDER,
        ind.AGE_YEARS,
        ind.COUNTRY_ORIGIN,
        ind.SERVICES,
    }


def test_every_spec_choice_is_in_its_list(example: Built, wide: Built) -> None:
    for list_name, names in ind.CHOICES.items():
        assert example.choice_names(list_name) == list(names)
    assert example.choice_names("stakeholder") == [s.id for s in example.settings.form.roster] + [
        "not_listed"
    ]
    countries = sorted(c.alpha_2.lower() for c in pycountry.countries)
    assert sorted(example.choice_names("country")[:-2]) == countries
    assert example.choice_names("country")[-2:] == ["stateless", "unknown"]
    locations = example.settings.form.locations
    # Locations come in the order of their names (the default language's), not their codes.
    by_name = sorted(locations, key=lambda loc: loc.name.casefold())
    assert example.choice_names("admin1") == [loc.code for loc in by_name if loc.level == 1]
    assert example.choice_names("admin2") == [loc.code for loc in by_name if loc.level == 2]
    assert example.choice_names("ethnicity") == []
    assert wide.choice_names("ethnicity") == list(ETHNICITIES)
    assert len(wide.choice_names("stakeholder")) == 41


def test_every_label_and_hint_column_is_filled_in_every_language(example: Built, wide: Built) -> None:
    for built in (example, wide):
        languages = [lang.label for lang in built.settings.project.languages]
        for row in built.survey:
            if row["type"] in (*META_FIELDS, "calculate", "end_group"):
                continue
            kinds = ["label"] if row["type"] == "begin_group" else ["label", "hint"]
            kinds += [
                kind
                for kind, rule in (("required_message", "required"), ("constraint_message", "constraint"))
                if row.get(rule)
            ]
            for kind in kinds:
                for language in languages:
                    assert row.get(f"{kind}::{language}", "").strip(), (row["name"], kind, language)
        for row in built.choices:
            for language in languages:
                assert row.get(f"label::{language}", "").strip(), (row["list_name"], row["name"], language)


def test_texts_come_from_each_language(example: Built, wide: Built) -> None:
    french = load_labels(example.settings.project.languages[1])
    consent = example.row(ind.CONSENT)
    assert consent["label::French (fr)"] == french.field(ind.CONSENT)
    assert consent["label::French (fr)"] != consent["label::English (en)"]
    thailand = next(row for row in example.choices if row["list_name"] == "country" and row["name"] == "th")
    assert thailand["label::English (en)"] == "Thailand"
    assert thailand["label::French (fr)"] == "Thaïlande"
    # Khmer has no translation file: English text, but country names from pycountry's Khmer catalogue.
    assert wide.row(ind.CONSENT)["label::Khmer (km)"] == wide.row(ind.CONSENT)["label::English (en)"]
    khmer_thailand = next(r for r in wide.choices if r["list_name"] == "country" and r["name"] == "th")
    assert khmer_thailand["label::Khmer (km)"] == "ថៃ"
    # Roster names have no translation: copied into every language.
    first = example.settings.form.roster[0]
    roster_row = next(row for row in example.choices if row["name"] == first.id)
    assert roster_row["label::English (en)"] == roster_row["label::French (fr)"] == first.name


def test_headers_and_sheet_names_are_lower_case(example: Built) -> None:
    workbook = load_workbook(example.build.xlsx_path, read_only=True)
    assert workbook.sheetnames == ["survey", "choices", "settings"]
    workbook.close()
    for sheet in ("survey", "choices", "settings"):
        for column in _header(example.build.xlsx_path, sheet):
            assert column.split("::")[0] == column.split("::")[0].lower(), column


def test_settings_sheet(example: Built, wide: Built) -> None:
    assert example.settings_row == {
        "form_title": "Victims identified or referred",
        "form_id": "tip_victims",
        "name": "tip_victims",
        "version": example.build.version,
        "default_language": "English (en)",
        "instance_name": "concat(${event_date}, ' ', ${stakeholder_id})",
    }
    assert re.fullmatch(r"20\d{12}", example.build.version)
    assert wide.settings_row["default_language"] == "English (en)"


def test_the_xlsx_alone_converts_to_the_validated_xform(example: Built) -> None:
    """A converter given only the XLSX (Central's pyxform-http, Kobo's, anyone's) names no form,
    so the settings sheet's ``name`` must give the root: the same XForm as the one validated."""
    alone = convert(xlsform=example.build.xlsx_path.read_bytes(), file_type=".xlsx", pretty_print=True)
    assert alone.xform == example.build.xml_path.read_text(encoding="utf-8")
    root = ET.fromstring(alone.xform).find(".//xf:model/xf:instance/*", NS)
    assert root is not None and root.tag == f"{{{NS['xf']}}}tip_victims"


def test_selects_are_filtered_with_choice_filter_columns(example: Built, wide: Built) -> None:
    assert example.row(ind.STAKEHOLDER_ID)["choice_filter"] == "type=${stakeholder_type} or name='not_listed'"
    assert example.row(ind.LOCATION_ADMIN1)["choice_filter"] == "country=${identification_country}"
    assert example.row(ind.LOCATION_ADMIN2)["choice_filter"] == "parent=${location_admin1}"
    hidden = example.row(ind.IDENTIFICATION_COUNTRY)["choice_filter"]
    assert "name != 'stateless'" in hidden and "name != 'unknown'" in hidden
    assert "choice_filter" not in example.row(ind.COUNTRY_ORIGIN)
    assert {"type", "country", "parent"} <= set(_header(example.build.xlsx_path, "choices"))
    by_id = {row["name"]: row for row in example.choices if row["list_name"] == "stakeholder"}
    assert "type" not in by_id["not_listed"]
    for stakeholder in example.settings.form.roster:
        assert by_id[stakeholder.id]["type"] == stakeholder.type
    for row in wide.choices:
        if row["list_name"] == "admin1":
            assert row["country"] in ("th", OTHER_COUNTRY)
        if row["list_name"] == "admin2":
            assert row["parent"] in wide.choice_names("admin1")
    # admin1 is asked only in countries that have admin1 entries; admin2 only under an admin1 that has some.
    assert wide.row(ind.LOCATION_ADMIN1)["relevant"] == (
        f"${{identification_country}} = 'th' or ${{identification_country}} = '{OTHER_COUNTRY}'"
    )
    assert "${location_admin1} = 'MM-13'" in wide.row(ind.LOCATION_ADMIN2)["relevant"]
    assert "${location_admin1} = 'TH-10'" not in wide.row(ind.LOCATION_ADMIN2)["relevant"]


def _header(path: Path, name: str) -> tuple[str, ...]:
    workbook = load_workbook(path, read_only=True)
    header = next(workbook[name].iter_rows(values_only=True))
    workbook.close()
    return tuple(header)


# --- the XForm -------------------------------------------------------------------------------


def _itext(built: Built, ref: str, language: str) -> str:
    """The text of an itext reference such as jr:itext('/tip_victims/event/event_date:jr:constraintMsg')."""
    text_id = re.fullmatch(r"jr:itext\('(.*)'\)", ref)[1]  # type: ignore[index]
    translation = built.xform.find(f".//xf:itext/xf:translation[@lang='{language}']", NS)
    assert translation is not None
    node = translation.find(f"xf:text[@id='{text_id}']/xf:value", NS)
    assert node is not None
    return node.text or ""


def _squash(expression: str) -> str:
    return re.sub(r"\s+", " ", expression).strip()


def test_xform_binds_required_and_constraints_with_messages(example: Built) -> None:
    english, french = (
        load_labels(example.settings.project.languages[0]),
        load_labels(example.settings.project.languages[1]),
    )
    expected_constraints = {
        ind.EVENT_DATE: ". <= today() and . >= date('2025-10-01')",
        ind.ACTION: "count-selected(.) >= 1",
        ind.AGE_YEARS: ". >= 0 and . <= 120 and (",  # then the birth year's agreement (test_webforms)
        ind.BIRTH_YEAR: ". >= 1900 and . <= int(format-date(today(), '%Y'))",
        ind.UIC_GIVEN: "string-length(.) <= 12 and regex(",
        ind.UIC_MOTHER: ". = '99' or (string-length(.) <= 12 and regex(",
        ind.PERSON_CATEGORY: "count-selected(.) >= 1 and not(selected(., 'trafficking_presumed')",
        ind.STAKEHOLDER_OTHER_ORG: "string-length(.) <= 80",
    }
    for field, constraint in expected_constraints.items():
        bind = example.bind(field)
        assert bind.get("required") == "true()", field
        assert bind.get("constraint", "").startswith(constraint), (field, bind.get("constraint"))
        assert _itext(example, bind.get(JR_CONSTRAINT_MSG, ""), "English (en)") == english.field(
            field, "constraint_message"
        )
        assert _itext(example, bind.get(JR_CONSTRAINT_MSG, ""), "French (fr)") == french.field(
            field, "constraint_message"
        )
        assert _itext(example, bind.get(JR_REQUIRED_MSG, ""), "French (fr)") == french.field(
            field, "required_message"
        )
    assert example.bind(ind.CASE_REF).get("required") is None
    assert example.bind(ind.BIRTH_YEAR).get("type") == "int"


def test_xform_binds_relevance(example: Built) -> None:
    def relevant(name: str) -> str:
        return _squash(example.bind(name).get("relevant", ""))

    assert relevant(ind.GROUP_REFERRAL) == "selected( /tip_victims/event/action , 'referred')"
    assert relevant(ind.GROUP_PERSON) == "/tip_victims/intro/consent = 'yes'"
    assert relevant(ind.GROUP_WG) == "/tip_victims/person/age_years >= 5"
    assert relevant(ind.GBV_TYPE) == "selected( /tip_victims/event/person_category , 'gbv')"
    for category in ("trafficking_presumed", "trafficking_confirmed", "exploitation_other"):
        assert f"'{category}')" in relevant(ind.EXPLOITATION_TYPE)
    assert relevant(ind.LOCATION_ADMIN1) == "/tip_victims/event/identification_country = 'th'"
    assert example.bind(ind.SERVICES).get("required") == "true()"
    assert relevant(ind.CONSENT_BY) == "/tip_victims/intro/consent = 'yes'"
    assert relevant(ind.EMERGENCY_REFERRAL) == "/tip_victims/intro/immediate_danger = 'yes'"
    assert example.bind(ind.CONSENT_TO_SHARE).get("required") == "true()"
    assert _squash(example.bind(ind.REFERRAL_DATE).get("constraint", "")) == (
        ". >= /tip_victims/event/event_date and . <= today()"
    )


def test_xform_itemsets_carry_the_choice_filters(example: Built) -> None:
    nodesets = {_squash(item.get("nodeset", "")) for item in example.xform.iter(f"{{{NS['xf']}}}itemset")}
    assert (
        "instance('stakeholder')/root/item[type= /tip_victims/event/stakeholder_type or name='not_listed']"
        in nodesets
    )
    assert "instance('admin1')/root/item[country= /tip_victims/event/identification_country ]" in nodesets
    assert "instance('admin2')/root/item[parent= /tip_victims/event/location_admin1 ]" in nodesets
    assert "instance('country')/root/item[name != 'stateless' and name != 'unknown']" in nodesets


def test_xform_carries_the_version_and_the_form_id(example: Built) -> None:
    instance = example.xform.find(".//xf:model/xf:instance/*", NS)
    assert instance is not None
    assert instance.tag == f"{{{NS['xf']}}}tip_victims"
    assert instance.get("id") == "tip_victims"
    assert instance.get("version") == example.build.version
    assert example.bind(ind.FORM_VERSION).get("calculate") == f"'{example.build.version}'"


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("MA", True),
        ("jó", True),
        ("jo\u0301", True),  # the same with a combining accent
        ("สม", True),
        ("เม", True),  # a Thai leading vowel is a letter: เมย์ gives เม
        ("ที่นี่", True),  # two Thai letters with their vowel and tone marks: six characters
        ("ßa", True),
        ("ក្ម", True),  # Khmer: a letter, the subscript sign (a mark), a letter
        ("abc", False),  # a third letter
        ("เมย", False),
        ("M", True),  # a name of one letter: the key pads it with 9
        ("伟", True),  # a Chinese given name of one character
        ("မြ", True),  # one Burmese letter with its medial
        ("\u0301a", False),  # a mark first
        ("M1", False),
        ("๑๒", False),  # Thai digits
        ("o'", False),
        ("A B", False),
        ("A.", False),
        ("😀a", False),
        ("ABCDEFGHIJKLM", False),
    ],
)
def test_uic_constraint_accepts_letters_only(example: Built, answer: str, ok: bool) -> None:
    constraint = example.row(ind.UIC_GIVEN)["constraint"]
    pattern = re.search(r"regex\(\., '(.*)'\)", constraint)[1]  # type: ignore[index]
    # Python reads \uXXXX escapes and ranges of them as JavaScript and Java do.
    assert (len(answer) <= 12 and re.search(pattern, answer) is not None) is ok


# --- staleness, versions, failures ----------------------------------------------------------


def _comparable(path: Path, version: str) -> dict[str, list[dict[str, str]]]:
    sheets = {name: read_sheet(path, name) for name in ("survey", "choices", "settings")}
    for row in sheets["settings"]:
        row.pop("version")
    for row in sheets["survey"]:
        if "calculation" in row:
            row["calculation"] = row["calculation"].replace(version, "VERSION")
    return sheets


def test_committed_form_is_not_stale(example: Built) -> None:
    committed = REPO / "forms" / "tip_victims.xlsx"
    committed_version = read_sheet(committed, "settings")[0]["version"]
    assert _comparable(committed, committed_version) == _comparable(
        example.build.xlsx_path, example.build.version
    ), "forms/tip_victims.xlsx is stale: rebuild it with 'make form'."
    committed_xml = ET.parse(REPO / "forms" / "tip_victims.xml").getroot()
    assert committed_xml.find(".//xf:model/xf:instance/*", NS).get("version") == committed_version  # type: ignore[union-attr]


def test_without_java_the_form_is_written_unvalidated_and_each_build_gets_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kobo_tip.form.convert.shutil.which", lambda name: None)
    settings = load_settings(write_project(tmp_path / "nojava"))
    first = build_form(settings, out_dir=tmp_path / "out")
    second = build_form(settings, out_dir=tmp_path / "out")
    assert not first.validated
    assert any("apt-get install default-jre-headless" in warning for warning in first.warnings)
    assert first.xlsx_path.is_file() and first.xml_path.is_file()
    assert second.version > first.version
    assert read_sheet(second.xlsx_path, "settings")[0]["version"] == second.version


def test_a_pyxform_warning_fails_the_build_unless_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kobo_tip.form.convert.shutil.which", lambda name: None)
    # pyxform warns about a region subtag it does not know as a language code.
    config = write_project(
        tmp_path / "region", project=_project_section(["English (en)", "Portuguese (pt-BR)"])
    )
    settings = load_settings(config)
    with pytest.raises(FormError) as failure:
        build_form(settings, out_dir=tmp_path / "out")
    assert "pt-BR" in str(failure.value) and "--ignore-warnings" in str(failure.value)
    assert (tmp_path / "out" / "tip_victims.xlsx").is_file()
    assert not (tmp_path / "out" / "tip_victims.xml").exists()
    kept = build_form(settings, out_dir=tmp_path / "out", ignore_warnings=True)
    assert kept.xml_path.is_file()
    assert any("pt-BR" in warning for warning in kept.warnings)


def test_an_invalid_xpath_is_reported_with_odk_validates_message(tmp_path: Path) -> None:
    survey = Sheet(
        "survey",
        ("type", "name", "label", "constraint"),
        [{"type": "integer", "name": "n", "label": "N", "constraint": ". >"}],
    )
    settings = Sheet("settings", ("form_id", "version"), [{"form_id": "bad", "version": "1"}])
    path = tmp_path / "bad.xlsx"
    write_xlsx([survey, settings], path)
    with pytest.raises(FormError, match=r"ODK Validate rejected bad\.xlsx"):
        convert_xlsform(path, "bad")


def test_a_pyxform_error_is_reported_with_pyxforms_message(tmp_path: Path) -> None:
    survey = Sheet(
        "survey", ("type", "name", "label"), [{"type": "select_one nowhere", "name": "q", "label": "Q"}]
    )
    path = tmp_path / "bad.xlsx"
    write_xlsx([survey], path)
    with pytest.raises(FormError, match=r"pyxform rejected bad\.xlsx: .*choices sheet"):
        convert_xlsform(path, "bad")


def test_a_label_starting_with_equals_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "literal.xlsx"
    write_xlsx(
        [
            Sheet(
                "choices", ("list_name", "name", "label"), [{"list_name": "l", "name": "a", "label": "=1+1"}]
            )
        ],
        path,
    )
    assert read_sheet(path, "choices") == [{"list_name": "l", "name": "a", "label": "=1+1"}]


def test_a_java_that_does_not_start_gives_an_unvalidated_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def java_fails() -> None:
        raise OSError("Java could not be started")  # what pyxform raises when it cannot run Java

    monkeypatch.setattr("pyxform.validators.odk_validate.check_java_available", java_fails)
    settings = load_settings(write_project(tmp_path / "broken"))
    build = build_form(settings, out_dir=tmp_path / "out")
    assert not build.validated
    assert build.warnings[-1].startswith("Java could not be run")
    assert build.xml_path.is_file()
