"""Bad configs: each is a ConfigError whose one sentence names the key or file and what to fix."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kobo_tip.cli import main
from kobo_tip.config import load, load_settings
from kobo_tip.config.reader import Reader
from kobo_tip.config.sections import SECTIONS
from kobo_tip.errors import ConfigError

PROJECT = (
    'name = "P"\ncountry = "th"\nstart_date = {start}\nend_date = 2028-09-30\n'
    'languages = [{languages}]\nreport_language = "English (en)"'
)
FORM = (
    'form_id = "tip_victims"\nroster = "{roster}"\nlocations = "{locations}"\n'
    "disability = {disability}\nethnicities = []"
)


def project(*, start: str = "2025-10-01", languages: str = '"English (en)", "French (fr)"') -> str:
    return PROJECT.format(start=start, languages=languages)


def form(
    *,
    roster: str = "forms/stakeholders.csv",
    locations: str = "forms/locations.csv",
    disability: str = "true",
) -> str:
    return FORM.format(roster=roster, locations=locations, disability=disability)


ROSTER_HEADER = "id,name,type,trained_on\n"

# (config sections, roster CSV text or None to keep the example roster, expected message)
BAD_CONFIGS = {
    "unknown key": (
        {"form": form() + "\ndisabilty = true"},
        None,
        r"Unknown key 'disabilty' in \[form\] \(did you mean 'disability'\?\)",
    ),
    "unknown section": (
        {"reprot": 'out_dir = "r"'},
        None,
        r"Unknown section \[reprot\] \(did you mean 'report'\?\)",
    ),
    "wrong type": (
        {"form": form(disability='"yes"')},
        None,
        r"\[form\] disability must be true or false, got 'yes'",
    ),
    "missing roster": (
        {"form": form(roster="forms/nobody.csv")},
        None,
        r"\[form\] roster: roster file .*nobody\.csv does not exist",
    ),
    "roster with a bad type": (
        {},
        ROSTER_HEADER + "a1,Police post,polise,\n",
        r"Roster .*stakeholders\.csv line 2: type 'polise' is not a stakeholder type",
    ),
    "roster with a duplicate id": (
        {},
        ROSTER_HEADER + "a1,One,ngo_partner,\nb2,Two,ngo_partner,\na1,Three,other,\n",
        r"Roster .*stakeholders\.csv line 4: duplicate id 'a1'",
    ),
    "roster without stakeholders": ({}, ROSTER_HEADER, r"Roster .*stakeholders\.csv has no stakeholders"),
    "roster with a bad date": (
        {},
        ROSTER_HEADER + "a1,One,ngo_partner,15/10/2025\n",
        r"line 2: trained_on '15/10/2025' is not a date written YYYY-MM-DD",
    ),
    "unknown language": (
        {"project": project(languages='"English (en)", "Elvish (zz)"')},
        None,
        r"\[project\] languages: 'zz' in 'Elvish \(zz\)' is not an ISO 639 language code",
    ),
    "language without a code": (
        {"project": project(languages='"English (en)", "French"')},
        None,
        r"\[project\] languages: 'French' is not written 'Name \(code\)'",
    ),
    "bad date": (
        {"project": project(start='"2025-13-01"')},
        None,
        r"\[project\] start_date must be a date written YYYY-MM-DD, got '2025-13-01'",
    ),
    "missing locations file": (
        {"form": form(locations="forms/nowhere.csv")},
        None,
        r"\[form\] locations: locations file .*nowhere\.csv does not exist",
    ),
}


@pytest.fixture
def bad_config(make_project: Callable[..., Path], request: pytest.FixtureRequest) -> tuple[Path, str]:
    sections, roster, message = BAD_CONFIGS[request.param]
    config = make_project(**sections)
    if roster is not None:
        (config.parent / "forms" / "stakeholders.csv").write_text(roster, encoding="utf-8")
    return config, message


@pytest.mark.parametrize("bad_config", list(BAD_CONFIGS), indirect=True)
def test_bad_config_is_a_config_error_naming_the_problem(bad_config: tuple[Path, str]) -> None:
    config, message = bad_config
    with pytest.raises(ConfigError) as failure:
        load_settings(config)
    assert re.search(message, str(failure.value)), str(failure.value)
    assert "\n" not in str(failure.value)


@pytest.mark.parametrize(
    "bad_config", ["unknown key", "roster with a duplicate id", "unknown language"], indirect=True
)
def test_form_build_exits_2_with_the_message_on_a_bad_config(
    bad_config: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, message = bad_config
    assert main(["form", "build", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not (config.parent / "forms" / "tip_victims.xlsx").exists()


def test_the_example_config_loads(example_project: Path) -> None:
    settings = load_settings(example_project)
    assert [lang.label for lang in settings.project.languages] == ["English (en)", "French (fr)"]
    assert settings.form.roster_path == example_project.parent / "forms" / "stakeholders.csv"
    assert any(loc.level == 2 for loc in settings.form.locations)
    assert settings.form.disability and settings.form.ethnicities == ()


def test_missing_config_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found .*kobo-tip init"):
        load_settings(tmp_path / "kobo-tip.toml")


ROSTER_ROWS = [
    ("a1", "Poste de police, Mae Sot", "border_control", "2025-11-03"),
    ("b2", "ONG Été", "ngo_partner", ""),
]


@pytest.mark.parametrize(
    ("separator", "encoding"),
    [(";", "utf-8"), (";", "utf-8-sig"), ("\t", "utf-16"), (",", "utf-8-sig")],
    ids=["semicolons", "semicolons with BOM", "Excel Unicode text", "commas with BOM"],
)
def test_a_roster_as_spreadsheets_save_it_is_read(
    example_project: Path, separator: str, encoding: str
) -> None:
    text = io.StringIO()
    writer = csv.writer(text, delimiter=separator)  # quotes a cell holding the separator, as Excel does
    writer.writerows([ROSTER_HEADER.strip().split(","), *ROSTER_ROWS])
    path = example_project.parent / "forms" / "stakeholders.csv"
    path.write_bytes(text.getvalue().encode(encoding))
    roster = load_settings(example_project).form.roster
    assert [(s.id, s.name, s.type) for s in roster] == [r[:3] for r in ROSTER_ROWS]


def test_a_latin_1_roster_is_told_its_encoding_and_how_to_save_it(example_project: Path) -> None:
    path = example_project.parent / "forms" / "stakeholders.csv"
    path.write_bytes((ROSTER_HEADER + "a1,ONG Été,ngo_partner,\n").encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_settings(example_project)
    message = str(caught.value)
    assert "is not UTF-8 text: line 2 holds the byte 0xC9, as Latin-1 or Windows-1252 files do" in message
    assert "CSV UTF-8 (Comma delimited)" in message


def test_a_header_that_is_not_the_roster_header_is_quoted(example_project: Path) -> None:
    path = example_project.parent / "forms" / "stakeholders.csv"
    path.write_text("ID|Name|Type|Trained\na1|x|other|\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"first line must be the header id,name,type,trained_on \(found 'ID\|Name"
    ):
        load_settings(example_project)


def test_the_referral_directory_is_read_with_its_services(example_project: Path) -> None:
    path = example_project.parent / "forms" / "referral_directory.csv"
    path.write_text(
        "id,name,services\nshelter,Safe House,shelter  medical\nclinic,Clinic,\n", encoding="utf-8"
    )
    directory = load_settings(example_project).form.referral_directory
    assert [(org.id, org.name, org.services) for org in directory] == [
        ("shelter", "Safe House", ("shelter", "medical")),
        ("clinic", "Clinic", ()),
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("a,A,shelter\na,B,\n", r"line 3: duplicate id 'a'"),
        ("not_listed,A,\n", r"line 2: id 'not_listed' is reserved for organisations not in the directory"),
        ("a b,A,\n", r"line 2: id 'a b' must be letters"),
        ("a,,\n", r"line 2: name is empty"),
        ("a,A,shelters\n", r"line 2: service 'shelters' is not a service \(did you mean 'shelter'\?\)"),
        ("", r"has no organisations: add some, or leave the key out"),
    ],
)
def test_a_bad_referral_directory_names_the_line_and_the_fix(
    example_project: Path, rows: str, message: str
) -> None:
    path = example_project.parent / "forms" / "referral_directory.csv"
    path.write_text("id,name,services\n" + rows, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"Referral directory .*{message}"):
        load_settings(example_project)


def test_without_a_referral_directory_the_config_loads_with_none(example_project: Path) -> None:
    text = example_project.read_text(encoding="utf-8")
    example_project.write_text(re.sub(r"(?m)^referral_directory = .*\n", "", text), encoding="utf-8")
    assert load_settings(example_project).form.referral_directory == ()


def test_each_section_reads_exactly_its_table_of_keys(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table a config's keys are checked against is the one its reader reads: a key added to
    one and not the other fails here (a key read outside its table fails at once in Reader)."""
    readers: list[Reader] = []

    class Recording(Reader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            readers.append(self)

    monkeypatch.setattr(load, "Reader", Recording)
    dhis2 = 'data_elements = {}\norg_unit = "ou1"\ncategory_option_combos = {}'
    load_settings(make_project(dhis2=dhis2, targets='path = "forms/stakeholders.csv"'))
    read = {reader.section: reader.read for reader in readers}
    assert set(read) == set(SECTIONS)
    for section, spec in SECTIONS.items():
        assert read[section] == set(spec.keys), section
