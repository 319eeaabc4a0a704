"""The intruder's relations among the cells of one counts table (contract section 6).

Every relation is linear: ``sum(coef * cell) (= or <=) rhs``. Equalities: each single-response
dimension's categories sum to the period total; the age band x gender cross-tab sums to both
margins; ``not_recorded`` is one count across the personal dimensions; where the age bands split
at 5, disability ``not_asked`` equals the bands below 5 (lies between the bands wholly and partly
below 5 otherwise); quarters sum to their fiscal year and fiscal years to LOP, for every cell.
Inequalities: a multi-response cell is at most its period total and its categories (``unknown``
included) add up to at least the total; for every run of quarters from the first, ``identified``
and ``referred`` are at most ``identified_or_referred``, which is at most their sum; a location or
country of origin that is listed was seen, so its LOP cells sum to at least 1.

A programme's release is one table with its projects' (their indicators scoped, ``scoped``): each
scope has the relations above, and every programme cell is at most the sum of its projects' same
cell, its totals up to each quarter at least each project's (``_programme_relations``).

The relations know the table's layout only (its indicator, period, dimension and category
columns), never its values.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from kobo_tip import indicator

CellKey = tuple[str, str, str, str]  # (indicator, period, dimension, category)

TOTAL_DIMENSION = "total"
TOTAL_CATEGORY = "all"
CROSS_TAB = "age_band_x_gender"
CROSS_TAB_SEPARATOR = "|"
QUARTER, FISCAL_YEAR, LOP = "quarter", "fiscal_year", "lop"
EQUAL, AT_MOST = "=", "<="
# A table holding a programme and its projects names a project's indicators "<scope>/<indicator>".
SCOPE_SEPARATOR, PROGRAMME_SCOPE = "/", ""
SEEN_DIMENSIONS = ("location", "country_of_origin")  # categories listed only when seen (contract section 7)
ALWAYS_LISTED = (indicator.UNKNOWN, indicator.NOT_RECORDED)
IDENTIFIED_OR_REFERRED, IDENTIFIED, REFERRED = "identified_or_referred", "identified", "referred"
NO_DISABILITY_QUESTIONS_BELOW = 5  # contract section 4: under 5, the Washington Group set is not asked


@dataclass
class Relations:
    """Linear relations over the rows of a table: row ``r`` is ``sum(coefs * cells) sense rhs``."""

    cells: list[list[int]] = field(default_factory=list)
    coefs: list[list[float]] = field(default_factory=list)
    senses: list[str] = field(default_factory=list)
    rhs: list[float] = field(default_factory=list)
    assumed: list[bool] = field(default_factory=list)  # true of most tables, kept where the truth meets it

    def add(
        self,
        plus: Sequence[int],
        minus: Sequence[int] = (),
        *,
        sense: str = EQUAL,
        rhs: float = 0.0,
        assumed: bool = False,
    ) -> None:
        """Add ``sum(plus) - sum(minus) sense rhs``; cells on both sides cancel."""
        weight: dict[int, float] = defaultdict(float)
        for cell in plus:
            weight[cell] += 1.0
        for cell in minus:
            weight[cell] -= 1.0
        kept = {cell: w for cell, w in weight.items() if w}
        if not kept:
            return
        self.cells.append(list(kept))
        self.coefs.append(list(kept.values()))
        self.senses.append(sense)
        self.rhs.append(rhs)
        self.assumed.append(assumed)

    def __len__(self) -> int:
        return len(self.senses)


def parent_periods(rows: pd.DataFrame) -> dict[str, str]:
    """Quarter label -> the fiscal year holding its start; fiscal-year label -> the LOP label."""
    periods = rows.drop_duplicates("period")
    # iter(): a GroupBy has a ``keys`` attribute, so dict() would take it for a mapping.
    by_kind = dict(iter(periods.groupby("period_kind")))
    parent: dict[str, str] = {}
    years = by_kind.get(FISCAL_YEAR, periods.iloc[0:0])
    for quarter in by_kind.get(QUARTER, periods.iloc[0:0]).itertuples():
        start = str(quarter.period_start)
        for year in years.itertuples():
            if str(year.period_start) <= start <= str(year.period_end):
                parent[str(quarter.period)] = str(year.period)
                break
    for lop in by_kind.get(LOP, periods.iloc[0:0]).itertuples():
        parent.update(dict.fromkeys(years["period"], lop.period))
    return parent


def scoped(scope: str, name: str) -> str:
    """The indicator ``name`` of one project of a programme, in a table that holds several."""
    return f"{scope}{SCOPE_SEPARATOR}{name}" if scope else name


def scope_of(name: str) -> tuple[str, str]:
    """(scope, indicator) of a possibly scoped indicator name; the programme's own scope is ""."""
    scope, _, bare = name.rpartition(SCOPE_SEPARATOR)
    return scope, bare


def table_relations(table: pd.DataFrame) -> Relations:
    """Every relation of contract section 6 among the rows of ``table`` (positions 0..len-1): those of
    each scope's cells, and where the table holds a programme and its projects, those between them."""
    keys = list(
        zip(*(table[name].tolist() for name in ("indicator", "period", "dimension", "category")), strict=True)
    )
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        rows_of[scope_of(key[0])[0]].append(i)
    relations = Relations()
    positions = {}
    for scope, rows in rows_of.items():
        positions[scope] = {(scope_of(keys[i][0])[1], *keys[i][1:]): i for i in rows}
        _scope_relations(relations, positions[scope], table.iloc[rows])
    if PROGRAMME_SCOPE in positions and len(positions) > 1:
        programme = positions.pop(PROGRAMME_SCOPE)
        _programme_relations(relations, programme, list(positions.values()), table)
    return relations


def _scope_relations(relations: Relations, position: dict[CellKey, int], table: pd.DataFrame) -> None:
    """The relations among the cells of one scope (``position``: its bare cell keys -> rows)."""
    categories: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for name, period, dimension, category in position:
        categories[(name, period, dimension)].append(category)
    kinds, starts = _period_kinds(table)
    _category_relations(relations, position, categories)
    _period_relations(relations, position, parent_periods(table))
    quarters = sorted((p for p, kind in kinds.items() if kind == QUARTER), key=lambda p: starts[p])
    lop = next((p for p, kind in kinds.items() if kind == LOP), None)
    _variant_relations(relations, position, quarters, lop)
    if lop is not None:
        _seen_relations(relations, position, categories, lop)


def _period_kinds(table: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    kinds = dict(zip(table["period"].tolist(), table["period_kind"].tolist(), strict=True))
    starts = dict(zip(table["period"].tolist(), table["period_start"].astype(str).tolist(), strict=True))
    return kinds, starts


def _programme_relations(
    relations: Relations,
    programme: dict[CellKey, int],
    projects: Sequence[dict[CellKey, int]],
    table: pd.DataFrame,
) -> None:
    """A programme person counts at their first event in any project, which is also their first in
    that project, with the same categories: every programme cell is at most the sum of the same
    cell of its projects. And a person a project counts by a day is in the programme by that day:
    up to every quarter's end, and at LOP, the programme's total is at least each project's (assumed:
    a merge that joins two persons a project counts apart breaks it, so it is kept where it holds)."""
    kinds, starts = _period_kinds(table)
    for key, cell in programme.items():
        if kinds[key[1]] == QUARTER:  # fiscal years and LOP follow: both sides sum their quarters
            relations.add([cell], [p[key] for p in projects if key in p], sense=AT_MOST)
    quarters = sorted((p for p, kind in kinds.items() if kind == QUARTER), key=lambda p: starts[p])
    lops = [p for p, kind in kinds.items() if kind == LOP][:1]  # every scope's LOP has one label
    spans = [quarters[: n + 1] for n in range(len(quarters))] + [lops]
    for name in {key[0] for key in programme}:
        for span in spans:
            keys = [(name, p, TOTAL_DIMENSION, TOTAL_CATEGORY) for p in span]
            if not all(key in programme for key in keys):
                continue
            mine = [programme[key] for key in keys]
            for project in projects:
                theirs = [project[key] for key in keys if key in project]
                relations.add(theirs, mine, sense=AT_MOST, assumed=True)


def _category_relations(
    relations: Relations, position: dict[CellKey, int], categories: dict[tuple[str, str, str], list[str]]
) -> None:
    """Per indicator and period: dimensions against the total, the cross-tab against its margins,
    ``not_recorded`` across personal dimensions, disability ``not_asked`` against young age bands."""
    for (name, period, dimension), listed in categories.items():
        total = position.get((name, period, TOTAL_DIMENSION, TOTAL_CATEGORY))
        if total is None or dimension == TOTAL_DIMENSION:
            continue
        cells = [position[(name, period, dimension, c)] for c in listed]
        if dimension in indicator.SINGLE_RESPONSE_DIMENSIONS:
            relations.add(cells, [total])
        elif dimension in indicator.AT_LEAST_ONE_DIMENSIONS:
            for cell in cells:
                relations.add([cell], [total], sense=AT_MOST)
            relations.add([total], cells, sense=AT_MOST)
        elif dimension == CROSS_TAB:
            _cross_tab_relations(relations, position, name, period, listed)
        if dimension == "disability":
            _not_asked_relations(
                relations, position, name, period, categories.get((name, period, "age_band"), [])
            )
    for name, period in {(n, p) for n, p, _ in categories}:
        not_recorded = [
            position[key]
            for dimension in sorted(indicator.PERSONAL_DIMENSIONS)
            if (key := (name, period, dimension, indicator.NOT_RECORDED)) in position
        ]
        for first, second in itertools.pairwise(not_recorded):
            relations.add([first], [second])


def _cross_tab_relations(
    relations: Relations, position: dict[CellKey, int], name: str, period: str, listed: Sequence[str]
) -> None:
    by_margin: dict[tuple[str, str], list[int]] = defaultdict(list)
    for category in listed:
        age, _, gender = category.partition(CROSS_TAB_SEPARATOR)
        cell = position[(name, period, CROSS_TAB, category)]
        by_margin[("age_band", age)].append(cell)
        by_margin[("gender", gender)].append(cell)
    for (dimension, category), cells in by_margin.items():
        margin = position.get((name, period, dimension, category))
        if margin is not None:
            relations.add(cells, [margin])


def _lower_bound(band: str) -> int | None:
    found = re.match(r"(\d+)", band)
    return int(found.group(1)) if found else None


def _not_asked_relations(
    relations: Relations, position: dict[CellKey, int], name: str, period: str, bands: Sequence[str]
) -> None:
    """Disability is not asked under 5: ``not_asked`` lies between the bands wholly below 5 and the
    bands that start below 5 (equal when a band starts at 5)."""
    not_asked = position.get((name, period, "disability", indicator.NOT_ASKED))
    lows = [(band, _lower_bound(band)) for band in bands]
    numbered = sorted((low, band) for band, low in lows if low is not None)
    if not_asked is None or not numbered:
        return
    starting_below = [band for low, band in numbered if low < NO_DISABILITY_QUESTIONS_BELOW]
    uppers = {band: nxt for (_, band), (nxt, _) in itertools.pairwise(numbered)}
    wholly_below = [b for b in starting_below if uppers.get(b, NO_DISABILITY_QUESTIONS_BELOW + 1) <= 5]
    cell = [position[(name, period, "age_band", band)] for band in starting_below]
    below = [position[(name, period, "age_band", band)] for band in wholly_below]
    if cell == below:
        relations.add([not_asked], cell)
        return
    relations.add([not_asked], cell, sense=AT_MOST)
    relations.add(below, [not_asked], sense=AT_MOST)


def _period_relations(relations: Relations, position: dict[CellKey, int], parent: dict[str, str]) -> None:
    """Quarters -> their fiscal year, fiscal years -> LOP, for every indicator, dimension, category."""
    parts: dict[CellKey, list[int]] = defaultdict(list)
    for (name, period, dimension, category), i in position.items():
        if period in parent:
            parts[(name, parent[period], dimension, category)].append(i)
    for margin, cells in parts.items():
        if margin in position:
            relations.add(cells, [position[margin]])


def _variant_relations(
    relations: Relations, position: dict[CellKey, int], quarters: Sequence[str], lop: str | None
) -> None:
    """Up to the end of every quarter (and at LOP): each of ``identified`` and ``referred`` is at most
    ``identified_or_referred``, which is at most their sum (a person's first event is one of them)."""

    def totals(name: str, periods: Sequence[str]) -> list[int] | None:
        cells = [position.get((name, p, TOTAL_DIMENSION, TOTAL_CATEGORY)) for p in periods]
        return None if any(c is None for c in cells) else [c for c in cells if c is not None]

    spans = [quarters[: n + 1] for n in range(len(quarters))] + ([[lop]] if lop else [])
    for span in spans:
        either, identified, referred = (
            totals(n, span) for n in (IDENTIFIED_OR_REFERRED, IDENTIFIED, REFERRED)
        )
        if either is None:
            continue
        for one in (identified, referred):
            if one is not None:
                relations.add(one, either, sense=AT_MOST)
        if identified is not None and referred is not None:
            relations.add(either, identified + referred, sense=AT_MOST)


def _seen_relations(
    relations: Relations,
    position: dict[CellKey, int],
    categories: dict[tuple[str, str, str], list[str]],
    lop: str,
) -> None:
    """A listed location or country of origin was seen among counted persons: its LOP cells over
    the indicators sum to at least 1."""
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for (name, period, dimension), listed in categories.items():
        if period != lop or dimension not in SEEN_DIMENSIONS:
            continue
        for category in listed:
            if category not in ALWAYS_LISTED:
                seen[(dimension, category)].append(position[(name, period, dimension, category)])
    for cells in seen.values():
        relations.add([], cells, sense=AT_MOST, rhs=-1.0)
