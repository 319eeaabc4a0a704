"""The disclosure audit: solve the intruder's linear program for each protected cell (HiGHS).

For a protected cell the intruder's best is the smallest and largest value it can take in the
linear program of everything published; rounded inward, they leave ``floor(max) - ceil(min) + 1``
possible integers. A cell is safe when that number reaches its need (ceil(k/2), contract section 6).

The work is split by connected component of the hidden cells (shown cells are constants), and
most cells are proven safe without a solve of their own: every solution HiGHS returns is a point
the intruder cannot rule out, so each one widens the range known to be feasible for every cell of
its component, the true values being the first such point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from kobo_tip.errors import KoboTipError

_PRIMAL_SIMPLEX = 4  # HiGHS's simplex_strategy for the primal simplex
_TOLERANCE = 1e-6  # HiGHS's feasibility tolerance is 1e-7: values this close to an integer are it


class AuditError(KoboTipError):
    """The audit could not be carried out (the published tables contradict the truth, or HiGHS failed)."""


@dataclass(frozen=True)
class Need:
    """What a protected cell's feasible range must do: hold ``values`` integers, and reach down to
    ``low`` and up to ``high`` (a cell the next release extends, whose range later quarters need)."""

    values: int
    low: float = math.inf
    high: float = -math.inf

    def met(self, low: float, high: float) -> bool:
        return (
            feasible_values(low, high) >= self.values
            and low <= self.low + _TOLERANCE
            and high >= self.high - _TOLERANCE
        )

    def __or__(self, other: Need) -> Need:
        """Both needs at once."""
        return Need(max(self.values, other.values), min(self.low, other.low), max(self.high, other.high))


@dataclass(frozen=True)
class Exposure:
    """A protected cell whose feasible range does not meet its need."""

    variable: int
    low: float  # the intruder's smallest feasible value
    high: float  # and largest
    need: Need

    @property
    def values(self) -> int:
        return feasible_values(self.low, self.high)


def new_highs() -> Any:
    """A silent HiGHS instance: the plain binding, without the Python wrapper's callbacks (which
    print HiGHS's banner on standard output and cost time on every call)."""
    highs = highspy._Highs()  # type: ignore[attr-defined]
    highs.setOptionValue("output_flag", False)
    return highs


def feasible_values(low: float, high: float) -> int:
    """The integers in [low, high] once both bounds are rounded inward."""
    if math.isinf(high):
        return 1 << 30
    return max(0, math.floor(high + _TOLERANCE) - math.ceil(low - _TOLERANCE) + 1)


class Auditor:
    """The relations ``A x (= or <=) rhs`` of an intruder's system, with the true values."""

    def __init__(self, a: sparse.csr_matrix, equal: np.ndarray, rhs: np.ndarray, truth: np.ndarray) -> None:
        self.a = a.tocsr()
        self.equal = equal
        self.rhs = rhs
        self.truth = truth.astype(float)
        self.solves = 0

    def check_truth(self, lower: np.ndarray, upper: np.ndarray) -> None:
        """The true values satisfy every bound and relation, or the tables were built wrong."""
        if np.any(self.truth < lower - _TOLERANCE) or np.any(self.truth > upper + _TOLERANCE):
            raise AuditError("A published cell contradicts its true value; no file was written.")
        lhs = self.a @ self.truth
        broken = np.where(self.equal, np.abs(lhs - self.rhs) > _TOLERANCE, lhs > self.rhs + _TOLERANCE)
        if broken.any():
            raise AuditError(
                f"{int(broken.sum())} relation(s) do not hold on the true counts; no file was written."
            )

    def exposures(
        self, lower: np.ndarray, upper: np.ndarray, protected: Mapping[int, Need]
    ) -> list[Exposure]:
        """The protected variables whose feasible range does not meet their need."""
        hidden = lower < upper
        exposed = [
            Exposure(v, lower[v], upper[v], need)
            for v, need in protected.items()
            if not hidden[v] and not need.met(lower[v], upper[v])
        ]
        wanted = {v: need for v, need in protected.items() if hidden[v]}
        if not wanted:
            return exposed
        fixed_values = np.where(hidden, 0.0, lower)
        rhs = self.rhs - self.a @ fixed_values
        cols = np.flatnonzero(hidden)
        a_hidden = self.a[:, cols].tocsr()
        rows = np.flatnonzero(np.diff(a_hidden.indptr) > 0)
        a_hidden = a_hidden[rows]
        column_of = np.full(len(hidden), -1, dtype=np.int64)
        column_of[cols] = np.arange(len(cols))
        component = components(a_hidden)
        by_component: dict[int, dict[int, Need]] = {}
        for var, need in wanted.items():
            by_component.setdefault(int(component[column_of[var]]), {})[var] = need
        row_component = component[a_hidden.indices[a_hidden.indptr[:-1]]] if len(rows) else np.empty(0, int)
        for number, needs in by_component.items():
            members = np.flatnonzero(component == number)
            mine = np.flatnonzero(row_component == number)
            exposed += self._component(
                cols[members],
                a_hidden[mine][:, members],
                self.equal[rows[mine]],
                rhs[rows[mine]],
                lower[cols[members]],
                upper=upper[cols[members]],
                needs=needs,
            )
        return exposed

    def _component(
        self,
        variables: np.ndarray,
        a: sparse.csr_matrix,
        equal: np.ndarray,
        rhs: np.ndarray,
        lower: np.ndarray,
        *,
        upper: np.ndarray,
        needs: Mapping[int, Need],
    ) -> list[Exposure]:
        """Audit the protected variables of one component; ``variables`` are its columns."""
        position = {int(v): i for i, v in enumerate(variables)}
        todo = np.asarray([position[v] for v in needs], dtype=np.int64)
        need = list(needs.values())
        values = np.asarray([n.values for n in need], dtype=np.int64)
        reach_low = np.asarray([n.low for n in need]) + _TOLERANCE
        reach_high = np.asarray([n.high for n in need]) - _TOLERANCE
        low = self.truth[variables[todo]].copy()
        high = low.copy()

        def open_cells() -> np.ndarray:
            span = np.floor(high + _TOLERANCE) - np.ceil(low - _TOLERANCE) + 1
            return np.flatnonzero((span < values) | (low > reach_low) | (high < reach_high))

        remaining = open_cells()
        if not len(remaining):
            return []
        model = _Model(a, equal, rhs, lower, upper)
        while True:  # push every open cell up at once, then down, while that closes some
            before = len(remaining)
            for sense in (-1.0, 1.0):
                solution = model.solve(todo[remaining], sense)
                self.solves += 1
                if solution is not None:
                    np.minimum(low, solution[todo], out=low)
                    np.maximum(high, solution[todo], out=high)
                remaining = open_cells()
                if not len(remaining):
                    return []
            if len(remaining) == before:
                break
        exposed = []
        for slot in remaining:
            for sense in (-1.0, 1.0):
                if need[slot].met(low[slot], high[slot]):
                    break
                solution = model.solve(todo[[slot]], sense)
                self.solves += 1
                if solution is None:  # unbounded: no largest value
                    high[slot] = math.inf
                    continue
                np.minimum(low, solution[todo], out=low)
                np.maximum(high, solution[todo], out=high)
            if not need[slot].met(low[slot], high[slot]):
                exposed.append(Exposure(int(variables[todo[slot]]), low[slot], high[slot], need[slot]))
        return exposed


def components(a: sparse.csr_matrix) -> np.ndarray:
    """The connected component of each column, columns joined by the rows they share."""
    n_rows, n_cols = a.shape
    if n_cols == 0:
        return np.empty(0, dtype=np.int64)
    pattern = sparse.csr_matrix((np.ones(a.nnz), a.indices, a.indptr), shape=a.shape)
    graph = sparse.bmat([[None, pattern], [pattern.T, None]], format="csr")
    _, labels = csgraph.connected_components(graph, directed=False)
    return labels[n_rows:]


class _Model:
    """One component's linear program in HiGHS; each solve swaps the objective only (warm start)."""

    def __init__(
        self, a: sparse.csr_matrix, equal: np.ndarray, rhs: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> None:
        self.highs = new_highs()
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
        lp.col_cost_ = np.zeros(a.shape[1])
        lp.col_lower_ = lower.astype(float)
        lp.col_upper_ = np.where(np.isinf(upper), inf, upper).astype(float)
        lp.row_lower_ = np.where(equal, rhs, -inf).astype(float)
        lp.row_upper_ = rhs.astype(float)
        csc = a.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = csc.indices.astype(np.int32)
        lp.a_matrix_.value_ = csc.data.astype(float)
        self.highs.passModel(lp)
        # Solves differ in their objective only, so the last basis stays primal feasible: primal
        # simplex goes on from it in a few iterations where dual simplex starts over (measured on a
        # 2,880-column component: 15 iterations a solve against 1,121, 4 ms against 47 ms).
        self.highs.setOptionValue("simplex_strategy", _PRIMAL_SIMPLEX)
        self.n = a.shape[1]
        self._costed = np.empty(0, dtype=np.int64)

    def solve(self, columns: np.ndarray, sense: float) -> np.ndarray | None:
        """Minimise ``sense * sum(x[columns])``: the solution, or None if unbounded."""
        if len(self._costed):
            self.highs.changeColsCost(
                len(self._costed), self._costed.astype(np.int32), np.zeros(len(self._costed))
            )
        self.highs.changeColsCost(len(columns), columns.astype(np.int32), np.full(len(columns), sense))
        self._costed = columns
        self.highs.run()
        status = self.highs.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return np.asarray(self.highs.getSolution().col_value)
        if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            return None
        raise AuditError(
            f"The disclosure audit's linear program ended as {self.highs.modelStatusToString(status)}; "
            "no file was written."
        )
