"""The internal report's account of the as-reported basis (contract sections 4 and 7): for every cell of
every quarter released outside, the value released and today's event-basis value, and what
separates them, so that an officer can explain every difference to a donor.

Per cell, ``released = event_basis - late_added + reported_late + removed + edited``:

* ``late_added``: persons whose index event is in this quarter (and category) today, counted
  outside in a later quarter, or waiting for the next release to be counted;
* ``reported_late``: persons released in this quarter whose index event today is in an earlier one;
* ``removed``: persons released in this cell who no longer count (listed by reason);
* ``edited``: what is left, edits that moved persons released here to another cell or brought
  persons released elsewhere into it, and for a quarter released before the ledger was kept, the
  revisions that release did not show.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kobo_tip.counting import PERSON_COLUMNS, RULE_ORDER, CountResult
from kobo_tip.ledger import CELL_COLUMNS, Ledger, categories_of, cells_of, ledger_key, merged_groups
from kobo_tip.privacy import QUARTER

AS_REPORTED_COLUMNS = (
    "indicator",
    "period",
    "dimension",
    "category",
    "released",
    "event_basis",
    "late_added",
    "removed",
    "reported_late",
    "edited",
)
REMOVED_COLUMNS = ("indicator", "period", "reason", "submission_id")
# Reasons beside the exclusion rules of section 4: merged into another person (merges file), the
# index submission edited so that its person key changed (a UIC part or the gender), or otherwise
# no longer counted in this indicator (its action edited, say).
MERGED, KEY_CHANGED, NO_LONGER = "merged", "key_changed", "no_longer_counted"
CELL = ["indicator", "period", "dimension", "category"]


@dataclass(frozen=True)
class Reconciliation:
    """``cells``: AS_REPORTED_COLUMNS for every cell of every quarter released outside; ``removed``:
    the released persons who no longer count (REMOVED_COLUMNS, by their index submission id);
    ``waiting``: persons late for a released quarter, counted at the next quarter released."""

    cells: pd.DataFrame
    removed: pd.DataFrame
    waiting: int

    @property
    def totals(self) -> pd.DataFrame:
        """The ``total`` rows: one per indicator and released quarter."""
        return self.cells[self.cells["dimension"] == "total"].reset_index(drop=True)


def reconcile(ledger: Ledger, result: CountResult, published_through: dt.date) -> Reconciliation:
    """The reconciliation of ``ledger`` (as the last outside release left it) with the event-basis
    ``result`` (counted with ``persons=True``); quarters after ``published_through`` are not
    published outside yet, so a person of theirs is neither late nor waiting."""
    counts = result.counts
    quarters = [p.label for p in result.periods if p.kind == QUARTER and p.end <= published_through]
    rank = {label: i for i, label in enumerate(p.label for p in result.periods if p.kind == QUARTER)}
    names = list(dict.fromkeys(counts["indicator"]))
    released_quarters = ledger.quarters[ledger.quarters["indicator"].isin(names)]
    if released_quarters.empty or result.persons is None:
        return Reconciliation(
            pd.DataFrame(columns=AS_REPORTED_COLUMNS), pd.DataFrame(columns=REMOVED_COLUMNS), 0
        )
    groups = merged_groups(result.rows)
    parts, removed, waiting = [], [], 0
    for name in names:
        released = set(released_quarters.loc[released_quarters["indicator"] == name, "quarter"])
        if not released:
            continue
        persons = result.persons[name]
        book = ledger.persons[ledger.persons["indicator"] == name]
        # Lists, not the text columns element by element (0.1 s for 124,189 persons that way).
        book_quarter = dict(zip(book["person_key"].tolist(), book["quarter"].tolist(), strict=True))
        known = ledger_key(persons, set(book_quarter), groups)
        now_quarter = pd.Series(known, dtype=object).map(book_quarter)  # missing: not in the ledger
        event_rank = persons["quarter"].map(rank).to_numpy()
        outside = now_quarter.isna() | (now_quarter == "")
        outside_rank = np.where(outside, 10**6, now_quarter.map(rank).fillna(-1)).astype(np.int64)
        in_released = persons["quarter"].isin(released).to_numpy()
        late = in_released & (outside_rank > event_rank)
        unknown = now_quarter.isna().to_numpy() & persons["quarter"].isin(quarters).to_numpy()
        waiting += int((in_released & unknown).sum())
        dims = [c for c in persons.columns if c not in PERSON_COLUMNS]
        late_cells = cells_of(name, persons[late], dims)
        # The ledger's side: who was released where, and whether they still count, and where.
        # One list, not an element lookup a person (reconcile at 100,000 rows under cProfile: 6.2 s
        # CPU with .iat, 1.3 s so and with _reasons reading the persons' rows only).
        still = {k: q for k, q in zip(known, persons["quarter"].tolist(), strict=True) if k is not None}
        gone = ~book["person_key"].isin(still).to_numpy()
        event_of = book["person_key"].map(still)
        earlier = (~gone) & (event_of.map(rank).to_numpy() < book["quarter"].map(rank).to_numpy())
        removed_cells = cells_of(name, _ledger_frame(book[gone]), dims)
        reported_cells = cells_of(name, _ledger_frame(book[earlier]), dims)
        reasons = _reasons(book[gone], result.rows)
        removed.append(
            pd.DataFrame(
                {
                    "indicator": name,
                    "period": book.loc[gone, "quarter"].to_numpy(),
                    "reason": reasons,
                    "submission_id": book.loc[gone, "submission_id"].to_numpy(),
                }
            )
        )
        cells = ledger.cells[(ledger.cells["indicator"] == name) & ledger.cells["quarter"].isin(released)]
        event = counts[(counts["indicator"] == name) & counts["period"].isin(released)]
        frame = event[CELL].assign(event_basis=event["value"].astype(np.int64).to_numpy())
        for column, part in (
            ("released", cells),
            ("late_added", late_cells),
            ("removed", removed_cells),
            ("reported_late", reported_cells),
        ):
            values = part.rename(columns={"value": column, "quarter": "period"}).set_index(CELL)[column]
            frame = frame.merge(values, how="outer", left_on=CELL, right_index=True, sort=False)
        parts.append(frame)
    table = pd.concat(parts, ignore_index=True)
    numbers = ["released", "event_basis", "late_added", "removed", "reported_late"]
    table[numbers] = table[numbers].fillna(0).astype(np.int64)
    table["edited"] = (
        table["released"]
        - table["event_basis"]
        + table["late_added"]
        - table["removed"]
        - table["reported_late"]
    )
    order = {label: i for i, label in enumerate(counts["period"].drop_duplicates())}
    table = table.assign(
        _p=table["period"].map(order), _i=table["indicator"].map({n: i for i, n in enumerate(names)})
    )
    table = table.sort_values(["_i", "_p"], kind="stable").drop(columns=["_i", "_p"])
    gone_rows = pd.concat(removed, ignore_index=True) if removed else pd.DataFrame(columns=REMOVED_COLUMNS)
    return Reconciliation(table[list(AS_REPORTED_COLUMNS)].reset_index(drop=True), gone_rows, waiting)


def _ledger_frame(book: pd.DataFrame) -> pd.DataFrame:
    """The ledger's persons with one column per dimension (their released categories)."""
    return pd.concat([book[["quarter"]], categories_of(book)], axis=1)


def _reasons(gone: pd.DataFrame, rows: pd.DataFrame | None) -> list[str]:
    """Why each released person of ``gone`` no longer counts: merged into another person, else the
    first rule of contract section 4 their index submission fails now, else its key changed, else the
    first rule another of their rows fails."""
    if rows is None:
        return [NO_LONGER] * len(gone)
    # Only the rows of those persons and submissions are read, not the store's every row.
    rows = rows[rows["submission_id"].isin(gone["submission_id"]) | rows["own_key"].isin(gone["person_key"])]
    rule_of = dict(zip(rows["submission_id"], rows["rule"], strict=True))
    key_of = dict(zip(rows["submission_id"], rows["own_key"], strict=True))
    merged = set(rows.loc[rows["own_key"] != rows["person_key"], "own_key"])
    own_rules = (
        rows[rows["rule"] != ""]
        .groupby("own_key")["rule"]
        .agg(lambda rules: min(rules, key=lambda r: RULE_ORDER.get(r, len(RULE_ORDER))))
    )
    out = []
    for key, submission in zip(gone["person_key"], gone["submission_id"], strict=True):
        if key in merged:
            out.append(MERGED)
        elif rule_of.get(submission):
            out.append(str(rule_of[submission]))
        elif key_of.get(submission, key) != key:
            out.append(KEY_CHANGED)
        elif key in own_rules.index:
            out.append(str(own_rules[key]))
        else:
            out.append(NO_LONGER)
    return out


__all__ = ["AS_REPORTED_COLUMNS", "CELL_COLUMNS", "REMOVED_COLUMNS", "Reconciliation", "reconcile"]
