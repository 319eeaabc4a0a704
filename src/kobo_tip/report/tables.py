"""Published counts shaped for reading: dimension tables, cross-tabs and headline figures.

The HTML, Markdown and XLSX outputs all draw from these, so they show the same numbers as
counts.csv. Every cell carries its counts.csv address (``indicator|period|dimension|category``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from kobo_tip import indicator
from kobo_tip.periods import Period
from kobo_tip.privacy import CROSS_TAB, CROSS_TAB_SEPARATOR, FISCAL_YEAR, LOP, QUARTER
from kobo_tip.report.records import PeriodRow, records
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
    label: str  # a period's code (counts.csv's), or a cross-tab column's text
    kind: str  # quarter | fiscal_year | lop, or "category" for a cross-tab column
    group: str = ""  # the header above it: the fiscal year of a quarter or of its own total
    short: str = ""  # its label under that header ("Q1", "Total"); empty: ``label``
    title: str = ""  # the whole period in the report language, where one header says it all

    @property
    def text(self) -> str:
        return self.title or self.label


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
    folded: tuple[Row, ...] = ()  # rows with no count above 0 to show, kept out of the way
    note: str = ""  # a line under the table

    def header_groups(self) -> list[tuple[str, int, str]]:
        """The first header row: (text, columns it spans, kind) for each run of one group."""
        groups: list[tuple[str, int, str]] = []
        for column in self.columns:
            if groups and column.group and groups[-1][0] == column.group:
                text, span, kind = groups[-1]
                groups[-1] = (text, span + 1, kind)
            else:
                groups.append((column.group, 1, column.kind))
        return groups

    @property
    def grouped(self) -> bool:
        return any(column.group for column in self.columns)


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
            for r in records(firsts, PeriodRow)
        )
        self.categories: dict[tuple[str, str], list[str]] = defaultdict(list)
        for name, dimension, category in published.drop_duplicates(["indicator", "dimension", "category"])[
            ["indicator", "dimension", "category"]
        ].itertuples(index=False):
            self.categories[(name, dimension)].append(category)
        self.additive = dict(
            zip(published["dimension"].tolist(), published["additive"].astype(bool).tolist(), strict=True)
        )

    def without_empty_running(self, as_of: dt.date) -> PublishedCounts:
        """These counts without a running quarter in which nothing is counted yet (and a fiscal
        year of that quarter alone): an empty column reads as "nothing happened"."""
        quarters = self.of_kind(QUARTER)
        if not quarters or quarters[-1].end <= as_of:
            return self
        running = quarters[-1]
        frame = self.frame
        totals = frame[(frame["period"] == running.label) & (frame["dimension"] == "total")]["value"]
        if not (totals.astype(str) == "0").all():
            return self
        alone = [
            year.label
            for year in self.of_kind(FISCAL_YEAR)
            if year.start <= running.start <= year.end
            and not any(q is not running and year.start <= q.start <= year.end for q in quarters)
        ]
        return PublishedCounts(frame[~frame["period"].isin([running.label, *alone])].reset_index(drop=True))

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


# Breakdowns with many codes, most of them empty in a quarter: ordered by count, empty rows folded.
LONG_DIMENSIONS = ("location", "country_of_origin")
ALWAYS_SHOWN = ("all", indicator.UNKNOWN, indicator.NOT_RECORDED)


def period_columns(periods: Sequence[Period], words: ReportWords) -> tuple[Column, ...]:
    """Quarters grouped under their fiscal year with its total after them, then LOP: the header
    says the year once, so every column is narrow."""
    columns = []
    for period in periods:
        group, short = words.period_group(period.label)
        if period.kind == FISCAL_YEAR:
            short = words.text("column.fiscal_year_total")
        columns.append(Column(period.label, period.kind, group, short, words.period(period.label)))
    return tuple(columns)


def dimension_tables(
    counts: PublishedCounts,
    words: ReportWords,
    name: str,
    left_out: Mapping[tuple[str, str], str] | None = None,
    *,
    fold: bool = False,
    by_count: bool = False,
) -> list[Table]:
    """One table per dimension of indicator ``name``: categories by periods (quarters, FY, LOP).

    ``left_out`` names the breakdowns a release publishes by fiscal year and LOP only (their table
    has those columns only) or not at all (an empty table, so the report can say why). With ``fold``
    (the pages people read), the rows of the long breakdowns (locations, countries) without a count
    above 0 are folded and, with ``by_count`` (outside internal), the others are ordered by their
    published LOP count, hidden ones last in code order: an order that says nothing the numbers do
    not."""
    left_out = left_out or {}
    tables = []
    for dimension in TABLE_DIMENSIONS:
        categories = counts.categories.get((name, dimension))
        omitted = left_out.get((name, dimension), "")
        if not categories and not omitted:
            continue
        periods = [p for p in counts.periods if omitted == "" or (omitted != "all" and p.kind != QUARTER)]
        rows = [
            Row(
                category,
                words.category(dimension, category),
                tuple(counts.cell(name, p.label, dimension, category) for p in periods),
            )
            for category in categories or []
        ]
        folded: list[Row] = []
        if fold and dimension in LONG_DIMENSIONS:
            rows, folded = _fold(rows, [p.kind for p in periods], by_count)
        tables.append(
            Table(
                name,
                dimension,
                words.dimension(dimension),
                counts.additive.get(dimension, True),
                period_columns(periods, words),
                tuple(rows),
                omitted,
                tuple(folded),
            )
        )
    return tables


def _fold(rows: list[Row], kinds: Sequence[str], by_count: bool) -> tuple[list[Row], list[Row]]:
    """(rows to show, rows to fold): a row is folded when none of its cells is a count above 0."""
    shown = [
        r for r in rows if r.category in ALWAYS_SHOWN or any(c.is_number and c.text != "0" for c in r.cells)
    ]
    folded = [r for r in rows if r not in shown]
    if by_count and LOP in kinds:
        at = list(kinds).index(LOP)

        def rank(row: Row) -> tuple[int, int]:
            cell = row.cells[at]
            return (0, -int(cell.text)) if cell.is_number else (1, 0)

        named = sorted((r for r in shown if r.category not in ALWAYS_SHOWN), key=rank)
        shown = named + [r for r in shown if r.category in ALWAYS_SHOWN]
    return shown, folded


def cross_tab(counts: PublishedCounts, words: ReportWords, name: str, period: str) -> Table | None:
    """The age band x gender table of one period: age bands as rows, genders as columns. Persons
    without consent have neither (``not_recorded|not_recorded``): they are a line under the table."""
    categories = counts.categories.get((name, CROSS_TAB))
    if not categories:
        return None
    pairs = [category.partition(CROSS_TAB_SEPARATOR)[::2] for category in categories]
    ages = list(dict.fromkeys(age for age, _ in pairs if age != indicator.NOT_RECORDED))
    genders = list(dict.fromkeys(gender for _, gender in pairs if gender != indicator.NOT_RECORDED))
    rows = tuple(
        Row(
            age,
            words.category("age_band", age),
            tuple(counts.cell(name, period, CROSS_TAB, age + CROSS_TAB_SEPARATOR + g) for g in genders),
        )
        for age in ages
    )
    columns = tuple(Column(words.category("gender", gender), "category") for gender in genders)
    unrecorded = counts.cell(name, period, CROSS_TAB, f"{indicator.NOT_RECORDED}|{indicator.NOT_RECORDED}")
    note = words.text("cross_tab.not_recorded", n=unrecorded.text) if unrecorded.text else ""
    title = f"{words.dimension(CROSS_TAB)}: {words.period(period)}"
    return Table(name, CROSS_TAB, title, True, columns, rows, note=note)


@dataclass(frozen=True)
class KeyPeriods:
    """The periods the headline figures and cross-tabs show (None: not in this report)."""

    headline: str | None
    fiscal_year: str | None
    lop: str | None
    running: str | None  # the running quarter, internal only
    fiscal_year_running: bool = False  # the fiscal year has not ended: its figure is "to date"

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
            fiscal_year_running=bool(years) and years[-1].end > as_of,
        )


def headlines(counts: PublishedCounts, words: ReportWords, periods: KeyPeriods) -> list[Headline]:
    """Total of each indicator for the headline quarter, fiscal year to date and LOP."""
    wanted = [
        ("headline.quarter", periods.headline),
        ("headline.running", periods.running),
        (
            "headline.fiscal_year" if periods.fiscal_year_running else "headline.fiscal_year_ended",
            periods.fiscal_year,
        ),
        ("headline.lop", periods.lop),
    ]
    result = []
    for name in counts.indicators():
        figures = tuple(
            Figure(
                words.text(caption),
                words.period(period) if period else words.text("headline.none"),
                _total(counts, name, period),
            )
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
