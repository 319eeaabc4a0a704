"""What counting, the sync and ``status`` read: the answers' codes, the known submissions, the
stored copies, the sync state and the totals. The column-wise table counting scans
(``answer_table``) is read chunk by chunk here; each back end gives the query of a chunk and the
decoding of its answer codes, its own fast path."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from kobo_tip.answers import AnswerCodes, AnswerTable
from kobo_tip.sources.base import KnownSubmission
from kobo_tip.store.base import _LAST_RECONCILE, StoreBase, told
from kobo_tip.store.records import StoreCounts, StoredSubmission
from kobo_tip.store.schema import ANSWER_COLUMNS, CHANGE_MARK, TABLE_TEXTS

if TYPE_CHECKING:
    import numpy as np

READ_ROWS = 200_000  # row ids per chunk read: bounds memory, stays far below SQLite's string limit
UNIT = "\x1f"  # separates the text values of a chunk read in one piece; a value holding it is read row by row
# The rows of one chunk: every row in a range of row ids, or those changed after a mark among them
# (found by the index on changed: the unary + keeps SQLite from scanning the range of row ids).
IN_CHUNK = "row_id > ? AND row_id <= ?"
# A chunk's rows: its row ids (after, up to] and, if it reads changes only, the mark they follow.
ChunkRows = tuple[int, int, int | None]
CHANGED_IN_CHUNK = "+row_id > ? AND +row_id <= ? AND changed > ?"
_CHUNK_TEXTS = f"SELECT {', '.join(TABLE_TEXTS)} FROM submissions WHERE {{}} ORDER BY row_id"


class CountingReads(StoreBase):
    """The reads of the sync, counting and ``status``."""

    @told
    def answer_table(self) -> AnswerTable:
        """Every stored submission (deleted ones flagged) column by column: what counting reads.

        Each chunk of rows comes back as one row of the back end's ``_chunk_query``: each text
        column joined into one string, so reading makes a few objects per column rather than one
        per value. One read snapshot keeps the rows and the answer codes consistent.
        """
        with self._reading():
            return self._table(None)

    @told
    def answer_changes(self, after: int | None) -> tuple[int, AnswerTable]:
        """The mark of the last write committed, and ``answer_table``'s rows that writes after the
        mark ``after`` changed (new, edited, deleted, a new review status or key), in one snapshot;
        with ``after`` None, every row. A reader that keeps the mark and passes it next time sees
        each change once at least (a write numbers its rows above every mark committed before it)."""
        with self._reading():
            (mark,) = self._db.execute(CHANGE_MARK).fetchone()
            return int(mark), self._table(after)

    def _table(self, after: int | None) -> AnswerTable:
        import numpy as np  # here: a sync never needs numpy, and importing it costs a tenth of a second  # noqa: PLC0415

        texts: dict[str, list[str]] = {name: [] for name in TABLE_TEXTS}
        codes: list[np.ndarray] = []
        deleted: list[np.ndarray] = []
        values = self.answer_codes().values  # in this snapshot: another process may sync
        where = IN_CHUNK if after is None else CHANGED_IN_CHUNK
        query = self._chunk_query(values, where=where)
        if after is None:
            (end,) = self._db.execute("SELECT coalesce(max(row_id), 0) FROM submissions").fetchone()
            start = 0
        else:  # the changed rows' range only (the index on changed finds them)
            low, end = self._db.execute(
                "SELECT coalesce(min(row_id), 1), coalesce(max(row_id), 0) FROM submissions "
                "WHERE changed > ?",
                (after,),
            ).fetchone()
            start = low - 1
        for first in range(start, end, READ_ROWS):
            bounds = (first, first + READ_ROWS)
            params = bounds if after is None else (*bounds, after)
            count, flags, *found = self._db.execute(query, params).fetchone()
            if not count:
                continue
            joined, extra = found[: len(TABLE_TEXTS)], found[len(TABLE_TEXTS) :]
            parts = [text.split(UNIT) for text in joined]
            if any(len(part) != count for part in parts):
                # A value holds the separator: read the texts row by row, in row_id order.
                rows = self._db.execute(_CHUNK_TEXTS.format(where), params).fetchall()
                parts = [list(column) for column in zip(*rows, strict=True)]
            for name, part in zip(TABLE_TEXTS, parts, strict=True):
                texts[name] += part
            codes.append(self._chunk_codes(extra, rows=(*bounds, after), count=count, values=values))
            deleted.append(np.frombuffer(flags.encode("ascii"), np.uint8) == ord("1"))
        matrix = np.concatenate([np.zeros((0, len(ANSWER_COLUMNS)), np.int32), *codes])
        return AnswerTable(
            **texts,
            deleted=np.concatenate([np.zeros(0, dtype=bool), *deleted]),
            codes={field: matrix[:, index] for index, field in enumerate(ANSWER_COLUMNS)},
            values=values,
        )

    @abc.abstractmethod
    def _chunk_query(self, values: Mapping[str, list[Any]], *, where: str) -> str:
        """The query of one chunk of rows (``where``: ``IN_CHUNK``, ``row_id`` in ``(?, ?]``, or
        ``CHANGED_IN_CHUNK``, those of them changed after a mark), one row: the row count, the
        deleted flags as '0'/'1', each of ``TABLE_TEXTS`` joined by ``UNIT``, all in row_id order,
        then what ``_chunk_codes`` decodes. ``values``: the answer codes' values."""

    @abc.abstractmethod
    def _chunk_codes(
        self, extra: Sequence[Any], *, rows: ChunkRows, count: int, values: Mapping[str, list[Any]]
    ) -> np.ndarray:
        """The chunk's answer codes (a ``count`` x ``len(ANSWER_COLUMNS)`` int32 matrix, in row_id
        order), from ``extra``, the columns of ``_chunk_query`` after the texts. ``rows``: the
        chunk's row ids ``(first, last]`` and the mark its rows changed after (None: all of them)."""

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
    def submissions(
        self, *, include_deleted: bool = True, changed_after: int | None = None
    ) -> Iterator[StoredSubmission]:
        """Stream every stored submission (deleted ones flagged), one JSON decode per row; with
        ``changed_after`` (a mark of ``answer_changes``), those changed after it only."""
        conditions = [] if include_deleted else ["deleted_at IS NULL"]
        order = "row_id"
        if changed_after is not None:
            conditions.append(f"changed > {int(changed_after)}")
            order = "+row_id"  # found by the index on changed, then sorted (see CHANGED_IN_CHUNK)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        cursor = self._db.execute(
            "SELECT submission_id, version_id, review_status, submitted_at, form_version, person_key, "
            "key_basis, key_reason, deleted_at IS NOT NULL, data FROM submissions "
            f"JOIN submission_data USING (row_id){where} ORDER BY {order}"
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
