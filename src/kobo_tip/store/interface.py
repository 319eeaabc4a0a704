"""The store as the rest of kobo-tip uses it, whichever back end holds it."""

from __future__ import annotations

import contextlib
import os
from typing import Self

from kobo_tip.answers import AnswerTable
from kobo_tip.store.reads import CountingReads
from kobo_tip.store.runlog import RunLog
from kobo_tip.store.writes import SyncWrites


class Store(SyncWrites, CountingReads, RunLog):
    """An open store: the concerns' methods, and what each back end gives them (its locks, its
    way of reading the counting table). ``Store.open(path)`` opens a SQLite file;
    ``kobo_tip.store.open_store(settings)`` opens the configured one."""

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True, migrate: bool = False) -> Store:
        from kobo_tip.store.sqlite import SqliteStore

        return SqliteStore.open(path, create=create, migrate=migrate)

    def schema_version(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock_for_sync(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the store's sync lock; a second sync waits ``wait`` seconds, then raises StoreError."""
        raise NotImplementedError

    def lock_for_render(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the store's render lock: one render at a time decides, writes and saves releases."""
        raise NotImplementedError

    def lock_for_serve(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store's service lock: one ``kobo-tip serve`` per store; a second fails at once."""
        raise NotImplementedError

    def _after_copy(self) -> None:
        """What a back end must do once ``store.copy`` has written rows with their own ids."""

    def answer_table(self) -> AnswerTable:
        """Every stored submission (deleted ones flagged) column by column: what counting reads."""
        raise NotImplementedError
