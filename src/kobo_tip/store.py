"""The local SQLite mirror of the server: submissions, watermarks, sync state, run log, releases.

One file, WAL mode, created with permissions 0600. Sync is the only writer and commits each
batch (submissions, review statuses, deletions, watermarks, run counters) in one transaction,
so a killed sync leaves the store as it was after its last committed batch.

A submission is two rows: its facts and the code of each counted answer in ``submissions``
(narrow, what counting scans), and its JSON in ``submission_data``. ``answer_values`` keeps each
distinct answer of a field once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import inspect
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from kobo_tip import indicator as ind
from kobo_tip.answers import AnswerCodes, AnswerTable, answer_key, without_fields
from kobo_tip.errors import CodesClash, StoreError
from kobo_tip.sources.base import KnownSubmission

SCHEMA_VERSION = 4
SYNC_LOCK_WAIT = 5.0  # seconds a second sync waits for the first before giving up
RENDER_LOCK_WAIT = 300.0  # seconds a render waits for another render of the same store
INTERNAL_RELEASES_KEPT = 5
RETRIES_KEPT = 50  # retry lines a run-log row keeps  # internal renders are compared with the last one only
_BUSY_TIMEOUT_MS = 30_000  # readers wait this long for a writer's checkpoint
_CHUNK = 500  # ids per "IN (...)" query, well below SQLite's variable limit
_PRIVATE = 0o077  # umask: files readable by their owner only
_MAX_CODE = 0x10FFFF - 0x800  # answer codes are read back as Unicode characters
_READ_ROWS = 200_000  # row ids per read query: bounds memory, stays far below SQLite's string limit
_PAGE_BYTES = 16384
_UNIT = "\x1f"  # separates text values read in one piece; a value holding it is read row by row

# The answers counting reads, one column each: the code of the answer in answer_values.
ANSWER_COLUMNS = ind.COUNTED_FIELDS
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Narrow rows: counting scans this table, so the submission itself lives in submission_data.
CREATE TABLE submissions (
    row_id INTEGER PRIMARY KEY,
    submission_id TEXT NOT NULL UNIQUE,
    id_order INTEGER,
    version_id TEXT NOT NULL,
    review_status TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    form_version TEXT NOT NULL,
    person_key TEXT NOT NULL,
    key_basis TEXT NOT NULL,
    key_reason TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL, -- when a new or changed copy last arrived
    deleted_at TEXT,
    deleted_run INTEGER,
    {", ".join(f'"{field}" INTEGER NOT NULL' for field in ANSWER_COLUMNS)} -- 0: unanswered
);
-- The submission as the server sent it, less the UIC parts and review-state keys.
CREATE TABLE submission_data (row_id INTEGER PRIMARY KEY, data TEXT NOT NULL);
-- Each distinct answer of a field once, coded 1, 2, 3...: submissions.<field> holds the code. A string is
-- TEXT, anything else (a number from Central, a malformed list) is its JSON as a BLOB.
CREATE TABLE answer_values (
    field TEXT NOT NULL,
    code INTEGER NOT NULL,
    value NOT NULL,
    PRIMARY KEY (field, code)
);
CREATE TABLE watermarks (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    source TEXT NOT NULL,
    fetched INTEGER NOT NULL DEFAULT 0,
    new INTEGER NOT NULL DEFAULT 0,
    edited INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    status_changed INTEGER NOT NULL DEFAULT 0,
    seconds REAL,
    error TEXT,
    retries TEXT  -- the requests retried during the run, one line each (what failed, the wait)
);
-- What each audience was shown: every cell's true value and published text (columns as
-- compressed JSON), the k it was published at (0: internal) and the day it counted through.
CREATE TABLE releases (
    id INTEGER PRIMARY KEY,
    audience TEXT NOT NULL,
    released_at TEXT NOT NULL,
    k INTEGER NOT NULL,
    through TEXT NOT NULL,
    last_run INTEGER NOT NULL,
    cells BLOB NOT NULL
);
CREATE INDEX releases_by_audience ON releases (audience, id);
"""
# Each step takes a store from the version before it to the next (``kobo-tip store migrate``).
_MIGRATIONS: dict[int, str] = {
    # 2 -> 3: releases replace publications, which kept published text only and cannot be audited;
    # the release history starts afresh (spec section 6). Then every stored submission is scrubbed
    # of UIC parts that older versions let through (keys split by '.' or ':', answers in lists).
    3: _SCHEMA[_SCHEMA.index("-- What each audience was shown") :]
    + ";DROP TABLE publications"
    + f';ALTER TABLE submissions ADD COLUMN "{ind.STAKEHOLDER_OTHER_ORG}" INTEGER NOT NULL DEFAULT 0',
    # 3 -> 4: the run log says which requests were retried.
    4: "ALTER TABLE runs ADD COLUMN retries TEXT",
}
_SCRUBBED_AT = 3  # the migration after which stored submissions are scrubbed
_ANSWER_NAMES = ", ".join(f'"{field}"' for field in ANSWER_COLUMNS)
_ANSWER_UPDATES = ", ".join(f'"{field}" = ?' for field in ANSWER_COLUMNS)
_INSERT_SUBMISSION = (
    "INSERT INTO submissions (row_id, submission_id, id_order, version_id, review_status, submitted_at, "
    "form_version, person_key, key_basis, key_reason, first_seen, last_seen, "
    f"{_ANSWER_NAMES}) VALUES ({', '.join('?' * (12 + len(ANSWER_COLUMNS)))})"
)
_UPDATE_SUBMISSION = (
    "UPDATE submissions SET version_id = ?, review_status = ?, submitted_at = ?, form_version = ?, "
    "person_key = ?, key_basis = ?, key_reason = ?, last_seen = ?, "
    f"{_ANSWER_UPDATES}, "
    "deleted_at = NULL, deleted_run = NULL WHERE row_id = ?"
)
_TABLE_TEXTS = (
    "submission_id",
    "review_status",
    "submitted_at",
    "form_version",
    "person_key",
    "key_basis",
    "key_reason",
)
_CHUNK_TEXTS = (
    f"SELECT {', '.join(_TABLE_TEXTS)} FROM submissions WHERE row_id > ? AND row_id <= ? ORDER BY row_id"
)
# Answer codes travel as the characters char(code): one character a code, read back as UTF-32.
# Codes past the surrogate block (which UTF-8 cannot carry) are moved over it, and back.
_LAST_BEFORE_SURROGATES, _SURROGATE_COUNT = 0xD7FF, 0x800


def _chunk_query(shifted: Sequence[int]) -> str:
    """One chunk of rows (``row_id`` in ``(?, ?]``): the row count, each text column joined by
    _UNIT, the answer codes as characters (``shifted``: columns holding codes past the surrogates)
    and the deleted flags as '0'/'1'. All aggregates of one query see the rows in the same order."""
    points = [
        f'"{field}" + ("{field}" > {_LAST_BEFORE_SURROGATES}) * {_SURROGATE_COUNT}'
        if index in shifted
        else f'"{field}"'
        for index, field in enumerate(ANSWER_COLUMNS)
    ]
    texts = ", ".join(f"group_concat({name}, char(31))" for name in _TABLE_TEXTS)
    return (
        f"SELECT count(*), {texts}, group_concat(char({', '.join(points)}), ''), "
        "group_concat(deleted_at IS NOT NULL, '') FROM submissions WHERE row_id > ? AND row_id <= ?"
    )


_LAST_RECONCILE = "last_reconcile"
_LAST_PUSH, _PUSHES = "last_push", "pushes"  # when the last push was stored; how many so far
INTERRUPTED = "interrupted: the sync stopped before its end; its committed batches are kept"


def utc_stamp(moment: dt.datetime | str | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC: the one timestamp format of the store's own columns."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    moment = moment or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)  # not frozen: a frozen init costs more, once per submission
class StoredSubmission:
    """One submission as the store holds it (UIC parts removed, person key added)."""

    submission_id: str
    version_id: str
    review_status: str
    submitted_at: str
    form_version: str
    person_key: str
    key_basis: str
    key_reason: str
    deleted: bool
    data: dict[str, Any]


class SubmissionRow(NamedTuple):  # a tuple: made once per submission, and pickled between processes
    """What sync writes for one submission; ``review_status`` None keeps the store's."""

    submission_id: str
    version_id: str
    review_status: str | None
    submitted_at: str
    form_version: str
    person_key: str
    key_basis: str
    key_reason: str
    data_json: str
    answer_codes: Sequence[int]  # the codes of the answers of ANSWER_COLUMNS, in that order (AnswerCodes)


NewAnswer = tuple[str, int, Any]  # field, code, answer: AnswerCodes.take_added


@dataclass
class BatchOutcome:
    """What one committed batch changed."""

    new: int = 0
    edited: int = 0
    unchanged: int = 0
    deleted: int = 0
    status_changed: int = 0


@dataclass(frozen=True)
class RunInfo:
    """One row of the run log."""

    id: int
    started: str
    finished: str | None
    source: str
    fetched: int
    new: int
    edited: int
    unchanged: int
    deleted: int
    status_changed: int
    seconds: float | None
    error: str | None
    retries: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreCounts:
    """What ``kobo-tip status`` shows about the store."""

    path: Path
    submissions: int  # not deleted
    deleted: int
    by_review_status: dict[str, int]
    by_key_basis: dict[str, int]
    first_submitted_at: str | None
    last_submitted_at: str | None
    last_reconcile: str | None
    watermarks: dict[str, str]


def _damage_told(method: Callable[..., Any]) -> Callable[..., Any]:
    """A store method whose SQLite failure on a damaged file becomes one sentence (a locked store is
    told elsewhere)."""

    def damaged(store: Store, exc: sqlite3.DatabaseError) -> StoreError:
        return StoreError(
            f"The store {store.path} is damaged ({exc}): move it away and run 'kobo-tip sync' to rebuild it "
            "from the server."
        )

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generate(self: Store, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                raise damaged(self, exc) from None

        return generate

    @functools.wraps(method)
    def call(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
                raise
            raise damaged(self, exc) from None

    return call


class Store:
    """An open store. Use ``Store.open(path)`` as a context manager."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._expect_new = True  # the last batch held only new submissions: try the next as such first
        self._codes: AnswerCodes | None = None  # apply_pushed's answer codes, and how many are saved
        self._codes_count = 0

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True, migrate: bool = False) -> Store:
        """Open (and with ``create``, create) the store at ``path``; ``migrate`` upgrades an older
        schema (``kobo-tip store migrate``), which is otherwise an error."""
        path = Path(path)
        if not path.exists() and not create:
            raise StoreError(f"No store at {path}: run 'kobo-tip sync' first.")
        old_umask = os.umask(_PRIVATE)  # the -wal and -shm files SQLite creates stay private too
        try:
            _create_private(path)
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            store = cls(path, connection)
            try:
                store._prepare(migrate)
            except sqlite3.DatabaseError as exc:
                connection.close()
                raise StoreError(
                    f"{path} is not a kobo-tip store or is damaged ({exc}); move it away and sync again."
                ) from None
            except BaseException:
                connection.close()
                raise
        finally:
            os.umask(old_umask)
        return store

    def _prepare(self, migrate: bool = False) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # A new store only (set before WAL mode fixes it): a stored submission is about 1 KB, and
        # larger pages hold them with less waste and fewer splits. Measured with Kobo rows: 8 KiB
        # against 4 KiB, a file 14% smaller and batches written in 10% less CPU; 16 KiB against
        # 8 KiB, 5% smaller and 4.6% less CPU, the counting read as fast.
        self._db.execute(f"PRAGMA page_size = {_PAGE_BYTES}")
        self._db.execute("PRAGMA journal_mode = WAL")
        # What is deleted or replaced (an edit's old copy) is overwritten on disk, not left in free pages.
        self._db.execute("PRAGMA secure_delete = ON")
        # NORMAL in WAL mode survives a killed process; only a power cut may lose the last commit.
        self._db.execute("PRAGMA synchronous = NORMAL")
        if not self._has_schema():
            with self._transaction():  # re-checked under the write lock: two openers may race here
                if not self._has_schema():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = self.schema_version()
        if migrate and min(_MIGRATIONS) - 1 <= version < SCHEMA_VERSION:
            self._migrate(version)
        elif version < SCHEMA_VERSION and version >= min(_MIGRATIONS) - 1:
            raise StoreError(
                f"The store {self.path} has schema version {version}, this kobo-tip reads version "
                f"{SCHEMA_VERSION}: run 'kobo-tip store migrate' to upgrade it."
            )
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"The store {self.path} has schema version {version}, this kobo-tip reads version "
                f"{SCHEMA_VERSION}: use the matching kobo-tip, or move the store away and sync again."
            )

    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self, version: int) -> None:
        """Apply each migration after ``version``, each in one transaction with its version number."""
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if target == _SCRUBBED_AT:
                    self._scrub()
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(target),))
        # secure_delete zeroes the pages the scrub freed; VACUUM and a truncated WAL leave no copy behind.
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _scrub(self) -> None:
        """Remove UIC parts from every stored submission, at any depth and in any key style."""
        rows = self._db.execute("SELECT row_id, data FROM submission_data").fetchall()
        for row_id, text in rows:
            data = json.loads(text)
            kept = without_fields(data, ind.UIC_PARTS) if isinstance(data, dict) else data
            if kept != data:
                self._db.execute(
                    "UPDATE submission_data SET data = ? WHERE row_id = ?",
                    (json.dumps(kept, ensure_ascii=False, separators=(",", ":")), row_id),
                )

    def _has_schema(self) -> bool:
        found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
        return found.fetchone() is not None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so a transaction never fails half-way on a busy store.
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(
                    f"The store {self.path} is busy: another kobo-tip process kept it locked for "
                    f"{_BUSY_TIMEOUT_MS // 1000} s; try again when it has finished."
                ) from exc
            raise StoreError(
                f"The store {self.path} could not be written ({exc}); check the disk and its permissions."
            ) from exc

    def lock_for_sync(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the store's sync lock; a second sync waits ``wait`` seconds, then raises StoreError."""
        return self._file_lock(".lock", SYNC_LOCK_WAIT if wait is None else wait, "sync")

    def lock_for_render(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the store's render lock: one render at a time decides, writes and saves releases."""
        return self._file_lock(".render.lock", RENDER_LOCK_WAIT if wait is None else wait, "report")

    def lock_for_serve(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store's service lock: one ``kobo-tip serve`` per store; a second fails at once."""
        return self._file_lock(".serve.lock", 0, "serve")

    @contextlib.contextmanager
    def _file_lock(self, suffix: str, wait: float, what: str) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + suffix)
        old_umask = os.umask(_PRIVATE)
        try:
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (held until the work ends)
        except OSError as exc:
            raise StoreError(f"Cannot create the {what} lock file {lock_path}: {exc.strerror}.") from None
        finally:
            os.umask(old_umask)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        holder = handle.read().strip() or "unknown"
                        raise StoreError(
                            f"Another kobo-tip {what} (process {holder}) is running on {self.path}; "
                            f"wait for it to finish, then run this {what} again."
                        ) from None
                    time.sleep(0.1)
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    # --- sync state -----------------------------------------------------------------------

    @_damage_told
    def meta_value(self, name: str) -> str | None:
        """A value of the store's ``meta`` table (``schema_version``, ``secret_fingerprint``)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
        return row[0] if row else None

    @_damage_told
    def set_meta_value(self, name: str, value: str) -> None:
        """Save a ``meta`` value in its own transaction."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    @_damage_told
    def watermark(self, name: str) -> str | None:
        """The value saved under ``name`` with the last committed batch, if any."""
        row = self._db.execute("SELECT value FROM watermarks WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    @_damage_told
    def last_reconcile(self) -> str | None:
        """When the last complete reconcile pass was committed (``utc_stamp`` format)."""
        row = self._db.execute("SELECT value FROM sync_state WHERE key = ?", (_LAST_RECONCILE,)).fetchone()
        return row[0] if row else None

    @_damage_told
    def known(self) -> dict[str, KnownSubmission]:
        """Every non-deleted submission: id -> version and review status."""
        rows = self._db.execute(
            "SELECT submission_id, version_id, review_status FROM submissions WHERE deleted_at IS NULL"
        )
        return {sid: KnownSubmission(version, status) for sid, version, status in rows}

    # --- write side (sync only) -------------------------------------------------------------

    @_damage_told
    def begin_run(self, source: str, started: str | None = None) -> int:
        """Write the run-log row of a starting sync; returns its id.

        Called under the sync lock, so an earlier run still open was killed: it is marked so.
        """
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET error = ? WHERE finished IS NULL AND error IS NULL", (INTERRUPTED,)
            )
            cursor = self._db.execute(
                "INSERT INTO runs (started, source) VALUES (?, ?)", (started or utc_stamp(), source)
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @_damage_told
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
        ``new_answers`` are the codes the rows use for the first time, made by an ``AnswerCodes``
        that continues ``answer_codes()``.
        """
        now = utc_stamp()
        outcome = BatchOutcome()
        with self._transaction():
            self._save_codes(new_answers)
            self._upsert(rows, now, outcome)
            if review_statuses:
                self._set_statuses(review_statuses, outcome)
            if deleted:
                self._mark_deleted(deleted, now, run_id, outcome)
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

    @_damage_told
    def apply_pushed(
        self, make_rows: Callable[[AnswerCodes], tuple[list[SubmissionRow], list[NewAnswer]]]
    ) -> BatchOutcome:
        """Commit pushed submissions in one transaction, like ``apply_batch`` without a run or a
        watermark (a push is a hint: the poll still pages from its own ``_id`` mark).

        ``make_rows`` codes the rows inside the transaction, with the answer codes as committed,
        so a sync writing through another connection never sees its codes taken."""
        now = utc_stamp()
        outcome = BatchOutcome()
        try:
            with self._transaction():
                codes = self._pushed_codes()
                rows, new_answers = make_rows(codes)
                self._save_codes(new_answers)
                self._upsert(rows, now, outcome)
                self._db.execute(
                    "INSERT INTO sync_state VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_LAST_PUSH, now),
                )
                self._db.execute(
                    "INSERT INTO sync_state VALUES (?, ?) ON CONFLICT (key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
                    (_PUSHES, len(rows)),
                )
        except BaseException:
            self._codes = None  # it may hold codes that were never saved
            raise
        self._codes_count += len(new_answers)
        return outcome

    def _pushed_codes(self) -> AnswerCodes:
        """The answer codes as committed: kept between pushes, read again when another writer added some."""
        (count,) = self._db.execute("SELECT count(*) FROM answer_values").fetchone()
        if self._codes is None or self._codes_count != count:
            self._codes, self._codes_count = self.answer_codes(), count
        return self._codes

    @_damage_told
    def pushes(self) -> tuple[str | None, int]:
        """When the last push was stored, and how many pushed submissions were stored in all."""
        values = dict(
            self._db.execute("SELECT key, value FROM sync_state WHERE key IN (?, ?)", (_LAST_PUSH, _PUSHES))
        )
        return values.get(_LAST_PUSH), int(values.get(_PUSHES, 0))

    def _existing(self, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for sid, *facts in self._db.execute(
                "SELECT submission_id, row_id, version_id, review_status, deleted_at, person_key, key_basis, "
                f"key_reason FROM submissions WHERE submission_id IN ({marks})",
                chunk,
            ):
                found[sid] = tuple(facts)
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

    @_damage_told
    def answer_codes(self) -> AnswerCodes:
        """The saved answer dictionary: what a sync continues (``apply_batch``), what counting decodes."""
        codes = AnswerCodes(ANSWER_COLUMNS)
        for field, code, value in self._db.execute(
            "SELECT field, code, value FROM answer_values ORDER BY field, code"
        ):
            codes.restore(field, code, _stored_answer(value))
        return codes

    def _upsert(self, rows: Sequence[SubmissionRow], now: str, outcome: BatchOutcome) -> None:
        latest = {row.submission_id: row for row in rows}  # a repeated id: the last one wins
        if self._expect_new and self._insert_if_new(latest, now):
            outcome.new += len(latest)
            return
        existing = self._existing(list(latest))
        self._expect_new = not existing
        # Same id, same version: only the content can tell an edit (a file source's rows have no version).
        texts = self._stored_texts(
            [facts[0] for sid, facts in existing.items() if facts[1] == latest[sid].version_id]
        )
        new: dict[str, SubmissionRow] = {}
        updates, touches, data = [], [], []
        for sid, row in latest.items():
            before = existing.get(sid)
            if before is None:
                new[sid] = row
                continue
            row_id, old_version, old_status, deleted_at, *old_key = before
            key = [row.person_key, row.key_basis, row.key_reason]
            status = row.review_status or old_status
            if deleted_at is not None:
                outcome.new += 1
            elif old_version != row.version_id or texts.get(row_id) != row.data_json:
                outcome.edited += 1
                outcome.status_changed += status != old_status
            else:
                outcome.unchanged += 1
                # Rows that did not change are left alone: rewriting them would cost a full re-sync's I/O.
                if status != old_status or old_key != key:
                    outcome.status_changed += status != old_status
                    touches.append((status, *key, row_id))
                continue
            updates.append(
                [
                    row.version_id,
                    status,
                    row.submitted_at,
                    row.form_version,
                    *key,
                    now,
                    *row.answer_codes,
                    row_id,
                ]
            )
            data.append((row_id, row.data_json))
        outcome.new += len(new)
        self._insert(new, now)
        self._db.executemany(_UPDATE_SUBMISSION, updates)
        self._db.executemany("INSERT OR REPLACE INTO submission_data VALUES (?, ?)", data)
        self._db.executemany(
            "UPDATE submissions SET review_status = ?, person_key = ?, key_basis = ?, key_reason = ? "
            "WHERE row_id = ?",
            touches,
        )

    def _insert_if_new(self, rows: Mapping[str, SubmissionRow], now: str) -> bool:
        """Insert ``rows`` if none of them is stored; if one is, write nothing and return False.

        A page of new submissions, a sync's usual batch, then costs no look-up of its ids before
        the insert (which looks each one up in the unique index anyway).
        """
        self._db.execute("SAVEPOINT new_rows")
        try:
            self._insert(rows, now)
        except sqlite3.IntegrityError:
            self._db.execute("ROLLBACK TO new_rows")
            return False
        finally:
            self._db.execute("RELEASE new_rows")
        return True

    def _insert(self, rows: Mapping[str, SubmissionRow], now: str) -> None:
        (first,) = self._db.execute("SELECT ifnull(max(row_id), 0) + 1 FROM submissions").fetchone()
        self._db.executemany(
            _INSERT_SUBMISSION,
            (
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
                    *row.answer_codes,
                ]
                for row_id, (sid, row) in enumerate(rows.items(), start=first)
            ),
        )
        self._db.executemany(
            "INSERT INTO submission_data VALUES (?, ?)",
            ((row_id, row.data_json) for row_id, row in enumerate(rows.values(), start=first)),
        )

    def _save_codes(self, new_answers: Sequence[NewAnswer]) -> None:
        overflowing = next((field for field, code, _ in new_answers if code > _MAX_CODE), None)
        if overflowing:
            raise StoreError(
                f"The store {self.path} holds more distinct answers to {overflowing} than it can code: "
                "the source is not sending this form's answers."
            )
        rows = [(field, code, answer_key(value)) for field, code, value in new_answers]
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

    def _set_statuses(self, statuses: Mapping[str, str], outcome: BatchOutcome) -> None:
        for sid, status in statuses.items():
            cursor = self._db.execute(
                "UPDATE submissions SET review_status = ? "
                "WHERE submission_id = ? AND review_status != ? AND deleted_at IS NULL",
                (status, sid, status),
            )
            outcome.status_changed += cursor.rowcount

    def _mark_deleted(self, ids: Iterable[str], now: str, run_id: int, outcome: BatchOutcome) -> None:
        cursor = self._db.executemany(
            "UPDATE submissions SET deleted_at = ?, deleted_run = ? "
            "WHERE submission_id = ? AND deleted_at IS NULL",
            ((now, run_id, sid) for sid in ids),
        )
        outcome.deleted += cursor.rowcount

    @_damage_told
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

    # --- read side --------------------------------------------------------------------------

    @_damage_told
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

    @_damage_told
    def answer_table(self) -> AnswerTable:
        """Every stored submission (deleted ones flagged) column by column: what counting reads.

        SQLite joins each column of a chunk of rows into one string (``_chunk_query``), so reading
        makes a few objects per column rather than one per value. One read transaction keeps the
        rows and the answer codes consistent.
        """
        import numpy as np  # here: a sync never needs numpy, and importing it costs a tenth of a second

        columns: dict[str, list[Any]] = {name: [] for name in (*_TABLE_TEXTS, "codes", "deleted")}
        with self._reading():
            values = self.answer_codes().values  # in this transaction: another process may sync
            shifted = [
                index
                for index, field in enumerate(ANSWER_COLUMNS)
                if len(values[field]) > _LAST_BEFORE_SURROGATES
            ]
            query = _chunk_query(shifted)
            (end,) = self._db.execute("SELECT ifnull(max(row_id), 0) FROM submissions").fetchone()
            for first in range(0, end, _READ_ROWS):
                bounds = (first, first + _READ_ROWS)
                rows, *texts, joined_codes, joined_deleted = self._db.execute(query, bounds).fetchone()
                if not rows:
                    continue
                parts = [joined.split(_UNIT) for joined in texts]
                if any(len(part) != rows for part in parts):
                    # A value holds the separator: read the texts row by row (a row_id range is
                    # scanned in row_id order, so they still line up with the codes).
                    found = self._db.execute(_CHUNK_TEXTS, bounds).fetchall()
                    parts = [list(column) for column in zip(*found, strict=True)]
                for name, part in zip(_TABLE_TEXTS, parts, strict=True):
                    columns[name] += part
                points = np.frombuffer(joined_codes.encode("utf-32-le"), dtype=np.uint32)
                codes = points.reshape(rows, len(ANSWER_COLUMNS)).astype(np.int32)
                for index in shifted:
                    codes[:, index] -= np.where(
                        codes[:, index] > _LAST_BEFORE_SURROGATES, _SURROGATE_COUNT, 0
                    )
                columns["codes"].append(codes)
                columns["deleted"].append(np.frombuffer(joined_deleted.encode("ascii"), np.uint8) == ord("1"))
        matrix = np.concatenate([np.zeros((0, len(ANSWER_COLUMNS)), np.int32), *columns.pop("codes")])
        deleted = np.concatenate([np.zeros(0, dtype=bool), *columns.pop("deleted")])
        return AnswerTable(
            **columns,
            deleted=deleted,
            codes={field: matrix[:, index] for index, field in enumerate(ANSWER_COLUMNS)},
            values=values,
        )

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same committed state."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    @_damage_told
    def counts(self) -> StoreCounts:
        """Totals for ``kobo-tip status``."""
        db = self._db
        active, deleted, first, last = db.execute(
            "SELECT COALESCE(SUM(deleted_at IS NULL), 0), COALESCE(SUM(deleted_at IS NOT NULL), 0), "
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

    @_damage_told
    def runs(self, limit: int = 10) -> list[RunInfo]:
        """The latest ``limit`` runs, newest first."""
        return self._runs("ORDER BY id DESC LIMIT ?", (limit,))

    @_damage_told
    def runs_since(self, timestamp: dt.datetime | str) -> list[RunInfo]:
        """Runs started at or after ``timestamp``, oldest first."""
        return self._runs("WHERE started >= ? ORDER BY id", (utc_stamp(timestamp),))

    def _runs(self, clause: str, params: tuple[Any, ...]) -> list[RunInfo]:
        rows = self._db.execute(
            "SELECT id, started, finished, source, fetched, new, edited, unchanged, deleted, "
            f"status_changed, seconds, error, retries FROM runs {clause}",
            params,
        )
        return [
            dataclasses.replace(RunInfo(*row[:-1]), retries=tuple(row[-1].split("\n")) if row[-1] else ())
            for row in rows
        ]

    # --- releases (what each audience was shown) ---------------------------------------------

    @_damage_told
    def save_release(
        self,
        audience: str,
        *,
        k: int,
        through: str,
        last_run: int,
        cells: Mapping[str, list[Any]],
        released_at: dt.datetime | str | None = None,
    ) -> str:
        """Record what ``audience`` was shown (``cells``: column name -> values); returns its time.
        Internal renders keep only the last few: they are compared with the last one only."""
        stamp = utc_stamp(released_at)
        blob = zlib.compress(orjson.dumps(dict(cells)), 6)
        with self._transaction():
            self._db.execute(
                "INSERT INTO releases (audience, released_at, k, through, last_run, cells) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (audience, stamp, k, through, last_run, blob),
            )
            if k == 0:
                self._db.execute(
                    "DELETE FROM releases WHERE audience = ? AND id NOT IN "
                    "(SELECT id FROM releases WHERE audience = ? ORDER BY id DESC LIMIT ?)",
                    (audience, audience, INTERNAL_RELEASES_KEPT),
                )
        return stamp

    @_damage_told
    def releases(self, audience: str, *, last: bool = False) -> list[StoredRelease]:
        """``audience``'s releases, oldest first (``last``: the newest only)."""
        query = (
            "SELECT id, audience, released_at, k, through, last_run, cells FROM releases WHERE audience = ?"
        )
        query += " ORDER BY id DESC LIMIT 1" if last else " ORDER BY id"
        rows = self._db.execute(query, (audience,)).fetchall()
        return [
            StoredRelease(id_, name, at, k, through, last_run, orjson.loads(zlib.decompress(cells)))
            for id_, name, at, k, through, last_run, cells in rows
        ]


@dataclass(frozen=True)
class StoredRelease:
    """One saved release: ``cells`` maps each column name to its values."""

    id: int
    audience: str
    released_at: str
    k: int
    through: str
    last_run: int
    cells: dict[str, list[Any]]


def _create_private(path: Path) -> None:
    """Create the store file 0600 (and its folder 0700) before SQLite opens it.

    An existing file is left alone: closing any descriptor of it would drop the POSIX locks the
    other connections of this process hold (``kobo-tip serve`` has several), and SQLite would
    then let a reader reset the WAL under a writer."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"Cannot create or open the store {path}: {exc.strerror}.") from None
    os.close(fd)


def _stored_answer(value: str | bytes) -> Any:
    """An answer saved as ``answer_key`` gives it: a string as TEXT, anything else its JSON BLOB."""
    return json.loads(value) if isinstance(value, bytes) else value


def _id_order(submission_id: str) -> int | None:
    """Numeric ids (Kobo ``_id``) as integers, so they sort as numbers."""
    if len(submission_id) <= 18 and submission_id.isascii() and submission_id.isdigit():
        return int(submission_id)
    return None
