"""The store: the local mirror of the server's submissions, the sync state, the run log and the
releases. One interface, the concerns in their own modules, one module per back end:

* ``writes``: what a sync or a push writes (``SyncWrites``);
* ``reads``: what counting, the sync and ``status`` read (``CountingReads``);
* ``runlog``: runs, pushes and releases (``RunLog``);
* ``interface``: ``Store``, what the rest of kobo-tip uses, whichever back end;
* ``sqlite``: the embedded back end (``SqliteStore``), one file;
* ``postgres``: the shared back end (``PostgresStore``), a schema a project in one database;
* ``schema``: the tables and their migrations; ``records``: what the store gives and takes.

``open_store(settings)`` opens the configured store; ``SqliteStore.open(path)`` a SQLite file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kobo_tip.config import read_secret
from kobo_tip.store.interface import Store
from kobo_tip.store.records import (
    PROGRAMME_MEMBER,
    BatchOutcome,
    NewAnswer,
    RunInfo,
    StoreCounts,
    StoredRelease,
    StoredSubmission,
    SubmissionRow,
    utc_stamp,
)
from kobo_tip.store.runlog import INTERNAL_RELEASES_KEPT, INTERRUPTED, RETRIES_KEPT
from kobo_tip.store.schema import ANSWER_COLUMNS, SCHEMA_VERSION
from kobo_tip.store.sqlite import RENDER_LOCK_WAIT, SYNC_LOCK_WAIT, SqliteStore

if TYPE_CHECKING:
    from kobo_tip.config import Settings


def open_store(settings: Settings, *, create: bool = True, migrate: bool = False) -> Store:
    """The store ``[store]`` names: PostgreSQL's schema ``schema`` when ``url`` is set, else the SQLite
    file ``path``. ``create`` False: a store that does not exist yet is a StoreError."""
    location = settings.store.url or settings.store.path
    return open_location(location, settings, create=create, migrate=migrate)


def open_location(
    location: str | Path,
    settings: Settings,
    *,
    schema: str = "",
    create: bool = True,
    migrate: bool = False,
) -> Store:
    """The store at ``location``: a ``postgresql://`` URL (its ``schema``, default ``[store] schema``,
    with the password of ``[store] password_env``), or a SQLite file's path."""
    if not str(location).startswith(("postgresql://", "postgres://")):
        return SqliteStore.open(location, create=create, migrate=migrate)
    from kobo_tip.store.postgres import PostgresStore  # psycopg only for who needs it  # noqa: PLC0415

    password = settings.store.password_env
    return PostgresStore.connect(
        str(location),
        schema or settings.store.schema,
        create=create,
        migrate=migrate,
        password=read_secret(password, "the PostgreSQL store's password") if password else "",
    )


__all__ = [
    "ANSWER_COLUMNS",
    "INTERNAL_RELEASES_KEPT",
    "INTERRUPTED",
    "PROGRAMME_MEMBER",
    "RENDER_LOCK_WAIT",
    "RETRIES_KEPT",
    "SCHEMA_VERSION",
    "SYNC_LOCK_WAIT",
    "BatchOutcome",
    "NewAnswer",
    "RunInfo",
    "SqliteStore",
    "Store",
    "StoreCounts",
    "StoredRelease",
    "StoredSubmission",
    "SubmissionRow",
    "open_location",
    "open_store",
    "utc_stamp",
]
