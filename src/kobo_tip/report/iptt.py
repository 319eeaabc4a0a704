"""Targets against actuals (the IPTT donors read first), and the summary paragraph of a report.

Every figure here is computed from the audience's published cells and the targets, which are
not sensitive: an actual is a published cell; a cumulative actual is a sum of published numbers
(quarters, or a fiscal year's total, or the LOP itself); a group target's actual is the sum of its
categories' published cells; a percentage and a flag exist only beside a published actual. A
cumulative or group actual that no sum of published numbers gives is hidden, and what it is shown
as must be true whatever its value (contract section 6): ``x`` (k or more) only where the published
cells it adds up already say it is k or more (one of them ``x``, or numbers of k or more); ``<k``
only where it is one cell published as ``<k``, the others 0 (an early cumulative, say); else
``NOT_PUBLISHED``, which says nothing of it. A sum of ``<k`` cells is never ``<k``: it need not be
below k. So nothing a reader can work out from this section goes beyond what the tables already
say; the group and cumulative actuals are given to the disclosure audit all the same, as sums of
cells, a number as an equality and ``x`` or ``<k`` as a range (``audited_sums``, contract section
6: "every other published figure").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from kobo_tip.indicator import VARIANTS
from kobo_tip.periods import FISCAL_YEAR, LOP, QUARTER, Period
from kobo_tip.report.tables import Cell, PublishedCounts
from kobo_tip.report.texts import ReportWords
from kobo_tip.targets import Target, Targets

IPTT_COLUMNS = (
    "indicator",
    "period",
    "dimension",
    "category",
    "target",
    "actual",
    "percent_achieved",
    "flag",
    "notes",
    "baseline",
)
ABOVE, BELOW = "above", "below"
NOT_APPLICABLE = "n/a"
NOT_PUBLISHED = "not published"  # outside internal: a cell the release does not hold
HEADLINE = ("total", "all")
HIDDEN = "x"
CUMULATIVE_PREFIX = "LOP through "  # iptt.csv's period of a cumulative row: "LOP through FY2026 Q1"
CellKey = tuple[str, str, str, str]  # indicator, period, dimension, category


@dataclass(frozen=True)
class IpttRow:
    indicator: str
    period: str  # a period label, or ``CUMULATIVE_PREFIX`` and a quarter's for a cumulative row
    dimension: str
    category: str
    target: int | None  # the target the actual is compared with (to date for a running period)
    full_target: int | None  # the period's whole target, when the comparison is to date
    actual: Cell  # empty text: not reached yet (a future period)
    percent: str  # "97.5", "n/a", or "" beside a hidden or future actual
    flag: str  # above | below | ""
    notes: str  # the officer's words from the targets file
    cumulative: bool = False
    baseline: int | None = None
    parts: tuple[str, ...] = ()  # a group target's categories (``Target.parts``)

    def csv_row(self) -> list[str]:
        target = "" if self.target is None else str(self.target)
        return [
            self.indicator,
            self.period,
            self.dimension,
            self.category,
            target,
            self.actual.text,
            self.percent,
            self.flag,
            self.notes,
            "" if self.baseline is None else str(self.baseline),
        ]


def period_words(row: IpttRow, words: ReportWords) -> str:
    """The row's period as the report language writes it; a cumulative row's as its quarter's
    followed by "(cumulative)"."""
    if row.cumulative:
        quarter = words.period(row.period.removeprefix(CUMULATIVE_PREFIX))
        return f"{quarter} ({words.text('iptt.cumulative')})"
    return words.period(row.period)


def readable_row(row: IpttRow, words: ReportWords) -> list[str]:
    """``row.csv_row()`` for people: indicator, period, breakdown, category, flag and a not
    published actual in the report language (iptt.csv keeps the codes); the numbers as iptt.csv
    has them."""
    codes = row.csv_row()
    return [
        words.indicator(row.indicator),
        period_words(row, words),
        words.dimension(row.dimension),
        category_words(row, words),
        codes[4],
        actual_text(row.actual, words),
        codes[6],
        words.text(f"iptt.{row.flag}") if row.flag else "",
        row.notes,
    ]


def category_words(row: IpttRow, words: ReportWords) -> str:
    """The row's category as the report language names it; a group's as its categories joined by
    " + " (its code, "0-4|male+5-11|male", would break a Markdown table at each "|")."""
    if row.parts:
        return " + ".join(words.category(row.dimension, part) for part in row.parts)
    return words.category(row.dimension, row.category)


def actual_text(actual: Cell, words: ReportWords) -> str:
    """An actual as a sheet for people holds it: iptt.csv's text, "not published" in the report
    language."""
    return words.text("iptt.not_published") if actual.text == NOT_PUBLISHED else actual.text


def unpublished(rows: Iterable[IpttRow]) -> bool:
    """Whether an actual of ``rows`` is not published: the key beside them then says what that means."""
    return any(row.actual.text == NOT_PUBLISHED for row in rows)


def iptt_frame(rows: Iterable[IpttRow]) -> pd.DataFrame:
    """iptt.csv as a table (``IPTT_COLUMNS``)."""
    return pd.DataFrame([row.csv_row() for row in rows], columns=list(IPTT_COLUMNS))


def iptt_rows(
    counts: PublishedCounts, targets: Targets, through: Period | None, margin: int, k: int | None
) -> list[IpttRow]:
    """A row per target (period order), then the cumulative actual against each LOP target,
    quarter by quarter. ``counts`` holds the ended quarters only; ``through`` is the last of them.
    ``k``: the release's (``x`` means k or more), None when ``counts`` are the true counts. The
    actual of a cell ``counts`` lacks is "0" in the true counts (nobody counted there),
    ``NOT_PUBLISHED`` in a release."""
    periods = {p.label: p for p in counts.periods}
    quarters = counts.of_kind(QUARTER)
    rows = []
    for target in sorted(targets.by_key.values(), key=_order):
        period = periods.get(target.period)
        if period is None or through is None:  # not started, or nothing ended yet
            rows.append(_row(target, target.target, None, Cell(""), "", flag=""))
            continue
        actual = target_actual(counts, target, target.period, k=k)
        compared: int | None = target.target
        full: int | None = None
        running = period.end > through.end and period.kind != QUARTER  # a fiscal year or the LOP
        if running:
            ended = [q for q in quarters if period.start <= q.start and q.end <= through.end]
            parts = [
                targets.get((target.indicator, q.label, target.dimension, target.category)) for q in ended
            ]
            if parts and all(parts):  # compared with the targets of its quarters ended so far
                compared, full = sum(p.target for p in parts if p), target.target
        percent, flag = _achievement(actual, compared, margin)
        if running and full is None:
            flag = ""  # progress towards the whole target: no deviation to explain yet
        rows.append(_row(target, compared, full, actual, percent, flag=flag))
    for target in sorted(targets.by_key.values(), key=_order):
        if target.period == "LOP" and through is not None:
            rows += _cumulative(counts, target, quarters, k=k)
    return rows


def _order(target: Target) -> tuple[int, bool, str, str, int]:
    """Indicators in report order, the total first, then each breakdown, periods as in the file."""
    variant = list(VARIANTS).index(target.indicator)
    return (variant, target.dimension != "total", target.dimension, target.category, target.line)


def _row(
    target: Target, compared: int | None, full: int | None, actual: Cell, percent: str, *, flag: str
) -> IpttRow:
    return IpttRow(
        target.indicator,
        target.period,
        target.dimension,
        target.category,
        compared,
        full,
        actual,
        percent,
        flag,
        target.notes,
        baseline=target.baseline,
        parts=target.parts,
    )


def target_actual(counts: PublishedCounts, target: Target, period: str, *, k: int | None) -> Cell:
    """The actual of ``target`` in ``period``: its cell, or for a group the sum of its categories'
    cells as ``shown`` gives it."""
    if not target.parts:
        return _actual(counts, k, target.indicator, period, target.dimension, target.category)
    cells = [_actual(counts, k, target.indicator, period, target.dimension, part) for part in target.parts]
    return shown(Known.of(cells, k), k)


@dataclass(frozen=True)
class Known:
    """What published cells say of a figure that adds them up: its value when they are all
    numbers (None otherwise); the least it can be (a number is itself, ``x`` at least k, ``<k``
    and a cell not published at least 0); and whether one ``<k`` cell holds all its persons (the
    others published as 0)."""

    exact: int | None
    floor: int
    below: bool = False  # it is one cell published as ``<k`` (and zeros): 0 to k-1

    @classmethod
    def of(cls, cells: Iterable[Cell], k: int | None) -> Known:
        cells = list(cells)
        floor = sum(int(c.text) if c.is_number else (k or 0) if c.text == HIDDEN else 0 for c in cells)
        others = [c for c in cells if c.text != "0"]
        return cls(_sum(cells), floor, len(others) == 1 and others[0].text.startswith("<"))

    def plus(self, other: Known) -> Known:
        exact = None if self.exact is None or other.exact is None else self.exact + other.exact
        below = (self.below and other.exact == 0) or (other.below and self.exact == 0)
        return Known(exact, self.floor + other.floor, below)

    def or_else(self, other: Known) -> Known:
        """The same persons added up another way (a fiscal year's cell or its quarters'): the value
        either gives, the larger of their floors, and a ``<k`` either is."""
        exact = self.exact if self.exact is not None else other.exact
        return Known(exact, max(self.floor, other.floor), self.below or other.below)


def shown(known: Known, k: int | None) -> Cell:
    """A sum of published cells as it may be published, true whatever its value: the value when
    they give it; else ``x`` when they already say it is at least ``k``, or ``<k`` when it is one
    ``<k`` cell and zeros (either says no more than the cells do); else ``NOT_PUBLISHED``."""
    if known.exact is not None:
        return Cell(str(known.exact))
    if k is not None and known.floor >= k:
        return Cell(HIDDEN)
    if k is not None and known.below:
        return Cell(f"<{k}")
    return Cell(NOT_PUBLISHED)


def audited_sums(rows: Iterable[IpttRow], periods: Sequence[Period]) -> list[tuple[list[CellKey], str]]:
    """The published figures of ``rows`` that are sums of cells, as (cells, text) for the disclosure
    audit: a group target's actual (its categories in its period), and a cumulative actual (the
    quarters through its quarter, of each category), each a number or a range (``x``: k or more,
    ``<k``: 0 to k-1). A single cell's actual is the cell itself."""
    quarters = [p for p in periods if p.kind == QUARTER]
    out = []
    for row in rows:
        categories = row.parts or (row.category,)
        if row.actual.text in ("", NOT_PUBLISHED):
            continue  # not reached yet, or not published: it says nothing, whatever its value
        if row.cumulative:
            last = row.period.removeprefix(CUMULATIVE_PREFIX)
            through = [q.label for q in quarters[: [q.label for q in quarters].index(last) + 1]]
        elif row.parts:
            through = [row.period]
        else:
            continue
        cells = [(row.indicator, p, row.dimension, c) for p in through for c in categories]
        out.append((cells, row.actual.text))
    return out


def _achievement(actual: Cell, target: int | None, margin: int) -> tuple[str, str]:
    """(percent, flag) beside a published actual; nothing beside a hidden one."""
    if not actual.is_number:
        return "", ""
    if not target:
        return NOT_APPLICABLE, ""
    share = int(actual.text) / target
    flag = ABOVE if share > 1 + margin / 100 else BELOW if share < 1 - margin / 100 else ""
    return f"{100 * share:.1f}", flag


def _actual(counts: PublishedCounts, k: int | None, *key: str) -> Cell:
    """The cell of ``key``; one ``counts`` lacks is "0" in the true counts (``k`` None: nobody
    counted there), ``NOT_PUBLISHED`` in a release."""
    cell = counts.cell(*key)
    return cell if cell.text else Cell("0" if k is None else NOT_PUBLISHED)


def _cumulative(
    counts: PublishedCounts, target: Target, quarters: list[Period], *, k: int | None
) -> list[IpttRow]:
    rows = []
    for quarter in quarters:
        each = (
            cumulative_actual(counts, target.indicator, target.dimension, category, quarter=quarter, k=k)
            for category in target.parts or (target.category,)
        )
        actual = shown(functools.reduce(Known.plus, each), k)
        percent, _ = _achievement(actual, target.target, 100)
        rows.append(
            IpttRow(
                target.indicator,
                f"{CUMULATIVE_PREFIX}{quarter.label}",
                target.dimension,
                target.category,
                target.target,
                None,
                actual,
                percent,
                "",
                target.notes,
                cumulative=True,
                baseline=target.baseline,
                parts=target.parts,
            )
        )
    return rows


def cumulative_actual(
    counts: PublishedCounts,
    name: str,
    dimension: str,
    category: str,
    *,
    quarter: Period,
    k: int | None,
) -> Known:
    """Persons counted from the project start through ``quarter``, as published cells give it:
    exactly where numbers do (the LOP itself for the last ended quarter, else each fiscal year's
    total or the sum of its quarters, and the quarters of the current year), else what the same
    cells say of it (``Known``)."""
    quarters = counts.of_kind(QUARTER)
    years = []
    for year in counts.of_kind(FISCAL_YEAR):
        if year.start > quarter.start:
            break
        inside = [q for q in quarters if year.start <= q.start <= min(year.end, quarter.end)]
        part = Known.of((_actual(counts, k, name, q.label, dimension, category) for q in inside), k)
        if inside and inside[-1] == _last_in(quarters, year):  # the year's cell holds the same persons
            part = part.or_else(Known.of([_actual(counts, k, name, year.label, dimension, category)], k))
        years.append(part)
    total = functools.reduce(Known.plus, years) if years else Known(0, 0)  # one year keeps its ``<k``
    if quarters and quarter == quarters[-1] and counts.of_kind(LOP):
        lop = _actual(counts, k, name, counts.of_kind(LOP)[0].label, dimension, category)
        total = Known.of([lop], k).or_else(total)
    return total


def _last_in(quarters: list[Period], year: Period) -> Period | None:
    inside = [q for q in quarters if year.start <= q.start <= year.end]
    return inside[-1] if inside else None


def _sum(cells: Iterable[Cell]) -> int | None:
    values = [int(c.text) if c.is_number else None for c in cells]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def summary(counts: PublishedCounts, words: ReportWords, rows: list[IpttRow], name: str) -> str:
    """The paragraph at the top of a report: the last ended quarter's headline, its change from
    the quarter before, and the fiscal year and LOP against their targets; each number a
    published one or a difference of two."""
    quarters = counts.of_kind(QUARTER)
    if not quarters:
        return words.text("summary.none")
    last = quarters[-1]
    cell = counts.cell(name, last.label, *HEADLINE)
    parts = [words.text("summary.quarter", quarter=words.period(last.label), value=_said(cell, words))]
    if len(quarters) > 1:
        before = counts.cell(name, quarters[-2].label, *HEADLINE)
        if cell.is_number and before.is_number:
            change = int(cell.text) - int(before.text)
            key = "summary.up" if change > 0 else "summary.down" if change < 0 else "summary.same"
            parts.append(
                words.text(
                    key,
                    n=abs(change),
                    previous=words.period(quarters[-2].label),
                    value=words.number(before.text),
                )
            )
    years = counts.of_kind(FISCAL_YEAR)
    latest = {*(p.label for p in years[-1:]), *(p.label for p in counts.of_kind(LOP))}
    for row in rows:
        if (row.indicator, row.dimension, row.category) != (name, *HEADLINE) or row.cumulative:
            continue
        if row.period in latest and row.actual.is_number and row.target is not None and row.percent:
            key = "summary.target" if row.full_target is None else "summary.target_to_date"
            parts.append(
                words.text(
                    key,
                    period=words.period(row.period),
                    value=words.number(row.actual.text),
                    target=row.target,
                    full=row.full_target,
                    quarter=words.period(last.label),
                    percent=words.percent_text(row.percent),
                )
            )
    return " ".join(parts)


def _said(cell: Cell, words: ReportWords) -> str:
    return words.number(cell.text) if cell.is_number else words.text("summary.hidden")
