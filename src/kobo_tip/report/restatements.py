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
from kobo_tip.store import RunInfo, StoredRelease

Cell = tuple[str, str, str, str]  # (indicator, period, dimension, category)
RUNS_LOOKED_AT = 1000  # far more syncs than happen between two reports


def published_cells(published: pd.DataFrame) -> dict[Cell, str]:
    """Each published cell's text, by its counts.csv address."""
    columns = (published[c].tolist() for c in ("indicator", "period", "dimension", "category", "value"))
    return {(n, p, d, c): str(v) for n, p, d, c, v in zip(*columns, strict=True)}


def changed_cells(
    previous: Mapping[Cell, str],
    previous_through: dt.date,
    published: pd.DataFrame,
    through: dt.date,
    *,
    numbers_only: bool = False,
) -> list[tuple[str, str, str, str, str, str]]:
    """(indicator, period, dimension, category, old, new) for each comparable cell that changed.

    A category missing on one side (a location no counted person has any more) counts as 0.
    ``numbers_only``: only cells published as numbers both times (outside internal, a cell hidden
    in one of two releases is not a revision the reader can compare).
    """
    comparable = {
        row.period
        for row in published.drop_duplicates("period").itertuples()
        if min(dt.date.fromisoformat(str(row.period_end)), through)
        == min(dt.date.fromisoformat(str(row.period_end)), previous_through)
    }
    current = published_cells(published)
    keys = {key for key in (*previous, *current) if key[1] in comparable}
    position = {key: i for i, key in enumerate(current)}  # table order; cells no longer shown last
    changes = []
    for key in sorted(keys, key=lambda k: (position.get(k, len(position)), k)):
        old, new = previous.get(key, "0"), current.get(key, "0")
        if old != new and (not numbers_only or (old.isdigit() and new.isdigit())):
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
    previous: StoredRelease | None,
    runs: Sequence[RunInfo],
    published: pd.DataFrame,
    through: dt.date,
    merges: Path | None,
) -> pd.DataFrame:
    """The restatement rows of ``published`` against the audience's last saved release."""
    changes: list[tuple[str, str, str, str, str, str]] = []
    why = ""
    if previous is not None:
        before = dict(
            zip(
                zip(
                    *(previous.cells[c] for c in ("indicator", "period", "dimension", "category")),
                    strict=True,
                ),
                previous.cells["published"],
                strict=True,
            )
        )
        changes = changed_cells(
            before, dt.date.fromisoformat(previous.through), published, through, numbers_only=previous.k > 0
        )
        if changes:
            why = reason([r for r in runs if r.id > previous.last_run], previous.released_at, merges)
    return pd.DataFrame(
        [(*change, why) for change in changes], columns=list(indicator.RESTATEMENT_COLUMNS), dtype=object
    )
