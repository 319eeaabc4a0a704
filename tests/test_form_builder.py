"""The sheet builder on its own (no conversion): what changes with the config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kobo_tip import indicator as ind
from kobo_tip.config import load_settings
from kobo_tip.form.builder import FormSheets, build_sheets
from kobo_tip.labels import load_labels

VERSION = "20260102030405"


def _sheets(config: Path) -> FormSheets:
    settings = load_settings(config)
    return build_sheets(settings, VERSION, [load_labels(lang) for lang in settings.project.languages])


def _names(sheets: FormSheets) -> list[str]:
    return [row["name"] for row in sheets.survey.rows]


def test_no_locations_means_no_location_questions(make_project: Callable[..., Path]) -> None:
    # Vatican City has no ISO 3166-2 subdivisions; without a locations file there is nothing to ask.
    config = make_project(
        project='name = "P"\ncountry = "va"\nstart_date = 2025-10-01\nend_date = 2028-09-30',
        form='roster = "forms/stakeholders.csv"',
    )
    sheets = _sheets(config)
    assert ind.LOCATION_ADMIN1 not in _names(sheets)
    assert ind.LOCATION_ADMIN2 not in _names(sheets)
    assert not {"admin1", "admin2"} & {row["list_name"] for row in sheets.choices.rows}
    assert {"country", "parent"}.isdisjoint(sheets.choices.columns)
    country = next(row for row in sheets.survey.rows if row["name"] == ind.IDENTIFICATION_COUNTRY)
    assert country["default"] == "va"
    # One language: one label column per kind.
    assert [c for c in sheets.survey.columns if c.startswith("label::")] == ["label::English (en)"]


def test_default_locations_are_the_countrys_subdivisions(make_project: Callable[..., Path]) -> None:
    config = make_project(form='roster = "forms/stakeholders.csv"')
    sheets = _sheets(config)
    admin1 = [row for row in sheets.choices.rows if row["list_name"] == "admin1"]
    assert len(admin1) == 78 and all(row["country"] == "th" for row in admin1)
    assert ind.LOCATION_ADMIN2 not in _names(sheets)


def test_duplicate_choice_names_allow_choice_duplicates(make_project: Callable[..., Path]) -> None:
    form = 'roster = "forms/stakeholders.csv"\nethnicities = ["{}", "{}"]'
    assert (
        "allow_choice_duplicates"
        not in _sheets(make_project("a", form=form.format("akha", "shan"))).settings.rows[0]
    )
    duplicated = _sheets(make_project("b", form=form.format("akha", "akha")))
    assert duplicated.settings.rows[0]["allow_choice_duplicates"] == "yes"


def test_version_is_written_literally_in_settings_and_calculation(make_project: Callable[..., Path]) -> None:
    sheets = _sheets(make_project())
    assert sheets.settings.rows[0]["version"] == VERSION
    calculate = next(row for row in sheets.survey.rows if row["name"] == ind.FORM_VERSION)
    assert calculate["calculation"] == f"'{VERSION}'"


def test_event_date_constraint_embeds_the_project_start(make_project: Callable[..., Path]) -> None:
    config = make_project(
        project='name = "P"\ncountry = "th"\nstart_date = 2026-04-01\nend_date = 2028-09-30',
    )
    event_date = next(row for row in _sheets(config).survey.rows if row["name"] == ind.EVENT_DATE)
    assert event_date["constraint"] == ". <= today() and . >= date('2026-04-01')"
