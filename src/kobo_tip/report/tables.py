"""Published counts shaped for reading: dimension tables, cross-tabs and headline figures.

The HTML, Markdown and XLSX outputs all draw from these, so they show the same numbers as
counts.csv. Every cell carries its counts.csv address (``indicator|period|dimension|category``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from kobo_tip import indicator
from kobo_tip.periods import Period
from kobo_tip.privacy import CROSS_TAB, CROSS_TAB_SEPARATOR, FISCAL_YEAR, LOP, QUARTER
from kobo_tip.report.texts import ReportWords

CellKey = tuple[str, str, str, str]
TABLE_DIMENSIONS = (
    *(d for d in indicator.DIMENSIONS if d != CROSS_TAB),
    *indicator.MULTI_RESPONSE_DIMENSIONS,
)


@dataclass(frozen=True)
class Cell:
    """One published value: an integer as text, ``<k``, ``x``, or empty where no cell exists."""

    text: str
    address: str = ""

    @property
    def is_number(self) -> bool:
        return self.text.isdigit()


@dataclass(frozen=True)
class Column:
    label: str
    kind: str  # quarter | fiscal_year | lop, or "category" for a cross-tab column


@dataclass(frozen=True)
class Row:
    category: str  # the choice name
    label: str  # in the report language
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Table:
    """One breakdown of one indicator: categories as rows, periods (or genders) as columns."""

    indicator: str
    dimension: str
    title: str
    additive: bool
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    left_out: str = ""  # "quarters": by fiscal year and LOP only; "all": not published in this release


@dataclass(frozen=True)
class Figure:
    caption: str
    period: str
    cell: Cell


@dataclass(frozen=True)
class Headline:
    indicator: str
    title: str
    figures: tuple[Figure, ...]


class PublishedCounts:
    """Lookup and ordering over a published counts table (``privacy.publish`` output)."""

    def __init__(self, published: pd.DataFrame) -> None:
        self.frame = published
        columns = (published[c].tolist() for c in ("indicator", "period", "dimension", "category", "value"))
        self.values: dict[CellKey, str] = {
            (name, period, dimension, category): str(value)
            for name, period, dimension, category, value in zip(*columns, strict=True)
        }
        firsts = published.drop_duplicates("period")
        self.periods = tuple(
            Period(r.period, r.period_kind, _day(r.period_start), _day(r.period_end))
            for r in firsts.itertuples()
        )
        self.categories: dict[tuple[str, str], list[str]] = defaultdict(list)
        for name, dimension, category in published.drop_duplicates(["indicator", "dimension", "category"])[
            ["indicator", "dimension", "category"]
        ].itertuples(index=False):
            self.categories[(name, dimension)].append(category)
        self.additive = dict(
            zip(published["dimension"].tolist(), published["additive"].astype(bool).tolist(), strict=True)
        )

    def cell(self, name: str, period: str, dimension: str, category: str) -> Cell:
        key = (name, period, dimension, category)
        text = self.values.get(key)
        return Cell("", "") if text is None else Cell(text, "|".join(key))

    def of_kind(self, kind: str) -> list[Period]:
        return [p for p in self.periods if p.kind == kind]

    def indicators(self) -> list[str]:
        """The indicators in the table, headline first."""
        present = {name for name, _ in self.categories}
        return [name for name in indicator.VARIANTS if name in present]


def dimension_tables(
    counts: PublishedCounts,
    words: ReportWords,
    name: str,
    left_out: Mapping[tuple[str, str], str] | None = None,
) -> list[Table]:
    """One table per dimension of indicator ``name``: categories by periods (quarters, FY, LOP).

    ``left_out`` names the breakdowns a release publishes by fiscal year and LOP only (their table
    has those columns only) or not at all (an empty table, so the report can say why)."""
    left_out = left_out or {}
    tables = []
    for dimension in TABLE_DIMENSIONS:
        categories = counts.categories.get((name, dimension))
        omitted = left_out.get((name, dimension), "")
        if not categories and not omitted:
            continue
        periods = [p for p in counts.periods if omitted == "" or (omitted != "all" and p.kind != QUARTER)]
        rows = tuple(
            Row(
                category,
                words.category(dimension, category),
                tuple(counts.cell(name, p.label, dimension, category) for p in periods),
            )
            for category in categories or []
        )
        columns = tuple(Column(p.label, p.kind) for p in periods)
        additive = counts.additive.get(dimension, True)
        tables.append(Table(name, dimension, words.dimension(dimension), additive, columns, rows, omitted))
    return tables


def cross_tab(counts: PublishedCounts, words: ReportWords, name: str, period: str) -> Table | None:
    """The age band x gender table of one period: age bands as rows, genders as columns."""
    categories = counts.categories.get((name, CROSS_TAB))
    if not categories:
        return None
    pairs = [category.partition(CROSS_TAB_SEPARATOR)[::2] for category in categories]
    ages = list(dict.fromkeys(age for age, _ in pairs))
    genders = list(dict.fromkeys(gender for _, gender in pairs))
    rows = tuple(
        Row(
            age,
            words.category("age_band", age),
            tuple(counts.cell(name, period, CROSS_TAB, age + CROSS_TAB_SEPARATOR + g) for g in genders),
        )
        for age in ages
    )
    columns = tuple(Column(words.category("gender", gender), "category") for gender in genders)
    return Table(name, CROSS_TAB, f"{words.dimension(CROSS_TAB)}: {period}", True, columns, rows)


@dataclass(frozen=True)
class KeyPeriods:
    """The periods the headline figures and cross-tabs show (None: not in this report)."""

    headline: str | None
    fiscal_year: str | None
    lop: str | None
    running: str | None  # the running quarter, internal only

    @classmethod
    def of(cls, counts: PublishedCounts, headline: str | None, as_of: dt.date) -> KeyPeriods:
        quarters, years, lops = (counts.of_kind(kind) for kind in (QUARTER, FISCAL_YEAR, LOP))
        shown = {q.label for q in quarters}
        running = quarters[-1].label if quarters and quarters[-1].end > as_of else None
        return cls(
            headline=headline if headline in shown else None,
            fiscal_year=years[-1].label if years else None,
            lop=lops[-1].label if lops else None,
            running=running,
        )


def headlines(counts: PublishedCounts, words: ReportWords, periods: KeyPeriods) -> list[Headline]:
    """Total of each indicator for the headline quarter, fiscal year to date and LOP."""
    wanted = [
        ("headline.quarter", periods.headline),
        ("headline.running", periods.running),
        ("headline.fiscal_year", periods.fiscal_year),
        ("headline.lop", periods.lop),
    ]
    result = []
    for name in counts.indicators():
        figures = tuple(
            Figure(words.text(caption), period or words.text("headline.none"), _total(counts, name, period))
            for caption, period in wanted
            if period or caption == "headline.quarter"
        )
        result.append(Headline(name, words.indicator(name), figures))
    return result


def _total(counts: PublishedCounts, name: str, period: str | None) -> Cell:
    return counts.cell(name, period, "total", "all") if period else Cell("–")


def _day(value: object) -> dt.date:
    """A period bound as a date, whether the table holds dates or ISO text."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
