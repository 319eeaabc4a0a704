"""The intruder's linear system: every cell of every release they hold, bounded by what was published.

A cell is a variable identified by what it counts (indicator, period, dimension, category, the day
its period is counted through) and its true value: a cell that kept its value from one release to
the next is one variable, so the intruder is assumed to know which cells did not change, which is
more than any file tells. Published text bounds a variable: a number fixes it, ``<k`` is 0..k-1,
``x`` is at least k. The relations of every release (``relations.table_relations``) join them.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from kobo_tip.privacy.relations import EQUAL, Relations, table_relations

HIDDEN = "x"
OMITTED = ""  # a cell left out of the files: its dimension is published by fiscal year and LOP only
INFINITY = math.inf
LAYOUT = ["indicator", "period", "period_start", "period_end", "period_kind", "dimension", "category"]


@dataclass(frozen=True)
class View:
    """One release as the intruder holds it: its table (``LAYOUT`` columns, the true ``value``, the
    ``published`` text), the k it was published at and the day it counted through."""

    table: pd.DataFrame
    k: int
    through: str


def statement_bounds(published: str, k: int) -> tuple[float, float]:
    """What a published text says of a cell: a number, ``<k`` (0..k-1), ``x`` (at least k), or
    nothing for a cell left out."""
    if published == OMITTED:
        return 0.0, INFINITY
    if published == HIDDEN:
        return float(k), INFINITY
    if published.startswith("<"):
        return 0.0, float(int(published[1:]) - 1)
    value = float(int(published))
    return value, value


def hidden_bounds(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """What hiding cells of true ``values`` at ``k`` says of each (lower, upper): ``<k`` below k,
    ``x`` from k."""
    below = values < k
    return np.where(below, 0.0, float(k)), np.where(below, float(k - 1), INFINITY)


def cell_identities(table: pd.DataFrame, through: str) -> list[tuple[object, ...]]:
    """One identity per row: what it counts, through which day, and its true value."""
    covered = np.minimum(table["period_end"].astype(str).to_numpy(), through)
    columns = (table[c].tolist() for c in ("indicator", "period", "dimension", "category"))
    return list(zip(*columns, covered.tolist(), table["value"].astype(int).tolist(), strict=True))


# The relations of the last few layouts: one protection builds the same table's relations for each
# audience's system and again for each proof (11 times for the demo's second release, a third of the
# suppression's time before this cache).
_RELATIONS: dict[bytes, Relations] = {}
_RELATIONS_KEPT = 8
_RELATIONS_LOCK = threading.Lock()  # renders of different stores may protect at once (``serve``)


def _relations_of(table: pd.DataFrame) -> Relations:
    """``table_relations(table)``, from the cache when a table of the same layout was seen (the
    relations know the layout only); callers must not change what it returns."""
    hashed = pd.util.hash_pandas_object(table[LAYOUT].astype(str), index=False).to_numpy()
    key = hashlib.blake2b(hashed.tobytes(), digest_size=16).digest()
    with _RELATIONS_LOCK:
        found = _RELATIONS.get(key)
    if found is None:
        found = table_relations(table)
        with _RELATIONS_LOCK:
            while len(_RELATIONS) >= _RELATIONS_KEPT:
                _RELATIONS.pop(next(iter(_RELATIONS)))
            _RELATIONS[key] = found
    return found


class IntruderSystem:
    """Variables, their bounds and truth, and the relations (a sparse matrix) among them."""

    def __init__(self) -> None:
        self._index: dict[tuple[object, ...], int] = {}
        self.truth: list[int] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self._rows: set[tuple[tuple[tuple[int, float], ...], str, float]] = set()

    def variables_of(self, table: pd.DataFrame, through: str) -> np.ndarray:
        """The variable of each row of ``table`` (new variables are unbounded above)."""
        out = np.empty(len(table), dtype=np.int64)
        for i, identity in enumerate(cell_identities(table, through)):
            var = self._index.get(identity)
            if var is None:
                var = self._index[identity] = len(self.truth)
                self.truth.append(int(identity[-1]))  # type: ignore[call-overload]
                self.lower.append(0.0)
                self.upper.append(INFINITY)
            out[i] = var
        return out

    def identities(self) -> list[tuple[object, ...]]:
        """Each variable's identity (indicator, period, dimension, category, through, value), in order."""
        return list(self._index)

    def add_relations(self, table: pd.DataFrame, variables: np.ndarray) -> None:
        """The relations among ``table``'s rows, over their variables (a relation met twice is kept once)."""
        found = _relations_of(table)
        for cells, coefs, sense, rhs, assumed in zip(
            found.cells, found.coefs, found.senses, found.rhs, found.assumed, strict=True
        ):
            terms: dict[int, float] = {}
            for cell, coef in zip(cells, coefs, strict=True):
                var = int(variables[cell])
                terms[var] = terms.get(var, 0.0) + coef
            row = tuple(sorted((v, c) for v, c in terms.items() if c))
            if assumed and sum(c * self.truth[v] for v, c in row) > rhs:
                continue  # not true of these counts, so no intruder can rely on it
            if row:
                self._rows.add((row, sense, rhs))

    def bound(self, variables: Sequence[int] | np.ndarray, bounds: Sequence[tuple[float, float]]) -> None:
        """Intersect each variable's bounds with what one more statement says of it."""
        for var, (low, high) in zip(variables, bounds, strict=True):
            self.lower[var] = max(self.lower[var], low)
            self.upper[var] = min(self.upper[var], high)

    def add_view(self, view: View) -> np.ndarray:
        """A release the intruder holds: its relations and its published statements."""
        variables = self.variables_of(view.table, view.through)
        self.add_relations(view.table, variables)
        self.bound(
            variables, [statement_bounds(text, view.k) for text in view.table["published"].astype(str)]
        )
        return variables

    def add_sum(self, variables: Sequence[int], published: str, *, k: int) -> int:
        """One more published figure that is the sum of ``variables`` (a group or cumulative actual
        of the IPTT, contract section 6): a variable of its own, equal to that sum, fixed when
        ``published`` is a number, bounded as a cell is when it is ``x`` or ``<k``; any other text
        (not published) says nothing of it."""
        parts = tuple(sorted(int(v) for v in variables))
        identity = ("sum", parts)
        var = self._index.get(identity)
        if var is None:
            var = self._index[identity] = len(self.truth)
            self.truth.append(sum(self.truth[v] for v in parts))
            self.lower.append(0.0)
            self.upper.append(INFINITY)
            terms: dict[int, float] = {var: 1.0}
            for part in parts:
                terms[part] = terms.get(part, 0.0) - 1.0
            self._rows.add((tuple(sorted(terms.items())), EQUAL, 0.0))
        if published.isdigit() or published == HIDDEN or published.startswith("<"):
            self.bound([var], [statement_bounds(published, k)])
        return var

    def matrix(self) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
        """The relations as (A, is_equality, rhs), over ``len(self.truth)`` variables."""
        rows = sorted(self._rows)
        data: list[float] = []
        indices: list[int] = []
        indptr = [0]
        for terms, _, _ in rows:
            indices.extend(v for v, _ in terms)
            data.extend(c for _, c in terms)
            indptr.append(len(indices))
        shape = (len(rows), len(self.truth))
        a = sparse.csr_matrix((np.asarray(data, float), np.asarray(indices, np.int64), indptr), shape=shape)
        equal = np.asarray([sense == EQUAL for _, sense, _ in rows], dtype=bool)
        rhs = np.asarray([r for _, _, r in rows], dtype=np.float64)
        return a, equal, rhs
