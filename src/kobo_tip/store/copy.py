"""``kobo-tip store copy``: a whole store into an empty one of either back end, proven by each
table's row count and a SHA-256 of its rows, read back from both sides."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kobo_tip.answers import answer_key
from kobo_tip.errors import StoreError
from kobo_tip.store.interface import Store

# Every table, the columns that order its rows; answer_values' value is compared as the answer.
TABLES = {
    "meta": "key",
    "answer_values": "field, code",
    "submissions": "row_id",
    "submission_data": "row_id",
    "watermarks": "name",
    "sync_state": "key",
    "runs": "id",
    "releases": "id",
    "ledger_quarters": "indicator, quarter",
    "ledger_cells": "indicator, quarter, dimension, category",
    "ledger_persons": "indicator, person_key",
    # After releases, whose copy the target's trigger counted: the source's marks replace the count
    # (a history cut before the copy stays visible in the copy).
    "release_marks": "audience",
}
# meta keys each store keeps its own of: the schema's version, a PostgreSQL project's lock key.
OWN_META = ("schema_version", "lock_key")
_BATCH = 5_000


@dataclass(frozen=True)
class TableCheck:
    table: str
    rows: int
    sha256: str


def copy_store(source: Store, target: Store) -> list[TableCheck]:
    """Copy every row of ``source`` into ``target``, which must hold no submission and no run;
    returns the checks both sides agreed on. Raises StoreError when they do not."""
    if target.counts().submissions or target.counts().deleted or target.runs(1):
        raise StoreError(f"{target.path} already holds a store: copy only into an empty one.")
    with source._reading(), target._transaction():
        for table, order in TABLES.items():
            if table == "meta":  # the target has its own OWN_META; the rest (the secret's mark) moves
                rows = [r for r in _rows(source, table, order) if r[0] not in OWN_META]
                target._db.executemany("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", rows)
                continue
            if table == "release_marks":
                target._db.executemany(
                    "INSERT INTO release_marks (audience, released) VALUES (?, ?) "
                    "ON CONFLICT (audience) DO UPDATE SET released = excluded.released",
                    list(_rows(source, table, order)),
                )
                continue
            columns = _columns(source, table)
            insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            batch: list[tuple[Any, ...]] = []
            for read in _rows(source, table, order):
                row = read
                if table == "answer_values":  # code, field, value in name order
                    row = (*read[:2], target._answer_param(answer_key(source._answer_value(read[2]))))
                batch.append(row)
                if len(batch) == _BATCH:
                    target._db.executemany(insert, batch)
                    batch = []
            if batch:
                target._db.executemany(insert, batch)
        target._after_copy()
    ours, theirs = checks(source), checks(target)
    if ours != theirs:
        differ = [a.table for a, b in zip(ours, theirs, strict=True) if a != b]
        raise StoreError(f"The copy in {target.path} differs from {source.path} in {', '.join(differ)}.")
    return ours


def checks(store: Store) -> list[TableCheck]:
    """Each table's row count and the SHA-256 of its rows, in key order, as the back end reads them
    (answers compared as answers, blobs as bytes, numbers as numbers)."""
    found = []
    with store._reading():
        for table, order in TABLES.items():
            digest, count = hashlib.sha256(), 0
            for read in _rows(store, table, order):
                if table == "meta" and read[0] in OWN_META:
                    continue
                row = read
                if table == "answer_values":
                    row = (*read[:2], store._answer_value(read[2]))
                digest.update(repr(tuple(_plain(value) for value in row)).encode())
                count += 1
            found.append(TableCheck(table, count, digest.hexdigest()))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, bool):  # PostgreSQL's booleans are SQLite's 0 and 1
        return int(value)
    return value


def _columns(store: Store, table: str) -> list[str]:
    """The table's columns in name order: a migrated SQLite file has them in another order than a
    new store, and the checks compare the same columns in the same order."""
    cursor = store._db.execute(f"SELECT * FROM {table} WHERE 1 = 0")
    return sorted(column[0] for column in cursor.description)


def _rows(store: Store, table: str, order: str) -> Iterator[tuple[Any, ...]]:
    columns = ", ".join(f'"{name}"' for name in _columns(store, table))
    cursor = store._db.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")
    while rows := cursor.fetchmany(_BATCH):
        yield from (tuple(row) for row in rows)
