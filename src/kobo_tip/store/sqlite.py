"""The embedded back end: one SQLite file in WAL mode, created with permissions 0600.

Sync is the only writer of a batch and commits it (submissions, review statuses, deletions,
watermarks, run counters) in one transaction, so a killed sync leaves the store as it was after
its last committed batch. A submission is two rows: its facts and the code of each counted answer
in ``submissions`` (narrow, what counting scans), and its JSON in ``submission_data``;
``answer_values`` keeps each distinct answer of a field once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kobo_tip import indicator as ind
from kobo_tip.answers import without_fields
from kobo_tip.errors import StoreError
from kobo_tip.store.interface import Store
from kobo_tip.store.reads import ChunkRows
from kobo_tip.store.schema import (
    ANSWER_COLUMNS,
    MIGRATIONS,
    RELEASE_MARKS_AT,
    RELEASE_MARKS_SQLITE,
    SCHEMA,
    SCHEMA_VERSION,
    SCRUBBED_AT,
    TABLE_TEXTS,
)

if TYPE_CHECKING:
    import numpy as np

SYNC_LOCK_WAIT = 5.0  # seconds a second sync waits for the first before giving up
RENDER_LOCK_WAIT = 300.0  # seconds a render waits for another render of the same store
_BUSY_TIMEOUT_MS = 30_000  # readers wait this long for a writer's checkpoint
_PRIVATE = 0o077  # umask: files readable by their owner only
_PAGE_BYTES = 16384
# Answer codes travel as the characters char(code): one character a code, read back as UTF-32.
# Measured gain: answer_table of 100,000 rows 0.35 s CPU, against 0.92 s fetching the rows as tuples.
# Codes past the surrogate block (which UTF-8 cannot carry) are moved over it, and back.
_LAST_BEFORE_SURROGATES, _SURROGATE_COUNT = 0xD7FF, 0x800


def _shifted(values: Mapping[str, list[Any]]) -> list[int]:
    """The answer columns holding codes past the surrogates, moved over them in a chunk's read."""
    return [
        index for index, field in enumerate(ANSWER_COLUMNS) if len(values[field]) > _LAST_BEFORE_SURROGATES
    ]


def _chunk_query(shifted: Sequence[int], where: str) -> str:
    """One chunk of rows (``where``, see ``CountingReads._chunk_query``): the row count, the deleted
    flags as '0'/'1', each text column joined by UNIT and the answer codes as characters
    (``shifted``: columns holding codes past the surrogates). All aggregates of one query see the
    rows in the same order."""
    points = [
        f'"{field}" + ("{field}" > {_LAST_BEFORE_SURROGATES}) * {_SURROGATE_COUNT}'
        if index in shifted
        else f'"{field}"'
        for index, field in enumerate(ANSWER_COLUMNS)
    ]
    texts = ", ".join(f"group_concat({name}, char(31))" for name in TABLE_TEXTS)
    return (
        f"SELECT count(*), group_concat(deleted_at IS NOT NULL, ''), {texts}, "
        f"group_concat(char({', '.join(points)}), '') FROM submissions WHERE {where}"
    )


class SqliteStore(Store):
    """An open SQLite store. Use ``SqliteStore.open(path)`` as a context manager."""

    path: Path

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        super().__init__()
        self.path = path
        self._db = connection

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True, migrate: bool = False) -> SqliteStore:
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
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(RELEASE_MARKS_SQLITE)
                    self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = self.schema_version()
        if migrate and min(MIGRATIONS) - 1 <= version < SCHEMA_VERSION:
            self._migrate(version)
        elif version < SCHEMA_VERSION and version >= min(MIGRATIONS) - 1:
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
            if target not in MIGRATIONS:
                continue  # another branch's step, not in this one
            with self._transaction():
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if target == SCRUBBED_AT:
                    self._scrub()
                if target == RELEASE_MARKS_AT:
                    self._db.execute(RELEASE_MARKS_SQLITE)
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

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same committed state."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

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

    def _chunk_query(self, values: Mapping[str, list[Any]], *, where: str) -> str:
        return _chunk_query(_shifted(values), where)

    def _chunk_codes(
        self, extra: Sequence[Any], *, rows: ChunkRows, count: int, values: Mapping[str, list[Any]]
    ) -> np.ndarray:
        import numpy as np  # a sync never needs numpy  # noqa: PLC0415

        (joined_codes,) = extra
        points = np.frombuffer(joined_codes.encode("utf-32-le"), dtype=np.uint32)
        codes = points.reshape(count, len(ANSWER_COLUMNS)).astype(np.int32)
        for index in _shifted(values):
            codes[:, index] -= np.where(codes[:, index] > _LAST_BEFORE_SURROGATES, _SURROGATE_COUNT, 0)
        return codes

    def _damaged(self, exc: Exception) -> StoreError | None:
        if not isinstance(exc, sqlite3.DatabaseError):
            return None
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            return None  # told where it happens (a transaction's wait for the write lock)
        return StoreError(
            f"The store {self.path} is damaged ({exc}): move it away and run 'kobo-tip sync' to rebuild it "
            "from the server."
        )


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
