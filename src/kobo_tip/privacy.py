"""Audiences and small-cell protection (spec section 6).

Outside ``internal`` a count ``0 < v < k`` is published as ``<k`` (primary suppression), and
further cells are hidden as ``x`` (complementary suppression) until every additive relation
among the published cells holds no hidden cell or at least two, so no hidden value can be
recovered by subtraction across categories, quarters, fiscal years or the life of project.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from kobo_tip import indicator
from kobo_tip.errors import UsageError

CellKey = tuple[str, str, str, str]  # (indicator, period, dimension, category)

HIDDEN = "x"
TOTAL_DIMENSION = "total"
TOTAL_CATEGORY = "all"
CROSS_TAB = "age_band_x_gender"
CROSS_TAB_SEPARATOR = "|"
QUARTER, FISCAL_YEAR, LOP = "quarter", "fiscal_year", "lop"


@dataclass(frozen=True)
class Relation:
    """Cells whose values add up to a margin cell: ``sum(parts) == margin``."""

    parts: tuple[int, ...]  # row positions in the counts table
    margin: int

    def members(self) -> tuple[int, ...]:
        return (*self.parts, self.margin)


def publish(counts: pd.DataFrame, audience: str, k: int | None = None) -> pd.DataFrame:
    """The counts as ``audience`` may see them: same rows and columns, ``value`` as text.

    ``internal`` gets every value unchanged; other audiences get ``<k`` for 0 < v < k and ``x``
    for cells hidden by complementary suppression. ``k`` None takes the audience's default.
    """
    if audience not in indicator.AUDIENCES:
        raise UsageError(f"Unknown audience '{audience}': choose from {', '.join(indicator.AUDIENCES)}.")
    published = counts.copy()
    values = [int(v) for v in counts["value"]]
    if audience == "internal":
        published["value"] = [str(v) for v in values]
        return published
    threshold = indicator.DEFAULT_MIN_CELL[audience] if k is None else k
    if threshold < 1:
        raise UsageError(f"The minimum cell size for '{audience}' must be at least 1, got {threshold}.")
    primary = primary_suppressed(values, threshold)
    hidden = complementary_suppressed(values, additive_relations(counts), primary)
    published["value"] = [
        f"<{threshold}" if i in primary else HIDDEN if i in hidden else str(v) for i, v in enumerate(values)
    ]
    return published


def primary_suppressed(values: Sequence[int], k: int) -> set[int]:
    """Positions of the cells below the threshold: 0 < value < k."""
    return {i for i, v in enumerate(values) if 0 < v < k}


def complementary_suppressed(
    values: Sequence[int], relations: Sequence[Relation], primary: Iterable[int]
) -> set[int]:
    """Positions hidden on top of ``primary`` so no relation holds exactly one hidden cell.

    Runs to a fixed point: hiding a cell re-checks every relation that cell belongs to. In a
    relation with one hidden cell, the smallest visible non-zero part is hidden (ties: the
    first in table order); when no part is left, the margin is.
    """
    hidden = set(primary)
    relations_of: dict[int, list[int]] = defaultdict(list)
    for number, relation in enumerate(relations):
        for member in relation.members():
            relations_of[member].append(number)
    pending = sorted({n for cell in hidden for n in relations_of[cell]})
    added: set[int] = set()
    while pending:
        relation = relations[pending.pop()]
        if sum(member in hidden for member in relation.members()) != 1:
            continue
        candidates = [p for p in relation.parts if p not in hidden and values[p] > 0]
        if candidates:
            cell = min(candidates, key=lambda p: (values[p], p))
        elif relation.margin not in hidden:
            cell = relation.margin
        else:  # cannot happen with consistent counts: a hidden margin is non-zero
            continue
        hidden.add(cell)
        added.add(cell)
        pending.extend(relations_of[cell])
    return added


def additive_relations(counts: pd.DataFrame) -> list[Relation]:
    """Every additive relation among the rows of a counts table (spec section 6).

    Per indicator and period: each additive dimension's categories -> the period total, and
    the age band x gender cross-tab -> its age band and gender margins. Per indicator,
    dimension and category: the quarters of a fiscal year -> that fiscal year, the fiscal
    years -> LOP. Multi-response dimensions (``additive`` False) do not sum to the total, but
    a person still counts in one quarter only, so their cells take part in the period relations.
    """
    rows = counts.reset_index(drop=True)
    columns = (rows[name].tolist() for name in ("indicator", "period", "dimension", "category", "additive"))
    position: dict[CellKey, int] = {}
    additive: dict[CellKey, int] = {}
    for i, (name, period, dimension, category, sums) in enumerate(zip(*columns, strict=True)):
        position[(name, period, dimension, category)] = i
        if sums:
            additive[(name, period, dimension, category)] = i
    return _category_relations(additive) + _period_relations(rows, position)


def _category_relations(position: dict[CellKey, int]) -> list[Relation]:
    """Per period: each dimension's categories -> the total; cross-tab cells -> both margins."""
    groups: dict[tuple[CellKey, str], list[int]] = defaultdict(list)
    for (name, period, dimension, category), i in position.items():
        if dimension == TOTAL_DIMENSION:
            continue
        if dimension == CROSS_TAB:
            age, _, gender = category.partition(CROSS_TAB_SEPARATOR)
            groups[((name, period, "age_band", age), dimension)].append(i)
            groups[((name, period, "gender", gender), dimension)].append(i)
        else:
            groups[((name, period, TOTAL_DIMENSION, TOTAL_CATEGORY), dimension)].append(i)
    return _relations(groups, position)


def _period_relations(rows: pd.DataFrame, position: dict[CellKey, int]) -> list[Relation]:
    """Quarters -> their fiscal year and fiscal years -> LOP, for every cell."""
    parent = parent_periods(rows)
    groups: dict[tuple[CellKey, str], list[int]] = defaultdict(list)
    for (name, period, dimension, category), i in position.items():
        if period in parent:
            groups[((name, parent[period], dimension, category), dimension)].append(i)
    return _relations(groups, position)


def parent_periods(rows: pd.DataFrame) -> dict[str, str]:
    """Quarter label -> the fiscal year holding its start; fiscal-year label -> the LOP label."""
    periods = rows.drop_duplicates("period")
    by_kind = {kind: group for kind, group in periods.groupby("period_kind")}
    parent: dict[str, str] = {}
    years = by_kind.get(FISCAL_YEAR, periods.iloc[0:0])
    for quarter in by_kind.get(QUARTER, periods.iloc[0:0]).itertuples():
        start = str(quarter.period_start)
        for year in years.itertuples():
            if str(year.period_start) <= start <= str(year.period_end):
                parent[quarter.period] = year.period
                break
    for lop in by_kind.get(LOP, periods.iloc[0:0]).itertuples():
        parent.update(dict.fromkeys(years["period"], lop.period))
    return parent


def _relations(groups: dict[tuple[CellKey, str], list[int]], position: dict[CellKey, int]) -> list[Relation]:
    """Relations from parts grouped by (margin cell, the parts' dimension), when the margin exists."""
    return [
        Relation(tuple(parts), position[margin])
        for (margin, _), parts in groups.items()
        if margin in position
    ]
