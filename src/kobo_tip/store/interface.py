"""The store as the rest of kobo-tip uses it, whichever back end holds it."""

from __future__ import annotations

import abc
import contextlib
from typing import Self

from kobo_tip.store.reads import CountingReads
from kobo_tip.store.runlog import RunLog
from kobo_tip.store.writes import SyncWrites


class Store(SyncWrites, CountingReads, RunLog):
    """An open store: the concerns' methods, and what each back end gives them (its locks, its
    transactions, its query and decoding of the counting table's chunks), each an abstract method
    a back end must give. ``kobo_tip.store.open_store(settings)`` opens the configured one;
    ``SqliteStore.open(path)`` a SQLite file, ``PostgresStore.connect(url, schema)`` a schema."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version the store's tables are at."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; the store cannot be used after."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def lock_for_sync(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the store's sync lock; a second sync waits ``wait`` seconds, then raises StoreError."""

    @abc.abstractmethod
    def lock_for_render(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the store's render lock: one render at a time decides, writes and saves releases."""

    @abc.abstractmethod
    def lock_for_serve(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store's service lock: one ``kobo-tip serve`` per store; a second fails at once."""

    def _after_copy(self) -> None:
        """What a back end must do once ``store.copy`` has written rows with their own ids."""
