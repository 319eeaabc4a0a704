"""Fiscal quarters, labels, reporting periods and DHIS2 ids (contract section 5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kobo_tip.config import load_settings
from kobo_tip.errors import KoboTipError
from kobo_tip.periods import (
    FISCAL_YEAR,
    LOP,
    QUARTER,
    dhis2_period,
    fiscal_year_period,
    headline_quarter,
    quarter_of,
    reporting_periods,
)

D = dt.date


@pytest.fixture
def project(example_project):
    return load_settings(example_project).project  # 2025-10-01 .. 2028-09-30, start month 10


@pytest.mark.parametrize(
    ("day", "month", "label", "start", "end"),
    [
        (D(2025, 10, 1), 10, "FY2026 Q1", D(2025, 10, 1), D(2025, 12, 31)),
        (D(2025, 12, 31), 10, "FY2026 Q1", D(2025, 10, 1), D(2025, 12, 31)),
        (D(2026, 1, 1), 10, "FY2026 Q2", D(2026, 1, 1), D(2026, 3, 31)),
        (D(2026, 9, 30), 10, "FY2026 Q4", D(2026, 7, 1), D(2026, 9, 30)),
        (D(2026, 2, 14), 1, "2026 Q1", D(2026, 1, 1), D(2026, 3, 31)),
        (D(2025, 11, 5), 1, "2025 Q4", D(2025, 10, 1), D(2025, 12, 31)),
        (D(2025, 4, 1), 4, "FY2026 Q1", D(2025, 4, 1), D(2025, 6, 30)),
        (D(2026, 3, 31), 4, "FY2026 Q4", D(2026, 1, 1), D(2026, 3, 31)),
        (D(2024, 7, 15), 7, "FY2025 Q1", D(2024, 7, 1), D(2024, 9, 30)),
        (D(2026, 1, 20), 2, "FY2026 Q4", D(2025, 11, 1), D(2026, 1, 31)),
        (D(2024, 2, 29), 12, "FY2024 Q1", D(2023, 12, 1), D(2024, 2, 29)),
    ],
)
def test_quarter_labels_and_bounds(day, month, label, start, end):
    quarter = quarter_of(day, month)
    assert (quarter.label, quarter.start, quarter.end, quarter.kind) == (label, start, end, QUARTER)


def test_fiscal_year_is_named_by_the_year_it_ends_in():
    fy = fiscal_year_period(2026, 10)
    assert (fy.label, fy.start, fy.end, fy.kind) == ("FY2026", D(2025, 10, 1), D(2026, 9, 30), FISCAL_YEAR)
    calendar = fiscal_year_period(2026, 1)
    assert (calendar.label, calendar.start, calendar.end) == ("2026", D(2026, 1, 1), D(2026, 12, 31))


@settings(max_examples=100, deadline=None)
@given(st.dates(D(1990, 1, 1), D(2090, 12, 31)), st.integers(1, 12))
def test_every_day_lies_in_its_quarter_and_year(day, month):
    quarter = quarter_of(day, month)
    year = fiscal_year_period(quarter.fiscal_year, month)
    assert quarter.start <= day <= quarter.end
    assert year.start <= quarter.start and quarter.end <= year.end
    assert (quarter.start.month - month) % 3 == 0
    assert 89 <= (quarter.end - quarter.start).days + 1 <= 92  # Feb-Apr 89 days .. Jul-Sep 92
    assert year.end.year == quarter.fiscal_year
    assert quarter.quarter == (quarter.start.month - month) % 12 // 3 + 1


def test_reporting_periods_run_to_the_quarter_of_the_run_date(project):
    periods = reporting_periods(project, D(2026, 11, 28))
    assert [p.label for p in periods] == [
        "FY2026 Q1",
        "FY2026 Q2",
        "FY2026 Q3",
        "FY2026 Q4",
        "FY2026",
        "FY2027 Q1",
        "FY2027",
        "LOP",
    ]
    fy2027 = periods[-2]
    assert (fy2027.start, fy2027.end) == (D(2026, 10, 1), D(2027, 9, 30))  # full bounds though running
    lop = periods[-1]
    assert (lop.kind, lop.start, lop.end) == (LOP, D(2025, 10, 1), D(2028, 9, 30))


def test_reporting_periods_stop_at_through_and_at_project_end(project):
    assert [p.label for p in reporting_periods(project, D(2026, 11, 28), D(2026, 9, 30))][-3:] == [
        "FY2026 Q4",
        "FY2026",
        "LOP",
    ]
    after_end = reporting_periods(project, D(2030, 1, 1))
    assert [p.label for p in after_end if p.kind == FISCAL_YEAR] == ["FY2026", "FY2027", "FY2028"]
    assert len([p for p in after_end if p.kind == QUARTER]) == 12
    assert [p.label for p in reporting_periods(project, D(2025, 9, 1))] == ["LOP"]


def test_mid_quarter_start_keeps_full_quarter_bounds(project):
    mid = replace(project, start_date=D(2025, 11, 20), fiscal_year_start_month=1)
    first = reporting_periods(mid, D(2026, 2, 1))[0]
    assert (first.label, first.start, first.end) == ("2025 Q4", D(2025, 10, 1), D(2025, 12, 31))


def test_headline_quarter_is_the_last_ended_one(project):
    assert headline_quarter(project, D(2026, 11, 28)).label == "FY2026 Q4"
    assert headline_quarter(project, D(2025, 12, 31)).label == "FY2026 Q1"
    assert headline_quarter(project, D(2025, 12, 30)) is None
    assert headline_quarter(project, D(2031, 1, 1)).label == "FY2028 Q4"


def test_dhis2_period_ids():
    assert dhis2_period(quarter_of(D(2025, 11, 1), 10)) == "2025Q4"
    assert dhis2_period(quarter_of(D(2026, 8, 1), 10)) == "2026Q3"
    assert dhis2_period(quarter_of(D(2026, 5, 1), 4)) == "2026Q2"
    assert dhis2_period(quarter_of(D(2026, 5, 1), 1)) == "2026Q2"


def test_dhis2_refuses_quarters_that_are_not_calendar_quarters():
    with pytest.raises(KoboTipError, match="fiscal_year_start_month"):
        dhis2_period(quarter_of(D(2026, 5, 1), 2))
    with pytest.raises(KoboTipError, match="Only quarters"):
        dhis2_period(fiscal_year_period(2026, 10))
