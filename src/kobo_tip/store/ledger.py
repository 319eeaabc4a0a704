"""The as-reported ledger (contract section 4): the quarters released outside, their cells and the
persons counted in them, written in the transaction that saves the release they belong to."""

from __future__ import annotations

from kobo_tip.store.base import StoreBase, told
from kobo_tip.store.records import LedgerRows

# Once saved, a row never changes: a second outside audience saving the same release adds nothing.
_SAVE_QUARTER = (
    "INSERT INTO ledger_quarters (indicator, quarter, released_at, seeded) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_SAVE_CELL = (
    "INSERT INTO ledger_cells (indicator, quarter, dimension, category, value) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_SAVE_PERSON = (
    "INSERT INTO ledger_persons (indicator, person_key, quarter, submission_id, released_at, categories) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


class LedgerStore(StoreBase):
    """Reads the ledger; ``RunLog.save_release`` writes it with the release (``_save_ledger``)."""

    @told
    def ledger(self) -> LedgerRows:
        """Every row of the ledger, in one read."""
        with self._reading():
            quarters = self._db.execute(
                "SELECT indicator, quarter, released_at, seeded FROM ledger_quarters "
                "ORDER BY indicator, quarter"
            ).fetchall()
            cells = self._db.execute(
                "SELECT indicator, quarter, dimension, category, value FROM ledger_cells"
            ).fetchall()
            persons = self._db.execute(
                "SELECT indicator, person_key, quarter, submission_id, released_at, categories "
                "FROM ledger_persons"
            ).fetchall()
        return LedgerRows(
            [(i, q, at, bool(seeded)) for i, q, at, seeded in quarters],
            [(i, q, d, c, int(v)) for i, q, d, c, v in cells],
            [tuple(row) for row in persons],
        )

    @told
    def ledger_mark(self) -> tuple[int, int, int]:
        """How many quarters, cells and persons the ledger holds: kobo-tip only adds rows to it (in
        PostgreSQL no role may change or remove one), so the ledger is the same while these are."""
        with self._reading():
            row = self._db.execute(
                "SELECT (SELECT count(*) FROM ledger_quarters), (SELECT count(*) FROM ledger_cells), "
                "(SELECT count(*) FROM ledger_persons)"
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def _save_ledger(self, rows: LedgerRows) -> None:
        """Add ``rows`` to the ledger; the caller holds the transaction."""
        if rows.quarters:
            self._db.executemany(_SAVE_QUARTER, [(i, q, at, int(s)) for i, q, at, s in rows.quarters])
        if rows.cells:
            self._db.executemany(_SAVE_CELL, rows.cells)
        if rows.persons:
            self._db.executemany(_SAVE_PERSON, rows.persons)
