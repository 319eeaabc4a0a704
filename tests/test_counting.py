"""The counting engine on hand-built scenarios: every rule of contract section 4, exact counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kobo_tip import indicator as ind
from kobo_tip.cases import build_cases
from kobo_tip.config import Settings, load_settings
from kobo_tip.counting import CountResult, count_indicator
from kobo_tip.errors import ConfigError
from kobo_tip.person_key import person_key, strip_uic

SECRET = b"test-secret-not-for-production"
AS_OF = dt.date(2026, 11, 28)  # periods FY2026 Q1 .. FY2027 Q1 of the example project


def stored(
    sid: str,
    date: str | None = "2025-11-10",
    *,
    action: str = "identified",
    stakeholder: str = "bc_maesot",
    stakeholder_type: str = "border_control",
    category: str = "trafficking_presumed",
    consent: str | None = "yes",
    given: str = "Maria",
    mother: str = "Ana",
    birth_year: str | int = "1990",
    gender: str = "female",
    age: str | int | None = "30",
    origin: str | None = "mm",
    admin1: str | None = "TH-63",
    admin2: str | None = None,
    country: str | None = "th",
    case_ref: str | None = None,
    exploitation: str | None = None,
    gbv: str | None = None,
    services: str | None = None,
    wg: dict[str, str] | None = None,
    status: str = "unreviewed",
    submitted: str | None = None,
    deleted: bool = False,
) -> SimpleNamespace:
    """A stored submission as the store yields it: Kobo keys, key computed on the raw UIC, then stripped."""
    groups: dict[str, dict[str, Any]] = {
        "intro": {"consent": consent},
        "event": {
            "event_date": date,
            "action": action,
            "stakeholder_type": stakeholder_type,
            "stakeholder_id": stakeholder,
            "identification_country": country,
            "location_admin1": admin1,
            "location_admin2": admin2,
            "case_ref": case_ref,
            "person_category": category,
            "exploitation_type": exploitation,
            "gbv_type": gbv,
        },
        "referral": {"services": services},
    }
    if consent == "yes":
        groups["person"] = {
            "uic_given": given,
            "uic_mother": mother,
            "birth_year": birth_year,
            "gender": gender,
            "age_years": age,
            "country_origin": origin,
            **{f"wg/{name}": answer for name, answer in (wg or {}).items()},
        }
    data = {
        f"{group}/{name}": value
        for group, answers in groups.items()
        for name, value in answers.items()
        if value is not None
    }
    key = person_key(data, sid, SECRET)
    return SimpleNamespace(
        submission_id=sid,
        version_id=f"uuid-{sid}",
        review_status=status,
        submitted_at=submitted or f"{date or '2026-01-01'}T12:00:00",
        form_version="20251001000000",
        person_key=key.key,
        key_basis=key.basis,
        key_reason=key.reason,
        deleted=deleted,
        data=strip_uic(data),
    )


def count(
    rows: list[SimpleNamespace], settings: Settings, as_of: dt.date = AS_OF, **options: Any
) -> CountResult:
    return count_indicator(build_cases(rows, settings), settings, as_of, **options)


def value(
    result: CountResult, indicator: str, period: str, dimension: str = "total", category: str = "all"
) -> int:
    counts = result.counts
    cell = counts[
        (counts.indicator == indicator)
        & (counts.period == period)
        & (counts.dimension == dimension)
        & (counts.category == category)
    ]
    assert len(cell) == 1, (indicator, period, dimension, category)
    return int(cell.value.iloc[0])


def totals(result: CountResult, indicator: str) -> dict[str, int]:
    rows = result.counts[(result.counts.indicator == indicator) & (result.counts.dimension == "total")]
    return dict(zip(rows.period, rows.value.astype(int), strict=True))


def rules(result: CountResult) -> list[tuple[str, str, str]]:
    """Findings other than possible duplicates (the scenarios share birth year, gender and place)."""
    return [
        (f.submission_id, f.rule, f.field)
        for f in result.findings.itertuples()
        if f.rule != "possible_duplicate"
    ]


def names(count: int) -> list[str]:
    """Given names whose UIC parts differ: Aa, Bb, Cc..."""
    return [chr(ord("A") + i // 26) + chr(ord("a") + i % 26) for i in range(count)]


@pytest.fixture
def settings(example_project: Path) -> Settings:
    return load_settings(example_project)


def with_indicator(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, indicator=replace(settings.indicator, **changes))


ZERO_TO_Q1_FY2027 = {
    "FY2026 Q1": 0,
    "FY2026 Q2": 0,
    "FY2026 Q3": 0,
    "FY2026 Q4": 0,
    "FY2026": 0,
    "FY2027 Q1": 0,
    "FY2027": 0,
    "LOP": 0,
}


def expect(**values: int) -> dict[str, int]:
    """All periods zero except ``values`` (keys like FY2026_Q1)."""
    return {**ZERO_TO_Q1_FY2027, **{key.replace("_", " "): n for key, n in values.items()}}


# --- the indicator's variants -------------------------------------------------------------------


def test_identified_at_the_border_then_referred_by_an_ngo(settings):
    rows = [
        stored("1", "2025-11-10", action="identified"),
        stored(
            "2",
            "2026-02-10",
            action="referred",
            stakeholder="ngo_hope",
            stakeholder_type="ngo_partner",
            services="shelter medical",
        ),
    ]
    result = count(rows, settings)
    assert totals(result, "identified_or_referred") == expect(FY2026_Q1=1, FY2026=1, LOP=1)
    assert totals(result, "identified") == expect(FY2026_Q1=1, FY2026=1, LOP=1)
    assert totals(result, "referred") == expect(FY2026_Q2=1, FY2026=1, LOP=1)
    # Attributes come from each variant's own index event.
    assert value(result, "identified_or_referred", "FY2026 Q1", "stakeholder_type", "border_control") == 1
    assert value(result, "referred", "FY2026 Q2", "stakeholder_type", "ngo_partner") == 1
    assert value(result, "referred", "FY2026 Q2", "stakeholder_type", "border_control") == 0
    assert value(result, "referred", "LOP", "services", "shelter") == 1
    assert value(result, "referred", "LOP", "services", "medical") == 1
    assert value(result, "referred", "LOP", "services", "legal_aid") == 0
    assert "services" not in set(result.counts[result.counts.indicator == "identified"].dimension)
    assert rules(result) == []


def test_one_event_both_identified_and_referred_counts_once_in_each(settings):
    result = count([stored("1", action="identified referred")], settings)
    for variant in ind.VARIANTS:
        assert totals(result, variant) == expect(FY2026_Q1=1, FY2026=1, LOP=1)


def test_same_person_keyed_with_other_case_and_accents(settings):
    rows = [
        stored("1", "2025-11-10", given="María", mother="ana"),
        stored("2", "2026-02-10", given="MARIA", mother="ÁNA"),
        stored("3", "2026-02-11", given="Marta", mother="ana"),  # MA + AN too: same key by design
        stored("4", "2026-02-12", given="Jo", mother="ana"),
    ]
    result = count(rows, settings)
    assert totals(result, "identified_or_referred") == expect(FY2026_Q1=1, FY2026_Q2=1, FY2026=2, LOP=2)


def test_untrained_stakeholder_event_does_not_count_and_does_not_block_a_later_one(settings):
    rows = [
        stored("1", "2025-11-01", stakeholder="not_listed", stakeholder_type="other"),
        stored("2", "2025-11-02", stakeholder="someone_else", stakeholder_type="other", given="Jo"),
        stored("3", "2026-01-15", stakeholder="li_tak", stakeholder_type="labour_inspector"),
    ]
    result = count(rows, settings)
    assert totals(result, "identified_or_referred") == expect(FY2026_Q2=1, FY2026=1, LOP=1)
    assert value(result, "identified", "FY2026 Q2", "stakeholder_type", "labour_inspector") == 1
    assert rules(result) == [
        ("1", "stakeholder_not_on_roster", "stakeholder_id"),
        ("2", "stakeholder_not_on_roster", "stakeholder_id"),
        ("2", "malformed", "stakeholder_id"),
    ]
    assert "'not_listed' is not on the roster" in result.findings.detail.iloc[0]


def test_late_submission_moves_a_person_to_an_earlier_quarter_with_its_attributes(settings):
    first = [stored("10", "2026-02-10", age="18", submitted="2026-02-11T09:00:00")]
    before = count(first, settings)
    assert totals(before, "identified_or_referred") == expect(FY2026_Q2=1, FY2026=1, LOP=1)
    assert value(before, "identified_or_referred", "LOP", "age_band", "18-59") == 1
    late = stored("11", "2025-12-20", age="17", submitted="2026-03-01T09:00:00")
    after = count([*first, late], settings)
    assert totals(after, "identified_or_referred") == expect(FY2026_Q1=1, FY2026=1, LOP=1)
    assert value(after, "identified_or_referred", "LOP", "age_band", "12-17") == 1
    assert value(after, "identified_or_referred", "LOP", "age_band", "18-59") == 0
    assert value(after, "identified_or_referred", "FY2026 Q1", "age_band_x_gender", "12-17|female") == 1


def test_ties_on_the_event_date_go_to_the_earlier_submission_then_the_lower_id(settings):
    rows = [
        stored("9", "2025-11-10", age="40", submitted="2025-11-10T08:00:00"),
        stored("10", "2025-11-10", age="3", submitted="2025-11-10T09:00:00"),
    ]
    result = count(rows, settings)
    assert value(result, "identified", "LOP", "age_band", "18-59") == 1
    same_time = [stored("10", "2025-11-10", age="3"), stored("9", "2025-11-10", age="40")]
    # Same submission time: the id decides, as a number (9 before 10, not '10' before '9').
    assert value(count(same_time, settings), "identified", "LOP", "age_band", "18-59") == 1


def test_central_ids_break_ties_as_text_after_numeric_ids(settings):
    rows = [
        stored("uuid:b", "2025-11-10", age="3"),
        stored("uuid:a", "2025-11-10", age="40"),
        stored("uuid:c", "2025-11-10", age="70", given="Jo"),
        stored("12", "2025-11-10", age="8", given="Jo"),
    ]
    result = count(rows, settings)
    assert value(result, "identified", "LOP", "age_band", "18-59") == 1  # uuid:a before uuid:b
    assert value(result, "identified", "LOP", "age_band", "5-11") == 1  # 12 before uuid:c
    assert value(result, "identified", "LOP") == 2


def test_an_edit_that_changes_the_date_moves_the_person(settings):
    original = stored("5", "2026-02-10")
    edited = stored("5", "2025-11-10")  # the store keeps only the latest version of submission 5
    assert totals(count([original], settings), "identified") == expect(FY2026_Q2=1, FY2026=1, LOP=1)
    assert totals(count([edited], settings), "identified") == expect(FY2026_Q1=1, FY2026=1, LOP=1)


def test_deleted_and_rejected_submissions_do_not_count(settings):
    rows = [
        stored("1", deleted=True, status="rejected"),
        stored("2", given="Jo", status="rejected"),
        stored("3", given="Li", status="on_hold"),
    ]
    result = count(rows, settings)
    assert totals(result, "identified_or_referred") == expect(FY2026_Q1=1, FY2026=1, LOP=1)
    assert rules(result) == [("1", "deleted", ""), ("2", "rejected", "review_status")]


def test_require_approved(settings):
    rows = [
        stored("1", status="approved"),
        stored("2", given="Jo", status="unreviewed"),
        stored("3", given="Li", status="on_hold"),
    ]
    assert value(count(rows, settings), "identified", "LOP") == 3
    result = count(rows, with_indicator(settings, require_approved=True))
    assert value(result, "identified", "LOP") == 1
    assert rules(result) == [("2", "not_approved", "review_status"), ("3", "not_approved", "review_status")]


def test_require_event_after_training(settings):
    rows = [
        stored("1", "2025-10-10", stakeholder="bc_maesot"),  # trained 2025-10-15
        stored("2", "2025-10-15", stakeholder="bc_maesot", given="Jo"),  # on the day: counts
        stored("3", "2025-10-02", stakeholder="ngo_migrant", stakeholder_type="ngo_partner", given="Li"),
    ]
    assert value(count(rows, settings), "identified", "LOP") == 3
    result = count(rows, with_indicator(settings, require_event_after_training=True))
    assert value(result, "identified", "LOP") == 2  # ngo_migrant has no training date: supported
    assert rules(result) == [("1", "event_before_training", "event_date")]


def test_record_without_consent_counts_with_personal_attributes_not_recorded(settings):
    rows = [
        stored("1", consent="no", admin1="TH-74"),
        stored("2", consent=None, admin1="TH-74"),  # no consent answer at all
        stored("3", consent="no", case_ref="A-1", stakeholder="li_tak", stakeholder_type="labour_inspector"),
        stored("4", "2026-01-05", consent="no", case_ref=" a-1 ", stakeholder="li_tak"),
    ]
    result = count(rows, settings)
    assert value(result, "identified", "LOP") == 3  # 3 and 4 share stakeholder + case ref
    assert value(result, "identified", "LOP", "gender", "not_recorded") == 3
    assert value(result, "identified", "LOP", "age_band", "not_recorded") == 3
    assert value(result, "identified", "LOP", "country_of_origin", "not_recorded") == 3
    assert value(result, "identified", "LOP", "disability", "not_recorded") == 3
    assert value(result, "identified", "LOP", "age_band_x_gender", "not_recorded|not_recorded") == 3
    assert value(result, "identified", "LOP", "location", "TH-74") == 2
    assert value(result, "identified", "LOP", "location", "TH-63") == 1
    linkable = result.findings[result.findings.rule == "not_linkable"]
    assert list(linkable.submission_id) == ["1", "2", "3", "4"]
    assert set(linkable.detail) == {"no consent recorded"}


def test_event_after_the_run_date_is_in_the_future(settings):
    rows = [stored("1", "2026-12-01")]
    result = count(rows, settings)
    assert value(result, "identified", "LOP") == 0
    assert rules(result) == [("1", "date_in_future", "event_date")]
    later = count(rows, settings, as_of=dt.date(2026, 12, 5))
    assert value(later, "identified", "FY2027 Q1") == 1
    assert rules(later) == []


def test_dates_outside_the_project_missing_or_malformed(settings):
    rows = [
        stored("1", "2025-09-30"),
        stored("2", "2028-10-01", given="Jo"),
        stored("3", None, given="Li"),
        stored("4", "2026-13-45", given="Al", submitted="2026-01-01T00:00:00"),
    ]
    result = count(rows, settings, as_of=dt.date(2029, 1, 1))
    assert value(result, "identified", "LOP") == 0
    assert rules(result) == [
        ("1", "date_out_of_range", "event_date"),
        ("2", "date_out_of_range", "event_date"),
        ("3", "date_missing", "event_date"),
        ("4", "date_missing", "event_date"),
        ("4", "malformed", "event_date"),
    ]


def test_first_failed_rule_in_the_spec_order(settings):
    rows = [
        stored("1", "2030-01-01", deleted=True, stakeholder="not_listed"),
        stored("2", "2030-01-01", status="rejected", stakeholder="not_listed"),
        stored("3", "2030-01-01", action="", stakeholder="not_listed"),
        stored("4", action="", stakeholder="not_listed", category=""),
        stored("5", stakeholder="not_listed", category=""),
        stored("6", category="gbv"),
    ]
    result = count(rows, with_indicator(settings, person_categories=("trafficking_presumed",)))
    assert [(sid, rule) for sid, rule, _ in rules(result)] == [
        ("1", "deleted"),
        ("2", "rejected"),
        ("3", "date_out_of_range"),
        ("4", "action_missing"),
        ("5", "stakeholder_not_on_roster"),
        ("6", "category_not_counted"),
    ]


def test_person_categories_count_presumed_victims_and_gbv_survivors(settings):
    rows = [
        stored("1", category="trafficking_presumed", exploitation="forced_labour sexual_exploitation"),
        stored("2", given="Jo", category="gbv", gbv="rape"),
        stored(
            "3", given="Li", category="exploitation_other trafficking_confirmed", exploitation="child_labour"
        ),
    ]
    result = count(rows, settings)
    assert value(result, "identified", "LOP") == 3
    assert value(result, "identified", "LOP", "person_category", "trafficking_presumed") == 1
    assert value(result, "identified", "LOP", "person_category", "trafficking_confirmed") == 1
    assert value(result, "identified", "LOP", "person_category", "exploitation_other") == 1
    assert value(result, "identified", "LOP", "person_category", "gbv") == 1
    assert value(result, "identified", "LOP", "exploitation_type", "forced_labour") == 1
    assert value(result, "identified", "LOP", "exploitation_type", "child_labour") == 1
    assert value(result, "identified", "LOP", "exploitation_type", "unknown") == 1
    assert value(result, "identified", "LOP", "gbv_type", "rape") == 1
    assert value(result, "identified", "LOP", "gbv_type", "unknown") == 2
    only_gbv = count(rows, with_indicator(settings, person_categories=("gbv",)))
    assert value(only_gbv, "identified", "LOP") == 1


# --- periods ------------------------------------------------------------------------------------


def test_fiscal_and_calendar_years(settings):
    rows = [
        stored("1", "2025-11-10"),
        stored("2", "2026-02-10", given="Jo"),
        stored("3", "2026-10-02", given="Li"),
    ]
    fiscal = count(rows, settings)
    assert totals(fiscal, "identified") == expect(
        FY2026_Q1=1, FY2026_Q2=1, FY2026=2, FY2027_Q1=1, FY2027=1, LOP=3
    )
    calendar_settings = replace(settings, project=replace(settings.project, fiscal_year_start_month=1))
    calendar = count(rows, calendar_settings)
    assert totals(calendar, "identified") == {
        "2025 Q4": 1,
        "2025": 1,
        "2026 Q1": 1,
        "2026 Q2": 0,
        "2026 Q3": 0,
        "2026 Q4": 1,
        "2026": 2,
        "LOP": 3,
    }
    year = calendar.counts[(calendar.counts.period == "2026") & (calendar.counts.dimension == "total")]
    assert (year.period_start.iloc[0], year.period_end.iloc[0], year.period_kind.iloc[0]) == (
        "2026-01-01",
        "2026-12-31",
        "fiscal_year",
    )


def test_through_stops_periods_and_events_without_findings(settings):
    rows = [stored("1", "2026-09-30"), stored("2", "2026-10-01", given="Jo")]
    result = count(rows, settings, through=dt.date(2026, 9, 30))
    assert totals(result, "identified") == {
        "FY2026 Q1": 0,
        "FY2026 Q2": 0,
        "FY2026 Q3": 0,
        "FY2026 Q4": 1,
        "FY2026": 1,
        "LOP": 1,
    }
    assert rules(result) == []
    assert (result.as_of, result.through) == (AS_OF, dt.date(2026, 9, 30))


def test_a_run_before_the_project_starts_has_only_a_zero_lop(settings):
    result = count([stored("1", "2025-11-10")], settings, as_of=dt.date(2025, 9, 1))
    assert set(result.counts.period) == {"LOP"}
    assert result.counts.value.sum() == 0
    assert rules(result) == [("1", "date_in_future", "event_date")]


# --- dimensions ---------------------------------------------------------------------------------


def test_default_age_bands_and_unknown_age(settings):
    ages = ["0", "4", "5", "11", "12", "17", "18", "59", "60", "120", None, "abc"]
    rows = [
        stored(str(i), given=given, age=age)
        for i, (given, age) in enumerate(zip(names(12), ages, strict=True))
    ]
    result = count(rows, settings)
    bands = {
        c: value(result, "identified", "LOP", "age_band", c) for c in ("0-4", "5-11", "12-17", "18-59", "60+")
    }
    assert bands == {"0-4": 2, "5-11": 2, "12-17": 2, "18-59": 2, "60+": 2}
    assert value(result, "identified", "LOP", "age_band", "unknown") == 2
    assert value(result, "identified", "LOP", "age_band", "not_recorded") == 0
    assert value(result, "identified", "LOP", "age_band_x_gender", "unknown|female") == 2
    assert ("11", "malformed", "age_years") in rules(result)


def test_ctdc_age_bands(settings):
    ctdc = with_indicator(settings, age_bands=ind.AGE_BANDS_PRESETS["ctdc"])
    ages = ["8", "9", "17", "18", "20", "21", "47", "48", "90"]
    people = zip(names(len(ages)), ages, strict=True)
    result = count([stored(str(i), given=given, age=age) for i, (given, age) in enumerate(people)], ctdc)
    categories = list(
        result.counts[
            (result.counts.period == "LOP")
            & (result.counts.indicator == "identified")
            & (result.counts.dimension == "age_band")
        ].category
    )
    assert categories == [
        "0-8", "9-17", "18-20", "21-23", "24-26", "27-29", "30-38", "39-47", "48+", "unknown", "not_recorded"
    ]  # fmt: skip
    got = {c: value(result, "identified", "LOP", "age_band", c) for c in categories}
    assert got == {
        "0-8": 1, "9-17": 2, "18-20": 2, "21-23": 1, "24-26": 0, "27-29": 0, "30-38": 0, "39-47": 1,
        "48+": 2, "unknown": 0, "not_recorded": 0,
    }  # fmt: skip


def test_disability_status(settings):
    hard = dict.fromkeys(ind.WG_FIELDS, "no_difficulty") | {"wg_walking": "a_lot_of_difficulty"}
    easy = dict.fromkeys(ind.WG_FIELDS, "some_difficulty")
    partial = {"wg_seeing": "no_difficulty", "wg_hearing": "dont_know"}
    rows = [
        stored("1", given="Aa", age="3", wg=hard),  # under 5: not asked, whatever the answers
        stored("2", given="Bb", age="30", wg=hard),
        stored("3", given="Cc", age="30", wg=easy),
        stored("4", given="Dd", age="30", wg=partial),
        stored("5", given="Ee", age=None, wg=hard),  # unknown age: still asked
        stored("6", given="Ff", consent="no"),
    ]
    result = count(rows, settings)
    got = {c: value(result, "identified", "LOP", "disability", c) for c in ind.DISABILITY_CATEGORIES}
    assert got == {"yes": 2, "no": 1, "not_asked": 1, "unknown": 1, "not_recorded": 1}
    no_disability = replace(settings, form=replace(settings.form, disability=False))
    assert "disability" not in set(count(rows, no_disability).counts.dimension)


def test_location_level_one_and_two(settings):
    rows = [
        stored("1", given="Aa", admin1="TH-63", admin2="TH-63-06"),
        stored("2", given="Bb", admin1="TH-63", admin2=None),
        stored("3", given="Cc", admin1=None, admin2=None),
        stored("4", given="Dd", admin1=None, admin2=None, country=None),
        stored("5", given="Ee", admin1="XX-99"),  # not in the locations file: malformed
    ]
    level1 = count(rows, settings)
    assert list(
        level1.counts[
            (level1.counts.period == "LOP")
            & (level1.counts.indicator == "identified")
            & (level1.counts.dimension == "location")
        ].category
    ) == ["TH-63", "th", "unknown"]
    got = {c: value(level1, "identified", "LOP", "location", c) for c in ("TH-63", "th", "unknown")}
    assert got == {"TH-63": 2, "th": 1, "unknown": 2}  # malformed is unknown; blank falls back
    assert ("5", "malformed", "location_admin1") in rules(level1)
    level2 = count(rows, with_indicator(settings, location_level=2))
    got2 = {c: value(level2, "identified", "LOP", "location", c) for c in ("TH-63-06", "th", "unknown")}
    assert got2 == {"TH-63-06": 1, "th": 3, "unknown": 1}
    rows.append(stored("6", given="Ff", admin1="TH-63", admin2="TH-99-99"))
    level2 = count(rows, with_indicator(settings, location_level=2))
    got2 = {c: value(level2, "identified", "LOP", "location", c) for c in ("TH-63-06", "th", "unknown")}
    assert got2 == {"TH-63-06": 1, "th": 3, "unknown": 2}


def test_every_category_and_period_is_present_with_zeros(settings):
    result = count([stored("1", origin="kh"), stored("2", given="Jo", consent="no")], settings)
    counts = result.counts
    assert list(counts.columns) == [*ind.COUNTS_COLUMNS, "additive", "period_kind"]
    lop = counts[(counts.indicator == "identified") & (counts.period == "LOP")]
    by_dimension = lop.groupby("dimension", sort=False).category.apply(list).to_dict()
    assert list(by_dimension) == [
        "total", "age_band", "gender", "location", "country_of_origin", "stakeholder_type", "disability",
        "age_band_x_gender", "person_category", "exploitation_type", "gbv_type",
    ]  # fmt: skip
    assert by_dimension["gender"] == [*ind.CHOICES["gender"], "not_recorded"]
    assert by_dimension["country_of_origin"] == ["kh", "unknown", "not_recorded"]
    assert by_dimension["stakeholder_type"] == [*ind.CHOICES["stakeholder_type"], "unknown"]
    bands = ["0-4", "5-11", "12-17", "18-59", "60+", "unknown"]
    assert by_dimension["age_band_x_gender"] == [
        *(f"{b}|{g}" for b in bands for g in ind.CHOICES["gender"]),
        "not_recorded|not_recorded",
    ]
    per_period = counts.groupby("period", sort=False).size()
    assert per_period.nunique() == 1 and len(per_period) == 8
    assert value(result, "identified", "FY2026 Q3", "gender", "male") == 0
    assert not counts[counts.dimension.isin(ind.AT_LEAST_ONE_DIMENSIONS)].additive.any()
    assert counts[counts.dimension == "gbv_type"].additive.all(), "a select_one: sums to the total"
    assert counts[~counts.dimension.isin(ind.MULTI_RESPONSE_DIMENSIONS)].additive.all()


def test_ethnicity_when_configured(settings):
    with_ethnicity = replace(settings, form=replace(settings.form, ethnicities=("karen", "shan")))
    rows = [stored("1", given="Aa"), stored("2", given="Bb", consent="no")]
    rows[0].data["person/ethnicity"] = "karen"
    result = count(rows, with_ethnicity)
    got = {
        c: value(result, "identified", "LOP", "ethnicity", c)
        for c in ("karen", "shan", "unknown", "not_recorded")
    }
    assert got == {"karen": 1, "shan": 0, "unknown": 0, "not_recorded": 1}


def test_counts_order_is_deterministic(settings):
    result = count([stored("1"), stored("2", "2026-02-10", given="Jo", action="referred")], settings)
    counts = result.counts
    assert list(dict.fromkeys(counts.indicator)) == list(ind.VARIANTS)
    assert list(dict.fromkeys(counts.period)) == [p.label for p in result.periods]
    assert counts.equals(
        count([stored("2", "2026-02-10", given="Jo", action="referred"), stored("1")], settings).counts
    )


# --- merges and duplicates ----------------------------------------------------------------------


def write_merges(folder: Path, *lines: str) -> Path:
    path = folder / "merges.csv"
    path.write_text(
        "\n".join(["keep_submission_id,merge_submission_id,decided_by,decided_on", *lines]) + "\n"
    )
    return path


def test_merges_join_two_keys_into_the_kept_person(settings, tmp_path):
    rows = [
        stored("1", "2025-11-10", given="Maria"),
        stored("2", "2026-02-10", given="Mary", gender="male"),  # same person, mistyped UIC
        stored("3", "2026-02-20", given="Mary", gender="male"),
        stored("4", "2026-03-01", given="Jo"),
    ]
    assert value(count(rows, settings), "identified", "LOP") == 3
    merges = write_merges(tmp_path, "1,2,M&E officer,2026-03-05")
    result = count(rows, with_indicator(settings, merges_path=merges))
    assert totals(result, "identified") == expect(FY2026_Q1=1, FY2026_Q2=1, FY2026=2, LOP=2)
    assert value(result, "identified", "LOP", "gender", "female") == 2  # index event: submission 1
    chained = write_merges(tmp_path, "1,2,M&E,2026-03-05", "4,1,M&E,2026-03-06")
    assert value(count(rows, with_indicator(settings, merges_path=chained)), "identified", "LOP") == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,1,M&E,2026-03-05", "line 2: keep_submission_id and merge_submission_id"),
        ("1,,M&E,2026-03-05", "line 2: keep_submission_id and merge_submission_id"),
        ("1,99,M&E,2026-03-05", "line 2: submission '99' is not in the store"),
        ("1,2,,2026-03-05", "line 2: decided_by is empty"),
        ("1,2,M&E,05/03/2026", "line 2: decided_on must be a date"),
    ],
)
def test_bad_merges_rows_are_config_errors_naming_the_line(settings, tmp_path, line, message):
    merges = write_merges(tmp_path, line)
    with pytest.raises(ConfigError, match=message):
        count([stored("1"), stored("2", given="Jo")], with_indicator(settings, merges_path=merges))


def test_merges_file_without_the_columns(settings, tmp_path):
    path = tmp_path / "merges.csv"
    path.write_text("keep,merge\n1,2\n")
    with pytest.raises(ConfigError, match="lacks the column"):
        count([stored("1")], with_indicator(settings, merges_path=path))


def test_possible_duplicates_are_flagged_not_merged(settings):
    rows = [
        stored("1", "2025-11-10", given="Maria"),
        stored("2", "2025-12-05", given="Jo"),  # 25 days later, same birth year/gender/origin/admin1
        stored("3", "2026-01-20", given="Li"),  # 46 days after 2: too far
        stored("4", "2025-11-12", given="Al", birth_year="1991"),
        stored("5", "2025-11-14", given="Maria"),  # same key as 1: not a duplicate of it
    ]
    result = count(rows, settings)
    assert value(result, "identified", "LOP") == 4
    duplicates = result.findings[result.findings.rule == "possible_duplicate"]
    # One row per flagged event, naming the nearest earlier event of another person.
    assert list(zip(duplicates.submission_id, duplicates.detail, strict=True)) == [("2", "5")]
    assert set(duplicates.field) == {"person_key"}


def test_a_dense_group_gives_one_duplicate_row_per_event(settings):
    rows = [
        stored("1", "2025-11-10", given="Aa"),
        stored("2", "2025-11-11", given="Bb"),
        stored("3", "2025-11-12", given="Cc"),
        stored("4", "2025-11-12", given="Dd", consent="no"),  # no birth year: never compared
        stored("5", "2025-11-13", given="Ee", status="rejected"),  # not counted: not compared
    ]
    duplicates = count(rows, settings).findings.query("rule == 'possible_duplicate'")
    assert list(zip(duplicates.submission_id, duplicates.detail, strict=True)) == [("2", "1"), ("3", "2")]
