"""The sync's writes: batches of submissions, review statuses, deletions, watermarks and the
answer codes they use, each batch in one transaction; and pushed submissions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from kobo_tip.answers import AnswerCodes, answer_key
from kobo_tip.errors import CodesClash, StoreError
from kobo_tip.store.base import _LAST_PUSH, _LAST_RECONCILE, _PUSHES, StoreBase, _id_order, told
from kobo_tip.store.records import BatchOutcome, NewAnswer, SubmissionRow, utc_stamp
from kobo_tip.store.schema import CHANGE_MARK, INSERT_SUBMISSION, UPDATE_SUBMISSION

_CHUNK = 500  # ids per "IN (...)" query, well below SQLite's variable limit
_MAX_CODE = 0x10FFFF - 0x800  # answer codes are read back as Unicode characters


class _StoredFacts(NamedTuple):
    """What an upsert compares of a stored submission with the row that comes in."""

    row_id: int
    version_id: str
    review_status: str
    deleted_at: str | None
    person_key: str
    key_basis: str
    key_reason: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.person_key, self.key_basis, self.key_reason)


class SyncWrites(StoreBase):
    """Everything a sync or a push writes."""

    @told
    def apply_batch(
        self,
        rows: Sequence[SubmissionRow],
        *,
        run_id: int,
        new_answers: Sequence[NewAnswer] = (),
        review_statuses: Mapping[str, str] | None = None,
        deleted: Iterable[str] = (),
        watermarks: Mapping[str, str] | None = None,
        reconciled: bool = False,
        fetched: int = 0,
    ) -> BatchOutcome:
        """Commit one batch in a single transaction: all of it lands, or none of it.

        A row whose id is new, or was deleted and reappears, counts as new; a changed version or
        content counts as edited; anything else as unchanged. The run's counters move with it.
        A sync's rows are the server's own listing, so a row stored as deleted that the server
        lists again is stored again (a restore on ODK Central; on Kobo, which cannot restore, a
        listing that was incomplete when the deletion was recorded).
        ``new_answers`` are the codes the rows use for the first time, made by an ``AnswerCodes``
        that continues ``answer_codes()``.
        """
        now = utc_stamp()
        outcome = BatchOutcome()
        with self._transaction():
            change = self._change_number()
            self._save_codes(new_answers)
            self._upsert(rows, now, outcome, change=change)
            if review_statuses:
                self._set_statuses(review_statuses, outcome, change=change)
            if deleted:
                self._mark_deleted(deleted, now, run_id, outcome, change=change)
            for name, value in (watermarks or {}).items():
                self._db.execute(
                    "INSERT INTO watermarks VALUES (?, ?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    (name, value, now),
                )
            if reconciled:
                self._db.execute(
                    "INSERT INTO sync_state VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_LAST_RECONCILE, now),
                )
            self._db.execute(
                "UPDATE runs SET fetched = fetched + ?, new = new + ?, edited = edited + ?, "
                "unchanged = unchanged + ?, deleted = deleted + ?, status_changed = status_changed + ? "
                "WHERE id = ?",
                (
                    fetched,
                    outcome.new,
                    outcome.edited,
                    outcome.unchanged,
                    outcome.deleted,
                    outcome.status_changed,
                    run_id,
                ),
            )
        return outcome

    @told
    def apply_pushed(
        self, make_rows: Callable[[AnswerCodes], tuple[list[SubmissionRow], list[NewAnswer]]]
    ) -> BatchOutcome:
        """Commit pushed submissions in one transaction, like ``apply_batch`` without a run or a
        watermark (a push is a hint: the poll still pages from its own ``_id`` mark).

        A push never undoes a deletion a sync recorded: Kobo cannot restore a deleted submission,
        so a push for one is stale (a retry of a push sent before the deletion). It is dropped,
        and its id listed in ``BatchOutcome.stale``; the pushes counter counts what was stored.

        ``make_rows`` codes the rows inside the transaction, with the answer codes as committed,
        so a sync writing through another connection never sees its codes taken."""
        now = utc_stamp()
        outcome = BatchOutcome()
        try:
            with self._transaction():
                change = self._change_number()
                codes = self._pushed_codes()
                rows, new_answers = make_rows(codes)
                self._save_codes(new_answers)
                self._upsert(rows, now, outcome, change=change, pushed=True)
                self._db.execute(
                    "INSERT INTO sync_state VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_LAST_PUSH, now),
                )
                self._db.execute(
                    "INSERT INTO sync_state VALUES (?, ?) ON CONFLICT (key) "
                    "DO UPDATE SET value = CAST(CAST(sync_state.value AS INTEGER) + "
                    "CAST(excluded.value AS INTEGER) AS TEXT)",
                    (_PUSHES, str(len(rows) - len(outcome.stale))),
                )
        except BaseException:
            self._codes = None  # it may hold codes that were never saved
            raise
        self._codes_count += len(new_answers)
        return outcome

    def _change_number(self) -> int:
        """The number every row this write changes is marked with (``schema.CHANGE_MARK``)."""
        (mark,) = self._db.execute(CHANGE_MARK).fetchone()
        return int(mark) + 1

    def _pushed_codes(self) -> AnswerCodes:
        """The answer codes as committed: kept between pushes, read again when another writer added some."""
        (count,) = self._db.execute("SELECT count(*) FROM answer_values").fetchone()
        if self._codes is None or self._codes_count != count:
            self._codes, self._codes_count = self.answer_codes(), count
        return self._codes

    def _existing(self, ids: Sequence[str]) -> dict[str, _StoredFacts]:
        found: dict[str, _StoredFacts] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for sid, *facts in self._db.execute(
                "SELECT submission_id, row_id, version_id, review_status, deleted_at, person_key, key_basis, "
                f"key_reason FROM submissions WHERE submission_id IN ({marks})",
                chunk,
            ):
                found[sid] = _StoredFacts(*facts)
        return found

    def _stored_texts(self, row_ids: Sequence[int]) -> dict[int, str]:
        texts: dict[int, str] = {}
        for start in range(0, len(row_ids), _CHUNK):
            chunk = row_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            texts.update(
                self._db.execute(f"SELECT row_id, data FROM submission_data WHERE row_id IN ({marks})", chunk)
            )
        return texts

    def _upsert(
        self,
        rows: Sequence[SubmissionRow],
        now: str,
        outcome: BatchOutcome,
        *,
        change: int,
        pushed: bool = False,
    ) -> None:
        """Insert or update ``rows``; ``pushed`` rows stored as deleted are left as they are (and
        listed in ``outcome.stale``), a sync's rows are stored again (see ``apply_batch``)."""
        latest = {row.submission_id: row for row in rows}  # a repeated id: the last one wins
        if self._expect_new and self._insert_if_new(latest, now, change):
            outcome.new += len(latest)
            return
        existing = self._existing(list(latest))
        self._expect_new = not existing
        # Same id, same version: only the content can tell an edit (a file source's rows have no version).
        texts = self._stored_texts(
            [before.row_id for sid, before in existing.items() if before.version_id == latest[sid].version_id]
        )
        new: dict[str, SubmissionRow] = {}
        updates, touches, data = [], [], []
        for sid, row in latest.items():
            before = existing.get(sid)
            if before is None:
                new[sid] = row
                continue
            row_id, old_status = before.row_id, before.review_status
            key = (row.person_key, row.key_basis, row.key_reason)
            status = row.review_status or old_status
            if before.deleted_at is not None and pushed:
                outcome.stale.append(sid)
                continue
            if before.deleted_at is not None:
                outcome.new += 1
                outcome.restored += 1
            elif before.version_id != row.version_id or texts.get(row_id) != row.data_json:
                outcome.edited += 1
                outcome.status_changed += status != old_status
            else:
                outcome.unchanged += 1
                # Rows that did not change are left alone: rewriting them would cost a full re-sync's I/O.
                if status != old_status or before.key != key:
                    outcome.status_changed += status != old_status
                    touches.append((status, *key, change, row_id))
                continue
            updates.append(
                [
                    row.version_id,
                    status,
                    row.submitted_at,
                    row.form_version,
                    *key,
                    now,
                    change,
                    *row.answer_codes,
                    row_id,
                ]
            )
            data.append((row_id, row.data_json))
        outcome.new += len(new)
        self._insert(new, now, change)
        self._db.executemany(UPDATE_SUBMISSION, updates)
        self._db.executemany(
            "INSERT INTO submission_data VALUES (?, ?) "
            "ON CONFLICT (row_id) DO UPDATE SET data = excluded.data",
            data,
        )
        self._db.executemany(
            "UPDATE submissions SET review_status = ?, person_key = ?, key_basis = ?, key_reason = ?, "
            "changed = ? WHERE row_id = ?",
            touches,
        )

    def _insert_if_new(self, rows: Mapping[str, SubmissionRow], now: str, change: int) -> bool:
        """Insert ``rows`` if none of them is stored; if one is, write nothing and return False.

        A page of new submissions, a sync's usual batch, then costs no look-up of its ids before
        the insert (which looks each one up in the unique index anyway). A stored id is skipped by
        the insert rather than failing it: a failed statement would end PostgreSQL's pipeline.
        """
        self._db.execute("SAVEPOINT new_rows")
        try:
            if self._insert(rows, now, change, if_new=True):
                return True
            self._db.execute("ROLLBACK TO new_rows")
            return False
        finally:
            self._db.execute("RELEASE new_rows")

    def _insert(
        self, rows: Mapping[str, SubmissionRow], now: str, change: int, *, if_new: bool = False
    ) -> bool:
        """Insert ``rows`` as new; with ``if_new``, stored ids are skipped, and False says one was."""
        (first,) = self._db.execute("SELECT coalesce(max(row_id), 0) + 1 FROM submissions").fetchone()
        submissions = [
            [
                row_id,
                sid,
                _id_order(sid),
                row.version_id,
                row.review_status or "unreviewed",
                row.submitted_at,
                row.form_version,
                row.person_key,
                row.key_basis,
                row.key_reason,
                now,
                now,
                change,
                *row.answer_codes,
            ]
            for row_id, (sid, row) in enumerate(rows.items(), start=first)
        ]
        data = [(row_id, row.data_json) for row_id, row in enumerate(rows.values(), start=first)]
        return self._write_new(submissions, data, if_new=if_new)

    def _write_new(self, submissions: list[list[Any]], data: list[tuple[int, str]], *, if_new: bool) -> bool:
        """Write new rows of ``submissions`` (``INSERT_SUBMISSION``'s columns) and ``submission_data``;
        with ``if_new`` a stored id writes nothing of it and gives False."""
        inserted = self._db.executemany(
            INSERT_SUBMISSION + (" ON CONFLICT DO NOTHING" if if_new else ""), submissions
        ).rowcount
        if inserted != len(submissions):
            return False
        self._db.executemany("INSERT INTO submission_data VALUES (?, ?)", data)
        return True

    def _save_codes(self, new_answers: Sequence[NewAnswer]) -> None:
        overflowing = next((field for field, code, _ in new_answers if code > _MAX_CODE), None)
        if overflowing:
            raise StoreError(
                f"The store {self.path} holds more distinct answers to {overflowing} than it can code: "
                "the source is not sending this form's answers."
            )
        rows = [(field, code, self._answer_param(answer_key(value))) for field, code, value in new_answers]
        cursor = self._db.executemany(
            "INSERT INTO answer_values VALUES (?, ?, ?) ON CONFLICT DO NOTHING", rows
        )
        if cursor.rowcount == len(rows):
            return
        # A push through another connection may have saved the same answer under the same code: only
        # a code saved for another answer is a clash.
        for field, code, value in rows:
            (saved,) = self._db.execute(
                "SELECT value FROM answer_values WHERE field = ? AND code = ?", (field, code)
            ).fetchone()
            if saved != value:
                raise CodesClash(
                    f"The answer codes of a batch clash with those saved in {self.path}: another program "
                    "wrote to the store during this sync; run the sync again."
                )

    def _set_statuses(self, statuses: Mapping[str, str], outcome: BatchOutcome, *, change: int) -> None:
        for sid, status in statuses.items():
            cursor = self._db.execute(
                "UPDATE submissions SET review_status = ?, changed = ? "
                "WHERE submission_id = ? AND review_status != ? AND deleted_at IS NULL",
                (status, change, sid, status),
            )
            outcome.status_changed += cursor.rowcount

    def _mark_deleted(
        self, ids: Iterable[str], now: str, run_id: int, outcome: BatchOutcome, *, change: int
    ) -> None:
        cursor = self._db.executemany(
            "UPDATE submissions SET deleted_at = ?, deleted_run = ?, changed = ? "
            "WHERE submission_id = ? AND deleted_at IS NULL",
            ((now, run_id, change, sid) for sid in ids),
        )
        outcome.deleted += cursor.rowcount

    @told
    def set_meta_value(self, name: str, value: str) -> None:
        """Save a ``meta`` value in its own transaction."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (name, value),
            )
