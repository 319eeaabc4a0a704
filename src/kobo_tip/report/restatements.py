"""The restatement log: published cells whose value changed since the audience's last report.

A cell is compared only when it covers the same days in both reports (a quarter that had
ended by both, a fiscal year or LOP counted through the same day), so a growing year-to-date
figure is not a restatement, while a late submission moving a person into an ended quarter is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from kobo_tip import indicator
from kobo_tip.store import RunInfo, Store

Cell = tuple[str, str, str, str]  # (indicator, period, dimension, category)
# Saved with each publication's cells (the store keeps cells only): the last day it counted,
# and the newest sync run it includes, so the next report names exactly the runs after it.
META = "_publication"
THROUGH_CELL: Cell = (META, "through", "", "")
LAST_RUN_CELL: Cell = (META, "last_run", "", "")
RUNS_LOOKED_AT = 1000  # far more syncs than happen between two reports


def publication_cells(published: pd.DataFrame, through: dt.date, last_run: int = 0) -> dict[Cell, str]:
    """What to save for a publication: every published cell, the day it counted through and
    the id of the newest sync run it includes."""
    columns = (published[c].tolist() for c in ("indicator", "period", "dimension", "category", "value"))
    cells: dict[Cell, str] = {(n, p, d, c): str(v) for n, p, d, c, v in zip(*columns, strict=True)}
    cells[THROUGH_CELL] = through.isoformat()
    cells[LAST_RUN_CELL] = str(last_run)
    return cells


def changed_cells(
    previous: Mapping[Cell, str], published: pd.DataFrame, through: dt.date
) -> list[tuple[str, str, str, str, str, str]]:
    """(indicator, period, dimension, category, old, new) for each comparable cell that changed.

    A category missing on one side (a location no counted person has any more) counts as 0.
    """
    if THROUGH_CELL not in previous:
        return []
    before = dt.date.fromisoformat(previous[THROUGH_CELL])
    comparable = {
        row.period
        for row in published.drop_duplicates("period").itertuples()
        if min(dt.date.fromisoformat(str(row.period_end)), through)
        == min(dt.date.fromisoformat(str(row.period_end)), before)
    }
    current = publication_cells(published, through)
    keys = {key for key in (*previous, *current) if key[0] != META and key[1] in comparable}
    position = {key: i for i, key in enumerate(current)}  # table order; cells no longer shown last
    changes = []
    for key in sorted(keys, key=lambda k: (position.get(k, len(position)), k)):
        old, new = previous.get(key, "0"), current.get(key, "0")
        if old != new:
            changes.append((*key, old, new))
    return changes


def reason(runs: Sequence[RunInfo], since: str, merges_path: Path | None) -> str:
    """Why numbers changed: the syncs since the last report, and a changed merges file."""
    new, edited, deleted, statuses = (
        sum(getattr(run, name) for run in runs) for name in ("new", "edited", "deleted", "status_changed")
    )
    parts = [
        f"{count} {what}" for count, what in ((new, "new"), (edited, "edited"), (deleted, "deleted")) if count
    ]
    words = []
    if parts:
        words.append(f"{', '.join(parts)} submissions synced since {since}")
    if statuses:
        words.append(f"{statuses} review statuses changed")
    if merges_path is not None and merges_path.exists() and _modified_after(merges_path, since):
        words.append(f"merges file {merges_path.name} changed")
    return "; ".join(words) or f"no sync since {since}: the configuration or the counting rules changed"


def _modified_after(path: Path, stamp: str) -> bool:
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) > moment


def restatements(
    store: Store, audience: str, published: pd.DataFrame, through: dt.date, merges: Path | None
) -> pd.DataFrame:
    """The restatement rows for ``audience`` against its last saved publication."""
    previous = store.last_publication(audience)
    since = store.last_published_at(audience)
    changes = changed_cells(previous, published, through) if since else []
    why = ""
    if changes and since:
        last_run = int(previous.get(LAST_RUN_CELL, "0"))
        why = reason([r for r in store.runs(RUNS_LOOKED_AT) if r.id > last_run], since, merges)
    return pd.DataFrame(
        [(*change, why) for change in changes], columns=list(indicator.RESTATEMENT_COLUMNS), dtype=object
    )
