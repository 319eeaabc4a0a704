"""The run log (one row a sync, with what it changed and what failed), the pushes' tally, and the
releases: what each audience was shown."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from kobo_tip.errors import StoreError
from kobo_tip.store.base import _LAST_PUSH, _PUSHES, told
from kobo_tip.store.ledger import LedgerStore
from kobo_tip.store.records import LedgerRows, RunInfo, StoredRelease, utc_stamp

INTERNAL_RELEASES_KEPT = 5  # internal renders are compared with the last one only
RETRIES_KEPT = 50  # retry lines a run-log row keeps
INTERRUPTED = "interrupted: the sync stopped before its end; its committed batches are kept"
# The run log's columns that ``RunInfo`` takes as they are (its ``retries`` are one text, line by line).
_RUN_COLUMNS = (
    "id", "started", "finished", "source", "fetched", "new", "edited", "unchanged", "deleted",
    "status_changed", "seconds", "error",
)  # fmt: skip


class RunLog(LedgerStore):
    """Runs, pushes and releases (with the as-reported ledger they add to)."""

    @told
    def begin_run(self, source: str, started: str | None = None) -> int:
        """Write the run-log row of a starting sync; returns its id.

        Called under the sync lock, so an earlier run still open was killed: it is marked so.
        """
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET error = ? WHERE finished IS NULL AND error IS NULL", (INTERRUPTED,)
            )
            (run_id,) = self._db.execute(
                "INSERT INTO runs (started, source) VALUES (?, ?) RETURNING id",
                (started or utc_stamp(), source),
            ).fetchone()
        return int(run_id)

    @told
    def finish_run(
        self, run_id: int, *, seconds: float, error: str | None = None, retries: Sequence[str] = ()
    ) -> None:
        """Close the run-log row: finish time, duration, the retried requests and, on failure, the
        error text."""
        kept = list(retries[:RETRIES_KEPT])
        if len(retries) > RETRIES_KEPT:
            kept.append(f"and {len(retries) - RETRIES_KEPT} more")
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET finished = ?, seconds = ?, error = ?, retries = ? WHERE id = ?",
                (utc_stamp(), round(seconds, 3), error, "\n".join(kept) or None, run_id),
            )

    @told
    def runs(self, limit: int = 10) -> list[RunInfo]:
        """The latest ``limit`` runs, newest first."""
        return self._runs("ORDER BY id DESC LIMIT ?", (limit,))

    @told
    def runs_since(self, timestamp: dt.datetime | str) -> list[RunInfo]:
        """Runs started at or after ``timestamp``, oldest first."""
        return self._runs("WHERE started >= ? ORDER BY id", (utc_stamp(timestamp),))

    def _runs(self, clause: str, params: tuple[Any, ...]) -> list[RunInfo]:
        rows = self._db.execute(f"SELECT {', '.join(_RUN_COLUMNS)}, retries FROM runs {clause}", params)
        return [
            RunInfo(**dict(zip(_RUN_COLUMNS, row[:-1], strict=True)), retries=_retries(row[-1]))
            for row in rows
        ]

    @told
    def pushes(self) -> tuple[str | None, int]:
        """When the last push was stored, and how many pushed submissions were stored in all."""
        values = dict(
            self._db.execute("SELECT key, value FROM sync_state WHERE key IN (?, ?)", (_LAST_PUSH, _PUSHES))
        )
        return values.get(_LAST_PUSH), int(values.get(_PUSHES, 0))

    @told
    def save_release(
        self,
        audience: str,
        *,
        k: int,
        through: str,
        last_run: int,
        cells: Mapping[str, list[Any]],
        released_at: dt.datetime | str | None = None,
        ledger: LedgerRows | None = None,
    ) -> str:
        """Record what ``audience`` was shown (``cells``: column name -> values); returns its time.
        Internal renders keep only the last few: they are compared with the last one only.
        ``ledger``: what the release adds to the as-reported ledger, saved in the same transaction,
        so a quarter is frozen exactly when a release shows it."""
        stamp = utc_stamp(released_at)
        blob = zlib.compress(orjson.dumps(dict(cells)), 6)
        with self._transaction():
            self._db.execute(
                "INSERT INTO releases (audience, released_at, k, through, last_run, cells) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (audience, stamp, k, through, last_run, blob),
            )
            if ledger:
                self._save_ledger(ledger)
            if k == 0:
                self._db.execute(
                    "DELETE FROM releases WHERE audience = ? AND id NOT IN "
                    "(SELECT id FROM releases WHERE audience = ? ORDER BY id DESC LIMIT ?)",
                    (audience, audience, INTERNAL_RELEASES_KEPT),
                )
        return stamp

    @told
    def lost_releases(self) -> dict[str, tuple[int, int]]:
        """Audience -> (outside releases ever recorded, those the store still holds), for each
        audience whose release history has lost some: what the disclosure audit reads is short."""
        rows = self._db.execute(
            "SELECT m.audience, m.released, "
            "(SELECT count(*) FROM releases r WHERE r.audience = m.audience AND r.k > 0) "
            "FROM release_marks m ORDER BY m.audience"
        ).fetchall()
        return {audience: (int(ever), int(held)) for audience, ever, held in rows if held < ever}

    @told
    def releases(self, audience: str, *, last: bool = False) -> list[StoredRelease]:
        """``audience``'s releases, oldest first (``last``: the newest only). A StoreError when
        outside releases of ``audience`` were removed: an audit against what is left would let the
        next report undo the suppression of what was published."""
        lost = self.lost_releases().get(audience)
        if lost is not None:
            raise StoreError(lost_history(self.path, audience, *lost))
        query = (
            "SELECT id, audience, released_at, k, through, last_run, cells FROM releases WHERE audience = ?"
        )
        query += " ORDER BY id DESC LIMIT 1" if last else " ORDER BY id"
        rows = self._db.execute(query, (audience,)).fetchall()
        return [
            StoredRelease(id_, name, at, k, through, last_run, orjson.loads(zlib.decompress(cells)))
            for id_, name, at, k, through, last_run, cells in rows
        ]


def _retries(text: str | None) -> tuple[str, ...]:
    """A run's retry lines, stored as one text."""
    return tuple(text.split("\n")) if text else ()


def lost_history(path: object, audience: str, ever: int, held: int) -> str:
    """The sentence saying that ``audience``'s release history in the store at ``path`` was cut."""
    return (
        f"The {audience} release history of {path} was cut: {ever} outside release(s) were recorded, "
        f"{held} are left, so a report audited against it could undo the suppression of what was "
        "published; restore the releases table from a backup (or 'kobo-tip store copy' of one) "
        "before releasing to this audience again."
    )
