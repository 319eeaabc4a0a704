"""What counting, the sync and ``status`` read: the answers' codes, the known submissions, the
stored copies, the sync state and the totals. The column-wise table counting scans
(``answer_table``) is each back end's own fast path."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from kobo_tip.answers import AnswerCodes
from kobo_tip.sources.base import KnownSubmission
from kobo_tip.store.base import _LAST_RECONCILE, StoreBase, told
from kobo_tip.store.records import StoreCounts, StoredSubmission
from kobo_tip.store.schema import ANSWER_COLUMNS


class CountingReads(StoreBase):
    """The reads of the sync, counting and ``status``."""

    @told
    def meta_value(self, name: str) -> str | None:
        """A value of the store's ``meta`` table (``schema_version``, ``secret_fingerprint``)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
        return row[0] if row else None

    @told
    def watermark(self, name: str) -> str | None:
        """The value saved under ``name`` with the last committed batch, if any."""
        row = self._db.execute("SELECT value FROM watermarks WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    @told
    def last_reconcile(self) -> str | None:
        """When the last complete reconcile pass was committed (``utc_stamp`` format)."""
        row = self._db.execute("SELECT value FROM sync_state WHERE key = ?", (_LAST_RECONCILE,)).fetchone()
        return row[0] if row else None

    @told
    def known(self) -> dict[str, KnownSubmission]:
        """Every non-deleted submission: id -> version and review status."""
        known = self.known_pairs()
        for sid, pair in known.items():  # in place: one tuple at a time in memory, not two dicts
            known[sid] = KnownSubmission._make(pair)  # type: ignore[assignment]
        return known  # type: ignore[return-value]

    @told
    def known_pairs(self) -> dict[str, tuple[str, str]]:
        """``known`` as plain pairs (version, review status), which marshal carries to the worker."""
        rows = self._db.execute(
            "SELECT submission_id, version_id, review_status FROM submissions WHERE deleted_at IS NULL"
        )
        return {sid: (version, status) for sid, version, status in rows}

    @told
    def deleted_since(self, since: str) -> list[str]:
        """The ids a sync marked deleted at ``since`` (``utc_stamp`` format) or later."""
        rows = self._db.execute(
            "SELECT submission_id FROM submissions WHERE deleted_at >= ? ORDER BY row_id", (since,)
        )
        return [sid for (sid,) in rows]

    @told
    def answer_codes(self) -> AnswerCodes:
        """The saved answer dictionary: what a sync continues (``apply_batch``), what counting decodes."""
        codes = AnswerCodes(ANSWER_COLUMNS)
        for field, code, value in self._db.execute(
            "SELECT field, code, value FROM answer_values ORDER BY field, code"
        ):
            codes.restore(field, code, self._answer_value(value))
        return codes

    @told
    def submissions(self, *, include_deleted: bool = True) -> Iterator[StoredSubmission]:
        """Stream every stored submission (deleted ones flagged), one JSON decode per row."""
        where = "" if include_deleted else " WHERE deleted_at IS NULL"
        cursor = self._db.execute(
            "SELECT submission_id, version_id, review_status, submitted_at, form_version, person_key, "
            "key_basis, key_reason, deleted_at IS NOT NULL, data FROM submissions "
            f"JOIN submission_data USING (row_id){where} ORDER BY row_id"
        )
        loads = orjson.loads
        while rows := cursor.fetchmany(2000):
            for sid, version, status, submitted, form_version, key, basis, reason, gone, data in rows:
                yield StoredSubmission(
                    sid, version, status, submitted, form_version, key, basis, reason, bool(gone), loads(data)
                )

    @told
    def counts(self) -> StoreCounts:
        """Totals for ``kobo-tip status``."""
        db = self._db
        active, deleted, first, last = db.execute(
            "SELECT count(*) - count(deleted_at), count(deleted_at), "
            "MIN(CASE WHEN deleted_at IS NULL THEN submitted_at END), "
            "MAX(CASE WHEN deleted_at IS NULL THEN submitted_at END) FROM submissions"
        ).fetchone()
        by_status = dict(
            db.execute(
                "SELECT review_status, COUNT(*) FROM submissions WHERE deleted_at IS NULL "
                "GROUP BY review_status ORDER BY review_status"
            ).fetchall()
        )
        by_basis = dict(
            db.execute(
                "SELECT key_basis, COUNT(*) FROM submissions WHERE deleted_at IS NULL "
                "GROUP BY key_basis ORDER BY key_basis"
            ).fetchall()
        )
        marks = dict(db.execute("SELECT name, value FROM watermarks ORDER BY name").fetchall())
        return StoreCounts(
            self.path, active, deleted, by_status, by_basis, first, last, self.last_reconcile(), marks
        )
