"""Reporting periods (contract section 5): fiscal quarters for any start month, labels, DHIS2 ids.

A fiscal year is named by the calendar year in which it ends: with start month 10, FY2026 runs
2025-10-01 .. 2026-09-30 and ``FY2026 Q1`` is Oct-Dec 2025. With start month 1 the labels are
``2026 Q1`` and ``2026``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kobo_tip.errors import KoboTipError

if TYPE_CHECKING:
    from kobo_tip.config import ProjectSettings

QUARTER = "quarter"
FISCAL_YEAR = "fiscal_year"
LOP = "lop"
LOP_LABEL = "LOP"
DHIS2_QUARTER_START_MONTHS = (1, 4, 7, 10)
_LABEL = re.compile(r"(?P<prefix>FY)?(?P<year>[0-9]{4})(?: Q(?P<quarter>[1-4]))?")


@dataclass(frozen=True)
class Period:
    """One reporting period; ``start`` and ``end`` are the full bounds (inclusive)."""

    label: str
    kind: str  # quarter | fiscal_year | lop
    start: dt.date
    end: dt.date
    fiscal_year: int | None = None
    quarter: int | None = None


def _month_index(day: dt.date) -> int:
    """Months since year 0: lets quarter arithmetic ignore year boundaries."""
    return day.year * 12 + day.month - 1


def _first_of(month_index: int) -> dt.date:
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


def fiscal_year_of(day: dt.date, start_month: int) -> int:
    """The fiscal year holding ``day``, named by the calendar year it ends in."""
    return day.year + 1 if start_month != 1 and day.month >= start_month else day.year


def quarter_start_index(day: dt.date, start_month: int) -> int:
    """Month index of the first month of the fiscal quarter holding ``day``."""
    month = _month_index(day)
    return month - (month - (start_month - 1)) % 3


def quarter_of(day: dt.date, start_month: int) -> Period:
    """The fiscal quarter holding ``day``."""
    first = quarter_start_index(day, start_month)
    start = _first_of(first)
    year = fiscal_year_of(start, start_month)
    number = (start.month - start_month) % 12 // 3 + 1
    prefix = "" if start_month == 1 else "FY"
    return Period(
        label=f"{prefix}{year} Q{number}",
        kind=QUARTER,
        start=start,
        end=_first_of(first + 3) - dt.timedelta(days=1),
        fiscal_year=year,
        quarter=number,
    )


@dataclass(frozen=True)
class LabelParts:
    """What a period label says: its kind, and for a quarter or a fiscal year its year and quarter."""

    kind: str  # quarter | fiscal_year | lop
    year: int = 0
    quarter: int = 0
    fiscal: bool = False  # named FY (a fiscal year not starting in January)


def label_parts(label: str) -> LabelParts | None:
    """``FY2026 Q1``, ``2026 Q1``, ``FY2026``, ``2026`` or ``LOP`` taken apart (None for any other
    text): the labels are codes, and the report writes them in its own language from these parts."""
    if label == LOP_LABEL:
        return LabelParts(LOP)
    found = _LABEL.fullmatch(label)
    if found is None:
        return None
    quarter = found.group("quarter")
    return LabelParts(
        QUARTER if quarter else FISCAL_YEAR,
        int(found.group("year")),
        int(quarter or 0),
        fiscal=found.group("prefix") is not None,
    )


def fiscal_year_period(year: int, start_month: int) -> Period:
    """The whole fiscal year ``year``."""
    first = year * 12 + start_month - 1 - (12 if start_month != 1 else 0)
    prefix = "" if start_month == 1 else "FY"
    return Period(
        label=f"{prefix}{year}",
        kind=FISCAL_YEAR,
        start=_first_of(first),
        end=_first_of(first + 12) - dt.timedelta(days=1),
        fiscal_year=year,
    )


def lop_period(project: ProjectSettings) -> Period:
    """Life of project: project start to project end."""
    return Period(label=LOP_LABEL, kind=LOP, start=project.start_date, end=project.end_date)


def quarters_between(first_day: dt.date, last_day: dt.date, start_month: int) -> list[Period]:
    """Every fiscal quarter from the one holding ``first_day`` to the one holding ``last_day``."""
    if last_day < first_day:
        return []
    first = quarter_start_index(first_day, start_month)
    last = quarter_start_index(last_day, start_month)
    return [quarter_of(_first_of(month), start_month) for month in range(first, last + 1, 3)]


def last_counted_day(project: ProjectSettings, as_of: dt.date, through: dt.date | None = None) -> dt.date:
    """The last event date a run counts: min(project end, through or the run date)."""
    return min(project.end_date, through or as_of)


def reporting_periods(
    project: ProjectSettings, as_of: dt.date, through: dt.date | None = None
) -> list[Period]:
    """Periods shown: each fiscal year's quarters then the year itself, in order, then LOP.

    Quarters run from the one holding the project start to the one holding
    min(project end, ``through`` or ``as_of``).
    """
    quarters = quarters_between(
        project.start_date, last_counted_day(project, as_of, through), project.fiscal_year_start_month
    )
    periods: list[Period] = []
    for index, quarter in enumerate(quarters):
        periods.append(quarter)
        is_last_of_year = index + 1 == len(quarters) or quarters[index + 1].fiscal_year != quarter.fiscal_year
        if is_last_of_year:
            assert quarter.fiscal_year is not None
            periods.append(fiscal_year_period(quarter.fiscal_year, project.fiscal_year_start_month))
    periods.append(lop_period(project))
    return periods


def headline_quarter(project: ProjectSettings, as_of: dt.date) -> Period | None:
    """The last project quarter that ended on or before ``as_of``; None before the first ends."""
    ended = [
        quarter
        for quarter in quarters_between(project.start_date, project.end_date, project.fiscal_year_start_month)
        if quarter.end <= as_of
    ]
    return ended[-1] if ended else None


def dhis2_period(period: Period) -> str:
    """The DHIS2 period id of a quarter: the calendar quarter it coincides with (``2025Q4``)."""
    if period.kind != QUARTER:
        raise KoboTipError(f"Only quarters are exported to DHIS2; '{period.label}' is a {period.kind}.")
    if period.start.month not in DHIS2_QUARTER_START_MONTHS:
        raise KoboTipError(
            f"Quarter '{period.label}' starts in month {period.start.month}, so it is not a calendar quarter "
            "and cannot be exported quarterly to DHIS2: set [project] fiscal_year_start_month to 1, 4, 7 "
            "or 10, or remove the [dhis2] section."
        )
    return f"{period.start.year}Q{(period.start.month - 1) // 3 + 1}"
