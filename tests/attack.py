"""An intruder with a linear-program solver, written from contract section 6 alone.

It reads published ``counts.csv`` tables (as DataFrames of text), writes every relation the contract
gives the intruder, and solves, for each hidden cell, the smallest and largest value consistent
with everything published (scipy's ``linprog``). It shares no code with ``kobo_tip.privacy``:
the relations, the bounds and the solver calls are its own.

Across releases it is given more than any file tells: which cells kept their true value (they
are one unknown), so it can difference releases wherever the truth allows.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse.csgraph import connected_components

from kobo_tip.privacy import Release

SINGLE = {
    "age_band",
    "gender",
    "location",
    "country_of_origin",
    "stakeholder_type",
    "disability",
    "ethnicity",
    "gbv_type",
}
MULTI = {"person_category", "exploitation_type", "services"}
PERSONAL = ["age_band", "gender", "country_of_origin", "disability", "ethnicity"]


@dataclass(frozen=True)
class Held:
    """One published table the intruder holds, with the truth the test compares against."""

    published: pd.DataFrame  # counts.csv columns, value as published text
    truth: pd.DataFrame  # the same rows with true integer values
    k: int  # the k it was published at
    through: str  # last day counted (ISO): FY and LOP cover up to it
    scope: str = ""  # the project it counts, in a programme's releases ("" the programme's own)


LAYOUT = ["indicator", "period", "period_start", "period_end", "dimension", "category"]


def held(release: Release) -> Held:
    """The release as its intruder holds it: the cells left out stay in, published as ``OMITTED``
    (the intruder knows they exist, so the quarters still add up to their fiscal year)."""
    table = release.table
    return Held(
        table[LAYOUT].assign(value=table["published"].to_numpy()),
        table[[*LAYOUT, "value"]],
        release.k,
        release.through,
    )


@dataclass(frozen=True)
class Finding:
    cell: tuple[str, ...]
    truth: int
    low: float
    high: float

    @property
    def values(self) -> int:
        if math.isinf(self.high):
            return 10**9
        return math.floor(self.high + 1e-6) - math.ceil(self.low - 1e-6) + 1


def _bounds(text: str, k: int) -> tuple[float, float]:
    if text == "":  # a cell left out of the files: the intruder knows it exists, not its value
        return 0.0, math.inf
    if text == "x":
        return float(k), math.inf
    if text.startswith("<"):
        return 0.0, float(int(text[1:]) - 1)
    return float(text), float(text)


class _Unknowns:
    def __init__(self) -> None:
        self.ids: dict[tuple, int] = {}
        self.low: list[float] = []
        self.high: list[float] = []
        self.truth: list[int] = []
        self.rows: list[tuple[dict[int, float], str, float]] = []

    def of(self, key: tuple, truth: int) -> int:
        ident = (*key, truth)  # the oracle: same cell, same true value -> one unknown
        if ident not in self.ids:
            self.ids[ident] = len(self.low)
            self.low.append(0.0)
            self.high.append(math.inf)
            self.truth.append(truth)
        return self.ids[ident]

    def relation(self, plus: list[int], minus: list[int], sense: str, rhs: float = 0.0) -> None:
        row: dict[int, float] = defaultdict(float)
        for u in plus:
            row[u] += 1
        for u in minus:
            row[u] -= 1
        row = {u: c for u, c in row.items() if c}
        if row:
            self.rows.append((row, sense, rhs))


def _write_relations(unknowns: _Unknowns, table: pd.DataFrame, cell: dict[tuple, int]) -> None:
    """Spec section 6, from the published layout."""
    kinds = {
        period: "lop" if period == "LOP" else ("quarter" if " Q" in period else "fy")
        for period in table["period"].unique()
    }
    spans = {
        p: (s, e)
        for p, s, e in table[["period", "period_start", "period_end"]]
        .drop_duplicates()
        .itertuples(index=False)
    }
    fys = [p for p, kind in kinds.items() if kind == "fy"]
    quarters = sorted((p for p, kind in kinds.items() if kind == "quarter"), key=lambda p: spans[p][0])
    groups = table.groupby(["indicator", "period", "dimension"])["category"].apply(list).to_dict()
    indicators = sorted(table["indicator"].unique())
    for (name, period, dim), cats in groups.items():
        total = cell.get((name, period, "total", "all"))
        cells = [cell[(name, period, dim, c)] for c in cats]
        if dim in SINGLE:
            unknowns.relation(cells, [total], "=")
        if dim in MULTI:
            for c in cells:
                unknowns.relation([c], [total], "<=")
            unknowns.relation([total], cells, "<=")
        if dim == "age_band_x_gender":
            margins = defaultdict(list)
            for c, u in zip(cats, cells, strict=True):
                age, gender = c.split("|")
                margins[("age_band", age)].append(u)
                margins[("gender", gender)].append(u)
            for (mdim, mcat), us in margins.items():
                unknowns.relation(us, [cell[(name, period, mdim, mcat)]], "=")
        if dim == "disability":
            bands = groups.get((name, period, "age_band"), [])
            young = [b for b in bands if re.match(r"^\d+-(\d+)$", b) and int(b.split("-")[1]) < 5]
            if young and (name, period, "disability", "not_asked") in cell:
                unknowns.relation(
                    [cell[(name, period, "disability", "not_asked")]],
                    [cell[(name, period, "age_band", b)] for b in young],
                    "=",
                )
    for name in indicators:
        for period in kinds:
            nr = [
                cell[(name, period, d, "not_recorded")]
                for d in PERSONAL
                if (name, period, d, "not_recorded") in cell
            ]
            nr += (
                [cell[(name, period, "age_band_x_gender", "not_recorded|not_recorded")]]
                if (name, period, "age_band_x_gender", "not_recorded|not_recorded") in cell
                else []
            )
            for first, other in itertools.pairwise(nr):
                unknowns.relation([first], [other], "=")
    # Quarters -> fiscal year -> LOP, for every dimension and category.
    for (name, period, dim, cat), u in cell.items():
        if kinds[period] == "fy":
            start, end = spans[period]
            parts = [
                cell[(name, q, dim, cat)]
                for q in quarters
                if start <= spans[q][0] <= end and (name, q, dim, cat) in cell
            ]
            if parts:
                unknowns.relation(parts, [u], "=")
        if kinds[period] == "lop":
            parts = [cell[(name, fy, dim, cat)] for fy in fys if (name, fy, dim, cat) in cell]
            if parts:
                unknowns.relation(parts, [u], "=")
    # Variants: at LOP (and up to each quarter) identified, referred <= either <= their sum.
    for span in [quarters[: i + 1] for i in range(len(quarters))] + [["LOP"]]:
        either, ident, ref = (
            [cell[(n, p, "total", "all")] for p in span if (n, p, "total", "all") in cell]
            for n in ("identified_or_referred", "identified", "referred")
        )
        if either and ident and ref:
            unknowns.relation(ident, either, "<=")
            unknowns.relation(ref, either, "<=")
            unknowns.relation(either, ident + ref, "<=")


# A sum the intruder reads elsewhere (a group or cumulative actual of the IPTT): (index of the held
# table, the cells it adds up, what was published of it: a number, or a range as a cell's text,
# "x" for k or more and "<k" for 0 to k-1).
Sum = tuple[int, list[tuple[str, str, str, str]], int | str]


# A programme's release and its projects' of the same moment: (index of the programme's held
# table, indices of its projects' held tables).
Programme = tuple[int, list[int]]


def _programme_relations(unknowns: _Unknowns, programme: dict[tuple, int], projects: list[dict]) -> None:
    """A programme person counts at their first event anywhere, which is their first in that
    project with the same categories: a programme cell is at most the sum of its projects' same
    cell. Everyone a project counts by the end of a quarter (or at LOP) the programme counts by
    then: its total is at least each project's (where the truth bears it out: merges may break it)."""
    for key, u in programme.items():
        unknowns.relation([u], [p[key] for p in projects if key in p], "<=")
    periods = {key[1] for key in programme}
    quarters = sorted(p for p in periods if " Q" in p)  # "FY2026 Q1" sorts in time order
    for name in {key[0] for key in programme}:
        for span in [quarters[: i + 1] for i in range(len(quarters))] + [["LOP"]]:
            mine = [
                programme[(name, p, "total", "all")] for p in span if (name, p, "total", "all") in programme
            ]
            for project in projects:
                theirs = [
                    project[(name, p, "total", "all")] for p in span if (name, p, "total", "all") in project
                ]
                if sum(unknowns.truth[u] for u in theirs) <= sum(unknowns.truth[u] for u in mine):
                    unknowns.relation(theirs, mine, "<=")


def attack(
    held: list[Held],
    k: int,
    cells: set[tuple] | None = None,
    sums: list[Sum] | None = None,
    programmes: list[Programme] | None = None,
    *,
    integer: bool = False,
) -> list[Finding]:
    """Every cell of true value 1..k-1 (or of ``cells``) with a feasible range in the linear program
    of all ``held`` tables, ``sums`` and the relations of each of ``programmes``: exact where it is
    narrower than ceil(k/2) values (``exposed``), else at least that wide. ``integer``: the intruder
    solves an integer program instead (every count is a whole number), which can only narrow more."""
    unknowns = _Unknowns()
    watched: dict[int, tuple] = {}
    cells_of: list[dict[tuple, int]] = []
    for index, item in enumerate(held):
        merged = item.published.merge(
            item.truth[["indicator", "period", "dimension", "category", "value"]],
            on=["indicator", "period", "dimension", "category"],
            suffixes=("", "_true"),
        )
        assert len(merged) == len(item.published)
        cell: dict[tuple, int] = {}
        for row in merged.itertuples(index=False):
            covered = min(row.period_end, item.through)
            key = (row.indicator, row.period, row.dimension, row.category, covered)
            u = unknowns.of((item.scope, *key), int(row.value_true))
            low, high = _bounds(str(row.value), item.k)
            unknowns.low[u] = max(unknowns.low[u], low)
            unknowns.high[u] = min(unknowns.high[u], high)
            cell[(row.indicator, row.period, row.dimension, row.category)] = u
            if (cells is None and 0 < int(row.value_true) < k) or (cells is not None and key[:4] in cells):
                watched[u] = key
        _write_relations(unknowns, merged, cell)
        for at, added, value in sums or []:
            if at == index:
                _sum_relation(unknowns, [cell[c] for c in added], value, item.k)
        cells_of.append(cell)
    for programme, projects in programmes or []:
        _programme_relations(unknowns, cells_of[programme], [cells_of[i] for i in projects])
    return _solve(unknowns, watched, math.ceil(k / 2), integer)


def _sum_relation(unknowns: _Unknowns, parts: list[int], published: int | str, k: int) -> None:
    """What a published sum says of its parts: equal to a number, at least k (``x``), below
    k (``<k``)."""
    low, high = _bounds(str(published), k)
    if low == high:
        unknowns.relation(parts, [], "=", low)
        return
    unknowns.relation([], parts, "<=", -low)
    if not math.isinf(high):
        unknowns.relation(parts, [], "<=", high)


def _optimum(
    c: np.ndarray, a: sparse.csr_matrix, eq: np.ndarray, rhs: np.ndarray, bounds: list, integer: bool
) -> tuple[float, np.ndarray | None]:
    """The least ``c @ x`` under the relations (``eq`` rows equal, the others at most) and bounds:
    (value, solution), or (-inf, None) when unbounded below."""
    le = ~eq
    if not integer:
        result = linprog(
            c,
            A_ub=a[le] if le.any() else None,
            b_ub=rhs[le] if le.any() else None,
            A_eq=a[eq] if eq.any() else None,
            b_eq=rhs[eq] if eq.any() else None,
            bounds=bounds,
            method="highs",
        )
    else:
        lower = np.where(eq, rhs, -np.inf)
        upper = rhs
        result = milp(
            c,
            constraints=[LinearConstraint(a, lower, upper)] if a.shape[0] else [],
            integrality=np.ones(len(c)),
            bounds=Bounds([b[0] for b in bounds], [np.inf if b[1] is None else b[1] for b in bounds]),
        )
    if result.status == 3:
        return -math.inf, None
    assert result.status == 0, result.message
    return float(result.fun), np.asarray(result.x)


def _solve(unknowns: _Unknowns, watched: dict[int, tuple], need: int, integer: bool = False) -> list[Finding]:
    n = len(unknowns.low)
    low, high = np.array(unknowns.low), np.array(unknowns.high)
    truth = np.array(unknowns.truth, dtype=float)
    assert np.all(truth >= low - 1e-9) and np.all(truth <= high + 1e-9), (
        "published text contradicts the truth"
    )
    free = low < high
    data, ri, ci, senses, rhs = [], [], [], [], []
    for r, (row, sense, b) in enumerate(unknowns.rows):
        for u, c in row.items():
            ri.append(r)
            ci.append(u)
            data.append(c)
        senses.append(sense)
        rhs.append(b)
    a = sparse.csr_matrix((data, (ri, ci)), shape=(len(unknowns.rows), n))
    senses_a, rhs_a = np.array(senses), np.array(rhs)
    rhs_free = rhs_a - a @ np.where(free, 0.0, low)
    af = a[:, np.flatnonzero(free)].tocsr()
    keep = np.diff(af.indptr) > 0
    af, senses_a, rhs_free = af[keep], senses_a[keep], rhs_free[keep]
    m = af.shape[0]
    pattern = sparse.csr_matrix((np.ones(af.nnz), af.indices, af.indptr), shape=af.shape)
    _, labels = connected_components(sparse.bmat([[None, pattern], [pattern.T, None]]), directed=False)
    row_label, col_label = labels[:m], labels[m:]
    free_ids = np.flatnonzero(free)
    where = {int(u): i for i, u in enumerate(free_ids)}
    findings = []
    by_label = defaultdict(list)
    for u in watched:
        if u in where:
            by_label[col_label[where[u]]].append(u)
    for label, us in by_label.items():
        cols = np.flatnonzero(col_label == label)
        rows = np.flatnonzero(row_label == label)
        sub = af[rows][:, cols]
        eq = senses_a[rows] == "="
        bounds = list(
            zip(
                low[free_ids[cols]], [None if math.isinf(h) else h for h in high[free_ids[cols]]], strict=True
            )
        )
        local = {int(free_ids[c]): i for i, c in enumerate(cols)}
        # Each solution is a point the intruder cannot rule out: where the points seen so far already
        # span ``need`` values of a cell, its exact range cannot be narrower, so it needs no solve.
        seen_low = {u: truth[u] for u in us}
        seen_high = dict(seen_low)
        for u in us:
            if math.floor(seen_high[u] + 1e-6) - math.ceil(seen_low[u] - 1e-6) + 1 >= need:
                findings.append(Finding(watched[u], int(truth[u]), seen_low[u], seen_high[u]))
                continue
            ends = []
            for sign in (1.0, -1.0):
                c = np.zeros(len(cols))
                c[local[u]] = sign
                best, x = _optimum(c, sub, eq, rhs_free[rows], bounds, integer)
                if x is None:
                    ends.append(math.inf)
                    continue
                ends.append(sign * best)
                for other in us:
                    value = x[local[other]]
                    seen_low[other] = min(seen_low[other], value)
                    seen_high[other] = max(seen_high[other], value)
            findings.append(Finding(watched[u], int(truth[u]), ends[0], ends[1]))
    for u, cell in watched.items():  # a watched cell the tables give as a number
        if u not in where:
            findings.append(Finding(cell, int(truth[u]), low[u], high[u]))
    return findings


def exposed(findings: list[Finding], k: int) -> list[Finding]:
    """The findings that break the guarantee: fewer than ceil(k/2) feasible values."""
    return [f for f in findings if f.values < math.ceil(k / 2)]
