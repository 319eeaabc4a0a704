"""Outside releases (contract section 6): what each audience is shown, revisions held back or released.

A release is what an outside audience was shown: every cell's true value and published text,
with the k and the day it counted through. The release history of every audience with k at least
an audience's own is what its intruder holds, so each new release is suppressed and audited
against it. A quarter whose true values changed since the audience's last release is a
revision: it is released when every period total it moves (the quarter's, and its fiscal
year's and LOP's where they cover the same days) moves by 0 or at least k, and then each cell
shown in both releases that moved by 1..k-1 is hidden and protected like a small cell; else the
quarter keeps its last released values (held back, listed in the internal report) until it can
be released under the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kobo_tip import indicator
from kobo_tip.privacy.audit import Auditor, Need
from kobo_tip.privacy.relations import (
    ALWAYS_LISTED,
    FISCAL_YEAR,
    LOP,
    QUARTER,
    SEEN_DIMENSIONS,
    TOTAL_DIMENSION,
    parent_periods,
    scope_of,
)
from kobo_tip.privacy.suppression import DisclosureError, need_of, suppress
from kobo_tip.privacy.system import HIDDEN, OMITTED, IntruderSystem, View

# A figure published beside a release that adds up some of its cells: the cells (indicator,
# period, dimension, category) and its published text.
PublishedSum = tuple[Sequence[tuple[str, str, str, str]], str]

CELL = ["indicator", "period", "dimension", "category"]
QUARTERS_LEFT_OUT, ALL_LEFT_OUT = "quarters", "all"  # how much of a breakdown a release leaves out
COLUMNS = [*indicator.COUNTS_COLUMNS, "additive", "period_kind"]


@dataclass(frozen=True)
class Release:
    """What one outside audience was (or is to be) shown."""

    audience: str
    k: int
    through: str  # ISO day: the last day counted
    table: pd.DataFrame  # COLUMNS with ``value`` the true count, plus ``published`` (text)
    released_at: str = ""  # when it was saved (empty: not yet)

    def view(self) -> View:
        return View(self.table, self.k, self.through)

    @property
    def published(self) -> pd.DataFrame:
        """The table as the audience reads it: ``value`` is the published text; cells left out
        (their dimension published by fiscal year and LOP only) are not in it."""
        shown = self.table[self.table["published"].astype(str) != OMITTED]
        return shown[COLUMNS].assign(value=shown["published"].to_numpy()).reset_index(drop=True)

    def omitted(self) -> dict[tuple[str, str], str]:
        """(indicator, dimension) -> ``QUARTERS_LEFT_OUT`` for the breakdowns published by fiscal year
        and LOP only, ``ALL_LEFT_OUT`` for those not published at all."""
        rows = self.table[self.table["published"].astype(str) == OMITTED]
        out: dict[tuple[str, str], str] = {}
        for name, dimension, kind in zip(
            rows["indicator"], rows["dimension"], rows["period_kind"], strict=True
        ):
            if kind != QUARTER or out.get((name, dimension)) != ALL_LEFT_OUT:
                out[(name, dimension)] = QUARTERS_LEFT_OUT if kind == QUARTER else ALL_LEFT_OUT
        return out

    def same_cells(self, other: Release | None) -> bool:
        """True when ``other`` published exactly these cells."""
        if other is None or self.through != other.through or len(self.table) != len(other.table):
            return False
        mine = self.table[[*CELL, "published"]].reset_index(drop=True)
        theirs = other.table[[*CELL, "published"]].reset_index(drop=True)
        return bool(mine.equals(theirs))


@dataclass(frozen=True)
class HeldRevision:
    """A quarter whose revision outside audiences are not shown yet."""

    period: str
    changed: int  # cells whose true value changed
    reason: str


@dataclass
class Outcome:
    """The protected release of each audience, and the revisions held back."""

    releases: dict[str, Release] = field(default_factory=dict)
    held: list[HeldRevision] = field(default_factory=list)
    solves: int = 0


def protect(
    table: pd.DataFrame,
    ks: Mapping[str, int],
    history: Mapping[str, Sequence[Release]],
    through: str,
) -> Outcome:
    """The release of every audience in ``ks`` (audience -> k) for the counts ``table`` (COLUMNS,
    true values, the periods outside audiences see), given the earlier releases of each audience
    (oldest first). Raises ``DisclosureError`` when the guarantee cannot be proven.

    Every audience is shown the same counts: a revision held back for one is held back for all
    (else an audience with a smaller k, holding the others' releases, would see it), judged against
    the newest outside release by the largest k. Audiences are suppressed in order of k, each
    hiding at least what the smaller ones hide."""
    order = sorted(ks, key=lambda audience: ks[audience])
    quarters = set(table.loc[table["period_kind"] == QUARTER, "period"])
    lasts = {a: last for a in order if (last := latest(history.get(a, ()))) is not None}
    baseline = max(lasts.values(), key=lambda release: release.released_at, default=None)
    revisions = _Revisions(table, baseline, max(ks.values(), default=0))
    hold: set[str] = set()
    # A dimension published by fiscal year and LOP only stays so, here and in larger-k releases.
    omit: dict[str, dict[tuple[str, str], str]] = {}
    for number, audience in enumerate(order):
        omit[audience] = {}
        for smaller in order[: number + 1]:
            if smaller in lasts:
                _leave_out(omit[audience], lasts[smaller].omitted())
    # What the last attempt hid, per audience, for the next attempt on the same table to start from.
    carried: dict[str, np.ndarray] = {}
    while True:
        current, held = revisions.build(hold)
        try:
            outcome = _suppress_all(current, ks, order, history, through, omit=omit, carried=carried)
            for audience in order:
                _prove(audience, ks, outcome.releases, history)
        except DisclosureError as exc:
            name, period, dimension, _ = exc.cell or ("", "", "", "")
            failed = exc.audience
            left_out = omit[failed].get((name, dimension)) if failed else None
            if period in revisions.changed and period not in hold:
                carried.clear()  # another table
                hold.add(period)
            elif (
                exc.cell and failed is not None and dimension != TOTAL_DIMENSION and left_out != ALL_LEFT_OUT
            ):
                # Publish the breakdown by fiscal year and LOP only, or if that fails too, not at all.
                level = QUARTERS_LEFT_OUT if period in quarters and left_out is None else ALL_LEFT_OUT
                for later in order[order.index(failed) :]:
                    _leave_out(omit[later], {(name, dimension): level})
                if exc.hidden is not None:
                    # The table is the same, so the next attempt starts from what this one hid outside
                    # the indicator left out (hiding more only widens what the intruder must consider,
                    # and the audit proves the release whatever it starts from), and the audiences
                    # before it from what they hid, instead of finding it all again (a programme of two
                    # projects, 17,325 cells, two restarts: protection solves 4,574 -> 3,446, protect
                    # 126 -> 100 s CPU, 1 donor and 3 public cells more hidden of 6,223 and 7,485).
                    bare = [scope_of(str(n))[1] for n in current["indicator"]]
                    carried[failed] = exc.hidden & (np.asarray(bare, dtype=object) != scope_of(name)[1])
            elif set(revisions.changed) - hold:
                carried.clear()
                hold |= set(revisions.changed)
            else:
                raise
            continue
        outcome.held = held
        return outcome


def latest(releases: Sequence[Release]) -> Release | None:
    """What an audience was last shown of each indicator: the newest release, with the indicators
    it lacks as the newest release holding them showed them (a programme's projects released on
    their own before the programme released them together). Older rows count through their own
    release's day (their period ends cut to it)."""
    if not releases:
        return None
    newest = releases[-1]
    frames, seen = [newest.table], set(newest.table["indicator"])
    for release in reversed(releases[:-1]):
        rows = release.table[~release.table["indicator"].isin(seen)]
        if len(rows):
            ends = np.minimum(rows["period_end"].astype(str).to_numpy(), release.through)
            frames.append(rows.assign(period_end=ends))
            seen |= set(rows["indicator"])
    if len(frames) == 1:
        return newest
    table = pd.concat(frames, ignore_index=True)
    return Release(newest.audience, newest.k, newest.through, table, newest.released_at)


def _suppress_all(
    current: pd.DataFrame,
    ks: Mapping[str, int],
    order: Sequence[str],
    history: Mapping[str, Sequence[Release]],
    through: str,
    *,
    omit: Mapping[str, Mapping[tuple[str, str], str]],
    carried: dict[str, np.ndarray],
) -> Outcome:
    """Suppress ``current`` for every audience, in order of k. ``carried``: rows to hide from the
    start, per audience (what an earlier attempt on the same table hid); each audience suppressed
    leaves its hidden rows there."""
    outcome = Outcome()
    growing = (current["period_kind"] != QUARTER).to_numpy() & (
        current["period_end"].astype(str) > through
    ).to_numpy()
    for number, audience in enumerate(order):
        k = ks[audience]
        own = list(history.get(audience, ()))
        last = latest(own)
        larger = [a for a in order[number + 1 :] if ks[a] > k]
        views = [release.view() for a in (audience, *larger) for release in history.get(a, ())]
        smaller = [outcome.releases[a] for a in order[:number]] + [
            r for a in order[:number] for r in history.get(a, ())
        ]
        try:
            result = suppress(
                current,
                k,
                through=through,
                held=views,
                own=views[: len(own)],
                larger=[ks[a] for a in larger],
                # What a smaller k hides now or hid before with the same values (the donor never sees
                # less); what this audience hid before costs what it costs the first time (contract
                # section 6).
                forced=_hidden_in(current, through, smaller) | carried.get(audience, False),
                guarded=_small_moves(current, last, k) if last else None,
                growing=growing,
                omitted=_left_out_rows(current, omit[audience]),
            )
        except DisclosureError as exc:
            exc.audience = audience
            raise
        carried[audience] = result.hidden
        outcome.solves += result.solves
        outcome.releases[audience] = Release(audience, k, through, current.assign(published=result.published))
    return outcome


def _prove(
    audience: str,
    ks: Mapping[str, int],
    releases: Mapping[str, Release],
    history: Mapping[str, Sequence[Release]],
    sums: Sequence[PublishedSum] = (),
) -> None:
    """Audit ``audience`` once more over everything its intruder will hold: the releases of every
    audience with k at least its own, earlier and new, and ``sums``: figures published beside the
    new release of ``audience`` that add up its cells."""
    k = ks[audience]
    system = IntruderSystem()
    protected: dict[int, Need] = {}
    held = [(a, r) for a in ks if ks[a] >= k for r in (*history.get(a, ()), releases[a])]
    for owner, release in held:
        variables = system.add_view(release.view())
        if owner == audience:
            # Left-out cells too: successive fiscal years, both shown, give a left-out quarter.
            values = release.table["value"].astype(int).to_numpy()
            for var in variables[(values > 0) & (values < release.k)]:
                protected[int(var)] = Need(need_of(release.k))
        if release is releases[audience] and sums:
            table = release.table
            keys = zip(
                *(table[c].tolist() for c in ("indicator", "period", "dimension", "category")), strict=True
            )
            position = {key: int(var) for key, var in zip(keys, variables, strict=True)}
            for cells, published in sums:
                missing = [cell for cell in cells if cell not in position]
                if missing:
                    raise DisclosureError(
                        f"A figure published for {audience} adds up a cell the release does not hold "
                        f"({' '.join(missing[0])}); nothing was published for {audience}."
                    )
                system.add_sum([position[cell] for cell in cells], published, k=release.k)
    a, equal, rhs = system.matrix()
    auditor = Auditor(a, equal, rhs, np.asarray(system.truth))
    lower, upper = np.asarray(system.lower), np.asarray(system.upper)
    auditor.check_truth(lower, upper)
    exposed = auditor.exposures(lower, upper, protected)
    if exposed:
        raise DisclosureError(
            f"The {audience} release would let {len(exposed)} small cell(s) be narrowed below "
            f"{need_of(k)} possible values; nothing was published for {audience}."
        )


def prove_with_sums(
    audience: str,
    ks: Mapping[str, int],
    outcome: Outcome,
    history: Mapping[str, Sequence[Release]],
    sums: Sequence[PublishedSum],
) -> None:
    """Raise ``DisclosureError`` unless ``outcome``'s release of ``audience`` stays safe with
    ``sums`` published beside it (each: the cells it adds up, its published text; contract section
    6, "every other published figure")."""
    _prove(audience, ks, outcome.releases, history, sums)


def _hidden_in(
    table: pd.DataFrame, through: str, releases: Sequence[Release], *, by_value: bool = True
) -> np.ndarray:
    """Rows of ``table`` hidden in any of ``releases``: the same cell (and, ``by_value``, the same
    true value, so the same unknown for the intruder)."""
    out = np.zeros(len(table), dtype=bool)
    if not releases:
        return out
    keys = _identities(table, through, by_value)
    hidden: set[tuple[object, ...]] = set()
    for release in releases:
        rows = release.table["published"].astype(str).map(lambda t: t == HIDDEN or t.startswith("<"))
        hidden.update(
            k for k, h in zip(_identities(release.table, release.through, by_value), rows, strict=True) if h
        )
    return np.fromiter((key in hidden for key in keys), dtype=bool, count=len(keys))


def _leave_out(into: dict[tuple[str, str], str], more: Mapping[tuple[str, str], str]) -> None:
    """Merge what ``more`` leaves out into ``into``: all of a breakdown outweighs its quarters."""
    for pair, level in more.items():
        if into.get(pair) != ALL_LEFT_OUT:
            into[pair] = level


def _left_out_rows(table: pd.DataFrame, omit: Mapping[tuple[str, str], str]) -> np.ndarray:
    """The rows ``omit`` leaves out: the quarters, or every period, of its (indicator, dimension)s."""
    out = np.zeros(len(table), dtype=bool)
    if not omit:
        return out
    pairs = list(zip(table["indicator"], table["dimension"], strict=True))
    quarter = (table["period_kind"] == QUARTER).to_numpy()
    levels = np.asarray([omit.get(pair, "") for pair in pairs], dtype=object)
    return (levels == ALL_LEFT_OUT) | ((levels == QUARTERS_LEFT_OUT) & quarter)


def _identities(table: pd.DataFrame, through: str, by_value: bool) -> list[tuple[object, ...]]:
    covered = np.minimum(table["period_end"].astype(str).to_numpy(), through).tolist()
    columns = [table[c].tolist() for c in CELL] + [covered]
    if by_value:
        columns.append(table["value"].astype(int).tolist())
    return list(zip(*columns, strict=True))


class _Revisions:
    """The quarters whose true values changed since ``last`` (the newest outside release), and the
    table to release with some of them held back at their last released values."""

    def __init__(self, table: pd.DataFrame, last: Release | None, k: int) -> None:
        self.table, self.last, self.k = table.reset_index(drop=True), last, k
        self.changed: dict[str, int] = {}  # revised quarter -> cells whose true value changed
        self.moved_total: set[str] = set()  # revised quarters whose own total moved by 1..k-1
        if last is None:
            return
        before = last.table
        old_values = before.set_index(CELL)["value"]
        # Indicators the audience was never shown (a project that joins a programme) revise nothing.
        shown_before = self.table["indicator"].isin(set(before["indicator"])).to_numpy()
        new_values = self.table[shown_before].set_index(CELL)["value"]
        now_quarters = set(self.table.loc[self.table["period_kind"] == QUARTER, "period"])
        for quarter in before.loc[before["period_kind"] == QUARTER, "period"].unique():
            if quarter not in now_quarters:
                continue
            old = old_values[before["period"].to_numpy() == quarter]
            new = new_values[self.table.loc[shown_before, "period"].to_numpy() == quarter]
            both = pd.concat([old.rename("old"), new.rename("new")], axis=1).fillna(0)
            changed = int((both["old"] != both["new"]).sum())
            if not changed:
                continue
            self.changed[quarter] = changed
            totals = both.xs(TOTAL_DIMENSION, level="dimension")
            moved = (totals["new"] - totals["old"]).abs()
            if ((moved > 0) & (moved < k)).any():
                self.moved_total.add(quarter)

    def build(self, hold: set[str]) -> tuple[pd.DataFrame, list[HeldRevision]]:
        """The table with the quarters of ``hold`` (and those the rule holds) at their last released
        values, and the revisions held back."""
        if self.last is None or not self.changed:
            return self.table, []
        k, before = self.k, self.last.table
        reasons = dict.fromkeys(self.moved_total, f"a period total would move by fewer than {k}")
        reasons.update(dict.fromkeys(hold - set(reasons), "releasing it would let a small cell be narrowed"))
        parent = parent_periods(self.table)
        while True:
            candidate = _mixed(self.table, before, list(reasons))
            more = {}
            for period, kind in (
                candidate[["period", "period_kind"]].drop_duplicates().itertuples(index=False)
            ):
                if kind == QUARTER or not _same_span(period, candidate, before, self.last.through):
                    continue
                moved = _total_moves(candidate, before, period)
                if ((moved > 0) & (moved < k)).any():
                    for quarter in self.changed:
                        if quarter not in reasons and (kind == LOP or parent.get(quarter) == period):
                            more[quarter] = f"the {period} total would move by fewer than {k}"
            if not more:
                break
            reasons.update(more)
        held = [HeldRevision(q, self.changed[q], why) for q, why in reasons.items()]
        return candidate, held


def _same_span(period: str, table: pd.DataFrame, before: pd.DataFrame, through_before: str) -> bool:
    end = str(table.loc[table["period"] == period, "period_end"].iloc[0])
    old = before.loc[before["period"] == period, "period_end"]
    if old.empty:
        return False
    quarters_now = table.loc[table["period_kind"] == QUARTER, "period_end"].astype(str).max()
    return min(end, quarters_now) == min(str(old.iloc[0]), through_before)


def _total_moves(table: pd.DataFrame, before: pd.DataFrame, period: str) -> np.ndarray:
    def totals(frame: pd.DataFrame) -> pd.Series:
        rows = frame[(frame["period"] == period) & (frame["dimension"] == TOTAL_DIMENSION)]
        return rows.set_index("indicator")["value"]

    both = pd.concat([totals(before).rename("old"), totals(table).rename("new")], axis=1).fillna(0)
    return (both["new"] - both["old"]).abs().to_numpy()


def _small_moves(table: pd.DataFrame, last: Release, k: int) -> np.ndarray:
    """Rows shown as a number in ``last``, covering the same days now, that moved by 1..k-1."""
    before, through_before = last.table, last.through
    through_now = table.loc[table["period_kind"] == QUARTER, "period_end"].astype(str).max()
    shown = before[before["published"].astype(str).str.isdigit()]
    old = pd.Series(
        shown["value"].astype(int).to_numpy(),
        index=pd.MultiIndex.from_arrays(
            [*(shown[c] for c in CELL), np.minimum(shown["period_end"].astype(str), through_before)]
        ),
    )
    keys = pd.MultiIndex.from_arrays(
        [*(table[c] for c in CELL), np.minimum(table["period_end"].astype(str), through_now)]
    )
    previous = old.reindex(keys).to_numpy()
    moved = np.abs(table["value"].astype(float).to_numpy() - previous)
    return (moved > 0) & (moved < k)


def _mixed(table: pd.DataFrame, before: pd.DataFrame, held: Sequence[str]) -> pd.DataFrame:
    """``table`` with the quarters ``held`` as ``before`` had them, fiscal years and LOP summed again."""
    if not held:
        return table.reset_index(drop=True)
    shown = table["indicator"].isin(set(before["indicator"]))  # the rest was never released
    quarters = pd.concat(
        [
            table[(table["period_kind"] == QUARTER) & ~(table["period"].isin(held) & shown)],
            before.loc[before["period"].isin(held), COLUMNS],
        ]
    )
    return summed(quarters, table)


def summed(quarters: pd.DataFrame, layout: pd.DataFrame) -> pd.DataFrame:
    """``_summed`` of each scope of a table holding a programme and its projects, scope after scope."""
    scopes = layout["indicator"].map(lambda name: scope_of(name)[0])
    if scopes.nunique() <= 1:
        return _summed(quarters, layout)
    quarter_scopes = quarters["indicator"].map(lambda name: scope_of(name)[0])
    parts = [_summed(quarters[quarter_scopes == scope], layout[scopes == scope]) for scope in scopes.unique()]
    return pd.concat(parts, ignore_index=True)


def _summed(quarters: pd.DataFrame, layout: pd.DataFrame) -> pd.DataFrame:
    """A counts table from its quarter rows, in counting's order (indicator, dimension, period,
    category): the periods of ``layout``, each
    dimension's categories as they first appear (``layout``'s first), fiscal years and LOP as sums
    of their quarters, zeros where a quarter lacks a category, and the locations and countries of
    origin no counted person has left out (contract section 7)."""
    periods = layout[["period", "period_start", "period_end", "period_kind"]].drop_duplicates("period")
    parent = parent_periods(layout)
    categories = pd.concat(
        [layout[["indicator", "dimension", "category"]], quarters[["indicator", "dimension", "category"]]]
    )
    categories = categories.drop_duplicates()
    additive = dict(zip(layout["dimension"], layout["additive"], strict=False))
    grid = categories.merge(periods, how="cross")
    values = quarters.groupby(CELL)["value"].sum()
    in_quarter = grid["period_kind"] == QUARTER
    grid["value"] = 0
    keys = pd.MultiIndex.from_frame(grid.loc[in_quarter, CELL])
    grid.loc[in_quarter, "value"] = values.reindex(keys, fill_value=0).to_numpy()
    quarter_rows = grid[in_quarter]
    for kind in (FISCAL_YEAR, LOP):
        rows = grid["period_kind"] == kind
        if kind == FISCAL_YEAR:
            sums = quarter_rows.assign(period=quarter_rows["period"].map(parent)).groupby(CELL)["value"].sum()
            wanted = pd.MultiIndex.from_frame(grid.loc[rows, CELL])
        else:
            sums = quarter_rows.groupby(["indicator", "dimension", "category"])["value"].sum()
            wanted = pd.MultiIndex.from_frame(grid.loc[rows, ["indicator", "dimension", "category"]])
        grid.loc[rows, "value"] = sums.reindex(wanted, fill_value=0).to_numpy()
    lop = grid[grid["period_kind"] == LOP]
    seen = lop[lop["value"] > 0].groupby(["dimension", "category"]).size().index
    unseen = (
        grid["dimension"].isin(SEEN_DIMENSIONS)
        & ~grid["category"].isin(ALWAYS_LISTED)
        & ~pd.MultiIndex.from_frame(grid[["dimension", "category"]]).isin(seen)
    )
    grid = grid[~unseen]
    order = {name: i for i, name in enumerate(dict.fromkeys(layout["indicator"]))}
    period_order = {p: i for i, p in enumerate(periods["period"])}
    dimension_order = {d: i for i, d in enumerate(dict.fromkeys(layout["dimension"]))}
    grid = grid.assign(
        _i=grid["indicator"].map(order),
        _p=grid["period"].map(period_order),
        _d=grid["dimension"].map(dimension_order),
        _c=np.arange(len(grid)) % max(1, len(grid)),
    )
    grid["additive"] = grid["dimension"].map(additive).fillna(True).astype(bool)
    return grid.sort_values(["_i", "_d", "_p", "_c"], kind="stable")[COLUMNS].reset_index(drop=True)


def information_loss(releases: Iterable[Release]) -> pd.DataFrame:
    """What suppression costs each release, per dimension: ``cells`` and ``hidden_cells``, and
    ``persons`` (the sum of the cells' true values) and ``hidden_persons`` (of the hidden ones)."""
    frames = []
    for release in releases:
        table = release.table
        text = table["published"].astype(str)
        hidden = (text == HIDDEN) | text.str.startswith("<")
        value = table["value"].astype(int)
        frames.append(
            pd.DataFrame(
                {
                    "audience": release.audience,
                    "dimension": table["dimension"],
                    "cells": 1,
                    "hidden_cells": hidden.astype(int),
                    "persons": value,
                    "hidden_persons": value.where(hidden, 0),
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            columns=["audience", "dimension", "cells", "hidden_cells", "persons", "hidden_persons"]
        )
    joined = pd.concat(frames)
    return joined.groupby(["audience", "dimension"], sort=False, as_index=False).sum()
