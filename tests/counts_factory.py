"""Build counts tables the way counting does, from a list of made-up persons.

Used by the privacy and report tests to get internally consistent tables (every dimension
sums to its period total, quarters to their fiscal year, fiscal years to LOP) without the
store or the counting engine.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from kobo_tip import indicator

START = dt.date(2025, 10, 1)
AGE_BANDS = (*indicator.age_band_labels(indicator.AGE_BANDS_DEFAULT), indicator.UNKNOWN)
GENDERS = indicator.CHOICES["gender"]
STAKEHOLDER_TYPES = (*indicator.CHOICES["stakeholder_type"], indicator.UNKNOWN)
CATEGORIES = indicator.CHOICES["person_category"]


@dataclass(frozen=True)
class Person:
    """A counted person: the index quarter and the index event's attributes."""

    quarter: int  # 0 = FY2026 Q1
    actions: frozenset[str]
    age_band: str = "18-59"
    gender: str = "female"
    stakeholder_type: str = "ngo_partner"
    consent: bool = True
    person_categories: frozenset[str] = frozenset({"trafficking_presumed"})


@dataclass(frozen=True)
class Period:
    label: str
    kind: str
    start: dt.date
    end: dt.date


def quarter_periods(quarters: int) -> list[Period]:
    """Quarters from FY2026 Q1, then the fiscal years holding them, then LOP (US fiscal year)."""
    shown: list[Period] = []
    years: dict[int, list[Period]] = {}
    for number in range(quarters):
        start = _add_months(START, 3 * number)
        end = _add_months(start, 3) - dt.timedelta(days=1)
        fiscal_year = start.year + 1 if start.month >= 10 else start.year
        period = Period(f"FY{fiscal_year} Q{number % 4 + 1}", "quarter", start, end)
        shown.append(period)
        years.setdefault(fiscal_year, []).append(period)
    for fiscal_year in years:
        shown.append(
            Period(
                f"FY{fiscal_year}",
                "fiscal_year",
                dt.date(fiscal_year - 1, 10, 1),
                dt.date(fiscal_year, 9, 30),
            )
        )
    shown.append(Period("LOP", "lop", START, dt.date(2028, 9, 30)))
    return shown


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    return dt.date(day.year + month // 12, month % 12 + 1, 1)


def _categories(person: Person) -> dict[str, list[str]]:
    age = person.age_band if person.consent else indicator.NOT_RECORDED
    gender = person.gender if person.consent else indicator.NOT_RECORDED
    return {
        "total": ["all"],
        "age_band": [age],
        "gender": [gender],
        "stakeholder_type": [person.stakeholder_type],
        "age_band_x_gender": [f"{age}|{gender}"],
        "person_category": sorted(person.person_categories),
    }


DIMENSION_CATEGORIES: dict[str, tuple[str, ...]] = {
    "total": ("all",),
    "age_band": (*AGE_BANDS, indicator.NOT_RECORDED),
    "gender": (*GENDERS, indicator.NOT_RECORDED),
    "stakeholder_type": STAKEHOLDER_TYPES,
    "age_band_x_gender": (
        *(f"{age}|{gender}" for age in AGE_BANDS for gender in GENDERS),
        f"{indicator.NOT_RECORDED}|{indicator.NOT_RECORDED}",
    ),
    "person_category": CATEGORIES,
}


def counts_table(persons: list[Person], quarters: int = 4) -> pd.DataFrame:
    """The counts table (COUNTS_COLUMNS + additive + period_kind) for ``persons``."""
    periods = quarter_periods(quarters)
    tallies: Counter[tuple[str, str, str, str]] = Counter()
    for person in persons:
        if person.quarter >= quarters:
            continue
        covering = [
            p
            for p in periods
            if p.kind == "lop" or p.start <= _add_months(START, 3 * person.quarter) <= p.end
        ]
        for variant, actions in indicator.VARIANTS.items():
            if not actions & person.actions:
                continue
            for dimension, categories in _categories(person).items():
                for category in categories:
                    for period in covering:
                        tallies[(variant, period.label, dimension, category)] += 1
    rows = [
        (
            variant,
            period.label,
            period.start.isoformat(),
            period.end.isoformat(),
            dimension,
            category,
            tallies[(variant, period.label, dimension, category)],
            dimension not in indicator.MULTI_RESPONSE_DIMENSIONS,
            period.kind,
        )
        for variant in indicator.VARIANTS
        for period in periods
        for dimension, categories in DIMENSION_CATEGORIES.items()
        for category in categories
    ]
    return pd.DataFrame(rows, columns=[*indicator.COUNTS_COLUMNS, "additive", "period_kind"])
