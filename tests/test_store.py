"""The SQLite store: private files, atomic batches, classification, run log, publications, locking."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import version_2_store
from kobo_tip import readability
from kobo_tip.config import load_settings
from kobo_tip.errors import StoreError
from kobo_tip.store import (
    ANSWER_COLUMNS,
    SCHEMA_VERSION,
    BatchOutcome,
    SqliteStore,
    Store,
    SubmissionRow,
    utc_stamp,
)
from kobo_tip.store import postgres as postgres_module
from kobo_tip.store import sqlite as store_module
from kobo_tip.store.postgres import PostgresStore


def row(sid: str, version: str = "v1", status: str | None = None, content: str = "a") -> SubmissionRow:
    data = json.dumps({"event/event_date": "2026-01-02", "note": content}, sort_keys=True)
    return SubmissionRow(
        submission_id=sid,
        version_id=version,
        review_status=status,
        submitted_at="2026-01-03T04:05:06",
        form_version="20251001000000",
        person_key=f"key-{sid}",
        key_basis="uic",
        key_reason="",
        data_json=data,
        answer_codes=answers_of(event_date="2026-01-02"),  # answers until apply() codes them
    )


def answers_of(**by_field: str) -> list[str | None]:
    """A row's answers: one for each of ANSWER_COLUMNS, None unanswered."""
    return [by_field.get(field) for field in ANSWER_COLUMNS]


def apply(store: Store, rows: list[SubmissionRow], **options: Any) -> BatchOutcome:
    """``store.apply_batch`` with the rows' answers coded as a sync codes them."""
    codes = store.answer_codes()
    coded = [row._replace(answer_codes=codes.encode(row.answer_codes)) for row in rows]
    return store.apply_batch(coded, new_answers=codes.take_added(), **options)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Raw:
    """A second connection to a store's own tables, with ``?`` parameters, outside kobo-tip's
    transactions: what another program (or a hand in psql) could do to them."""

    def __init__(self, store: Store) -> None:
        if isinstance(store, PostgresStore):
            connection = psycopg.connect(store.url, autocommit=True)
            connection.execute(f"SET search_path TO {store.schema}")
            self.db: Any = postgres_module._Connection(connection)
            self.close = connection.close
        else:
            self.db = sqlite3.connect(store.path, isolation_level=None)
            self.close = self.db.close

    def execute(self, query: str, params: Any = ()) -> Any:
        return self.db.execute(query, params)

    def executemany(self, query: str, rows: Any) -> Any:
        return self.db.executemany(query, rows)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A new store on each back end: a SQLite file, and a schema of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        opened: Store = SqliteStore.open(tmp_path / "data" / "store.sqlite")
    else:
        opened = PostgresStore.connect(request.getfixturevalue("pg_database"), "project_a")
    with opened:
        yield opened


def test_the_store_and_its_wal_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "kobo-tip.sqlite"
        with SqliteStore.open(path) as store:
            run = store.begin_run("test")
            apply(store, [row("1")], run_id=run)
            wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
            assert wal.exists() and shm.exists()
            assert mode(path) == 0o600 and mode(wal) == 0o600 and mode(shm) == 0o600
            with store.lock_for_sync():
                assert mode(Path(f"{path}.lock")) == 0o600
        assert mode(path.parent) == 0o700
        assert os.umask(0o022) == 0o022  # opening restored the caller's umask
    finally:
        os.umask(old)


def test_a_file_made_with_another_page_size_keeps_it_and_works(tmp_path: Path) -> None:
    path = tmp_path / "kobo-tip.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size = 4096")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE other (x)")
    db.close()
    with SqliteStore.open(path) as store:
        apply(store, [row("1")], run_id=store.begin_run("test"))
        assert [s.submission_id for s in store.submissions()] == ["1"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
    db.close()


def test_a_back_end_missing_a_method_cannot_be_made() -> None:
    class Unfinished(Store):  # gives none of what a back end must
        _db = None

    with pytest.raises(TypeError, match="abstract") as refused:
        Unfinished()
    for method in ("_transaction", "_reading", "_damaged", "_chunk_query", "_chunk_codes", "lock_for_sync"):
        assert method in str(refused.value)
    assert not SqliteStore.__abstractmethods__ and not PostgresStore.__abstractmethods__


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    SqliteStore.open(tmp_path / "store.sqlite").close()
    db = sqlite3.connect(tmp_path / "store.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA page_size").fetchone()[0] == 16384
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
        store_module.SCHEMA_VERSION
    )
    db.close()


def test_a_store_of_another_schema_version_or_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SqliteStore.open(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore.open(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(StoreError, match=f"{junk} is not a kobo-tip store"):
        SqliteStore.open(junk)
    with pytest.raises(StoreError, match="run 'kobo-tip sync' first"):
        SqliteStore.open(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()


def test_batches_classify_new_edited_unchanged_deleted_restored(store: Store) -> None:
    run = store.begin_run("test")
    first = apply(store, [row("1"), row("2"), row("3", status="approved")], run_id=run, fetched=3)
    assert (first.new, first.edited, first.unchanged, first.restored) == (3, 0, 0, 0)
    second = apply(
        store,
        [row("1"), row("2", version="v2"), row("3", content="b"), row("4")],
        run_id=run,
        deleted=["1", "404"],
        fetched=4,
    )
    assert (second.new, second.edited, second.unchanged, second.deleted) == (1, 2, 1, 1)
    assert set(store.known()) == {"2", "3", "4"}
    assert store.known()["2"].version_id == "v2"
    assert store.known()["3"].review_status == "approved"  # None kept the stored status
    third = apply(store, [row("1")], run_id=run, deleted=["1"])
    # "1" reappears (new again), then the same batch deletes it: deletions apply after upserts.
    assert (third.new, third.restored, third.deleted) == (1, 1, 1)
    fourth = apply(store, [row("1")], run_id=run)
    assert fourth.new == 1
    by_id = {s.submission_id: s for s in store.submissions()}
    assert by_id["1"].deleted is False and by_id["2"].version_id == "v2"
    assert by_id["3"].data == {"event/event_date": "2026-01-02", "note": "b"}
    [info] = store.runs(1)
    assert (info.fetched, info.new, info.edited, info.unchanged, info.deleted) == (7, 6, 2, 1, 2)


def push(store: Store, rows: list[SubmissionRow]) -> BatchOutcome:
    """``store.apply_pushed`` with the rows' answers coded as the push writer codes them."""

    def make_rows(codes: Any) -> tuple[list[SubmissionRow], list[Any]]:
        coded = [row._replace(answer_codes=codes.encode(row.answer_codes)) for row in rows]
        return coded, codes.take_added()

    return store.apply_pushed(make_rows)


def test_a_push_never_brings_back_what_a_sync_found_deleted_but_the_servers_listing_does(
    store: Store,
) -> None:
    run = store.begin_run("test")
    apply(store, [row("1"), row("2")], run_id=run)
    apply(store, [], run_id=run, deleted=["1"], reconciled=True)  # a reconcile: gone from Kobo
    # Kobo retries an old push of "1" (as it was before, then edited): stale, dropped whole.
    alone = push(store, [row("1")])
    assert alone.stale == ["1"] and (alone.new, alone.edited, alone.unchanged) == (0, 0, 0)
    mixed = push(store, [row("1", version="v2", content="b"), row("2", version="v2"), row("3")])
    assert mixed.stale == ["1"] and (mixed.new, mixed.edited) == (1, 1)
    by_id = {s.submission_id: s for s in store.submissions()}
    assert by_id["1"].deleted and by_id["1"].version_id == "v1" and by_id["1"].data["note"] == "a"
    assert set(store.known()) == {"2", "3"}
    assert store.pushes()[1] == 2, "only the stored pushes are counted"
    (deleted_at,) = store._db.execute(
        "SELECT deleted_at FROM submissions WHERE submission_id = '1'"
    ).fetchone()
    assert store.deleted_since(deleted_at) == ["1"] and store.deleted_since("9999-12-31T23:59:59Z") == []
    # The server's own listing stays the truth: a sync that lists "1" again (a restore on ODK
    # Central) stores it again, and a push of it is then an ordinary edit.
    assert apply(store, [row("1")], run_id=run).new == 1
    assert store.deleted_since("2000-01-01T00:00:00Z") == []
    after = push(store, [row("1", version="v3")])
    assert after.stale == [] and after.edited == 1
    assert {s.submission_id: s.version_id for s in store.submissions()}["1"] == "v3"


@pytest.mark.parametrize("order", ["new first", "stored first"])
def test_a_batch_of_new_and_stored_ids_after_new_ones_writes_each_row_once(store: Store, order: str) -> None:
    run = store.begin_run("test")
    apply(store, [row("1"), row("2")], run_id=run)  # all new: the next batch is first tried as such
    batch = [row("3"), row("2", version="v2"), row("007")]
    outcome = apply(store, batch if order == "new first" else batch[::-1], run_id=run)
    assert (outcome.new, outcome.edited, outcome.unchanged) == (2, 1, 0)
    db = Raw(store)
    stored = db.execute("SELECT row_id, submission_id, id_order, version_id FROM submissions ORDER BY row_id")
    rows = stored.fetchall()
    data_ids = [row_id for (row_id,) in db.execute("SELECT row_id FROM submission_data ORDER BY row_id")]
    db.close()
    assert [r[0] for r in rows] == [1, 2, 3, 4] == data_ids  # no row or gap left by the first try
    by_id = {sid: (id_order, version) for _, sid, id_order, version in rows}
    assert by_id == {"1": (1, "v1"), "2": (2, "v2"), "3": (3, "v1"), "007": (7, "v1")}
    again = apply(store, [row("5"), row("x-6")], run_id=run)  # after a batch with stored ids
    assert again.new == 2 and {s.submission_id for s in store.submissions()} >= {"5", "x-6"}


def test_review_status_changes_are_counted_apart_from_edits(store: Store) -> None:
    run = store.begin_run("test")
    apply(store, [row("1"), row("2"), row("3")], run_id=run)
    outcome = apply(
        store,
        [row("1", status="approved"), row("2", status="unreviewed")],
        run_id=run,
        review_statuses={"3": "rejected", "missing": "approved"},
    )
    assert (outcome.edited, outcome.unchanged, outcome.status_changed) == (0, 2, 2)
    statuses = {s.submission_id: s.review_status for s in store.submissions()}
    assert statuses == {"1": "approved", "2": "unreviewed", "3": "rejected"}
    again = apply(store, [], run_id=run, review_statuses={"3": "rejected"})
    assert again.status_changed == 0


def test_unchanged_rows_are_not_rewritten_but_a_new_person_key_is_applied(store: Store) -> None:
    run = store.begin_run("test")
    apply(store, [row("1"), row("2")], run_id=run)
    db = Raw(store)
    before = db.execute("SELECT last_seen FROM submissions WHERE submission_id = '1'").fetchone()
    db.execute("UPDATE submissions SET last_seen = 'marker'")
    rekeyed = row("2")._replace(person_key="key-new", key_basis="case_ref", key_reason="why")
    outcome = apply(store, [row("1"), rekeyed], run_id=run)
    assert (outcome.unchanged, outcome.edited, outcome.status_changed) == (2, 0, 0)
    by_id = {s.submission_id: s for s in store.submissions()}
    assert (by_id["2"].person_key, by_id["2"].key_basis, by_id["2"].key_reason) == (
        "key-new",
        "case_ref",
        "why",
    )
    assert db.execute("SELECT DISTINCT last_seen FROM submissions").fetchall() == [("marker",)]
    assert before[0].endswith("Z")
    db.close()


def test_a_failure_inside_a_batch_lands_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    run = store.begin_run("test")
    apply(store, [row("1")], run_id=run, watermarks={"_id": "1"}, fetched=1)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "_mark_deleted", broken)
    with pytest.raises(RuntimeError):
        apply(
            store,
            [row("2"), row("1", version="v2")],
            run_id=run,
            deleted=["1"],
            watermarks={"_id": "2"},
            reconciled=True,
            fetched=2,
        )
    assert store.watermark("_id") == "1"
    assert store.last_reconcile() is None
    assert {s.submission_id: s.version_id for s in store.submissions()} == {"1": "v1"}
    assert store.runs(1)[0].fetched == 1  # the run counters roll back with the batch


def test_answer_codes_made_by_a_failed_batch_are_not_reused(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = store.begin_run("test")
    apply(store, [answered("1", "female")], run_id=run)
    real = Store._set_statuses

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "_set_statuses", broken)
    with pytest.raises(RuntimeError):  # "male" got a code in memory, then the batch rolled back
        apply(store, [answered("2", "male")], run_id=run, review_statuses={"1": "approved"})
    monkeypatch.setattr(Store, "_set_statuses", real)
    apply(store, [answered("3", "unknown"), answered("4", "male")], run_id=run)

    table = store.answer_table()
    genders = [table.values["gender"][code] for code in table.codes["gender"]]
    by_id = dict(zip(table.submission_id, genders, strict=True))
    assert by_id == {"1": "female", "3": "unknown", "4": "male"}


def test_a_batch_whose_new_codes_clash_with_the_saved_ones_is_refused_whole(store: Store) -> None:
    run = store.begin_run("test")
    stale = store.answer_codes()  # read before the next batch saved codes of its own
    apply(store, [answered("1", "female")], run_id=run)
    late = answered("2", "male")
    coded = late._replace(answer_codes=stale.encode(late.answer_codes))
    with pytest.raises(StoreError, match="clash with those saved"):
        store.apply_batch([coded], run_id=run, new_answers=stale.take_added())
    assert [s.submission_id for s in store.submissions()] == ["1"]
    assert store.answer_codes().values["gender"] == [None, "female"]


def answered(sid: str, gender: str) -> SubmissionRow:
    return row(sid)._replace(answer_codes=answers_of(event_date="2026-01-02", gender=gender))


def test_watermarks_and_reconcile_time_are_saved_with_the_batch(store: Store) -> None:
    run = store.begin_run("test")
    assert store.watermark("_id") is None
    apply(store, [row("7")], run_id=run, watermarks={"_id": "7"})
    apply(store, [], run_id=run, watermarks={"_id": "9", "other": "x"}, reconciled=True)
    assert store.watermark("_id") == "9" and store.watermark("other") == "x"
    reconciled = store.last_reconcile()
    assert reconciled is not None and reconciled <= utc_stamp()


def test_submissions_stream_and_filter_deleted(store: Store) -> None:
    run = store.begin_run("test")
    apply(store, [row(str(i)) for i in range(5000)], run_id=run, deleted=["10", "20"])
    streamed = store.submissions()
    first = next(streamed)
    assert first.submission_id == "0" and first.person_key == "key-0" and first.key_basis == "uic"
    assert sum(1 for _ in streamed) == 4999
    assert sum(1 for _ in store.submissions(include_deleted=False)) == 4998
    assert {s.submission_id for s in store.submissions() if s.deleted} == {"10", "20"}


def test_counts_summarise_the_store(store: Store) -> None:
    run = store.begin_run("test")
    rows = [row("1", status="approved"), row("2"), row("3", status="rejected")]
    apply(store, rows, run_id=run, deleted=["3"], watermarks={"_id": "3"})
    counts = store.counts()
    assert (counts.submissions, counts.deleted) == (2, 1)
    assert counts.by_review_status == {"approved": 1, "unreviewed": 1}
    assert counts.by_key_basis == {"uic": 2}
    assert counts.first_submitted_at == counts.last_submitted_at == "2026-01-03T04:05:06"
    assert counts.watermarks == {"_id": "3"} and counts.last_reconcile is None


def test_run_log_keeps_every_run_newest_first(store: Store) -> None:
    first = store.begin_run("file a.json", started="2026-01-01T00:00:00Z")
    store.finish_run(first, seconds=1.23456)
    second = store.begin_run("file b.json", started="2026-02-01T00:00:00Z")
    store.finish_run(second, seconds=0.5, error="The export file x does not exist.")
    latest, older = store.runs(10)
    assert (latest.id, latest.source, latest.error) == (
        second,
        "file b.json",
        "The export file x does not exist.",
    )
    assert (older.seconds, older.error, older.finished is not None) == (1.235, None, True)
    assert [r.id for r in store.runs_since("2026-01-15T00:00:00Z")] == [second]
    assert [r.id for r in store.runs_since("2025-12-31T00:00:00+00:00")] == [first, second]
    assert len(store.runs(1)) == 1


def test_releases_come_back_oldest_first_and_internal_keeps_the_last_few(store: Store) -> None:
    assert store.releases("donor") == [] and store.releases("donor", last=True) == []
    cells = {"indicator": ["identified"], "value": [3], "published": ["<5"]}
    store.save_release(
        "donor", k=5, through="2026-03-31", last_run=1, cells=cells, released_at="2026-04-05T10:00:00Z"
    )
    store.save_release("donor", k=5, through="2026-06-30", last_run=2, cells={**cells, "value": [4]})
    store.save_release(
        "public", k=10, through="2026-06-30", last_run=2, cells={**cells, "published": ["<10"]}
    )
    first, second = store.releases("donor")
    assert (first.k, first.through, first.last_run, first.released_at) == (
        5,
        "2026-03-31",
        1,
        "2026-04-05T10:00:00Z",
    )
    assert first.cells == cells and second.cells["value"] == [4]
    assert store.releases("donor", last=True) == [second]
    assert store.releases("public")[0].cells["published"] == ["<10"]
    for run in range(8):  # an outside release is history the audit needs: all are kept; internal ones are not
        store.save_release("internal", k=0, through="2026-06-30", last_run=run, cells=cells)
    kept = store.releases("internal")
    assert [r.last_run for r in kept] == [3, 4, 5, 6, 7]


def test_a_cut_release_history_is_found_refused_and_stays_visible_in_a_copy(
    store: Store, tmp_path: Path
) -> None:
    from kobo_tip.store.copy import copy_store

    cells = {"indicator": ["identified"], "value": [3], "published": ["<5"]}
    for through in ("2026-03-31", "2026-06-30", "2026-09-30"):
        store.save_release("donor", k=5, through=through, last_run=1, cells=cells)
    store.save_release("public", k=10, through="2026-09-30", last_run=1, cells=cells)
    for run in range(7):
        store.save_release("internal", k=0, through="2026-09-30", last_run=run, cells=cells)
    assert store.lost_releases() == {}, "pruned internal renders are no loss"
    # Removed behind kobo-tip's back (a SQLite file edited, PostgreSQL's owner), the newest first.
    newest = max(r.id for r in store.releases("donor"))
    with store._transaction():
        store._db.execute("DELETE FROM releases WHERE id = ?", (newest,))
    assert store.lost_releases() == {"donor": (3, 2)}
    with pytest.raises(StoreError, match=r"donor release history of .* was cut: 3 outside release\(s\) "):
        store.releases("donor")
    assert len(store.releases("public")) == 1 and len(store.releases("internal")) == 5
    with SqliteStore.open(tmp_path / "copy.sqlite") as copied:
        copy_store(store, copied)
        assert copied.lost_releases() == {"donor": (3, 2)}, "the copy says what the original lost"


def test_a_version_2_store_is_refused_until_migrated_and_loses_its_publications(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    version_2_store(path)
    with pytest.raises(StoreError, match=r"schema version 2.*run 'kobo-tip store migrate'"):
        SqliteStore.open(path)
    with SqliteStore.open(path, migrate=True) as store:
        assert store.schema_version() == SCHEMA_VERSION and store.releases("donor") == []
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "publications" not in tables and "releases" in tables


def reopen(store: Store) -> Store:
    """Another connection to the same store, as a second kobo-tip process would open it."""
    if isinstance(store, PostgresStore):
        return PostgresStore.connect(store.url, store.schema)
    return SqliteStore.open(store.path)


def test_a_second_sync_lock_waits_then_names_the_holder(store: Store) -> None:
    if isinstance(store, PostgresStore):
        opening = f"PostgresStore.connect({store.url!r}, {store.schema!r})"
        holder_named = r"server process \d+"
    else:
        opening = f"SqliteStore.open({str(store.path)!r})"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from kobo_tip.store import SqliteStore
                from kobo_tip.store.postgres import PostgresStore
                with {opening} as s, s.lock_for_sync():
                    print("locked", flush=True)
                    time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    if not isinstance(store, PostgresStore):
        holder_named = f"process {holder.pid}"
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(StoreError, match=holder_named), store.lock_for_sync(wait=0.5):
            pass
        assert time.monotonic() - started >= 0.5
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10  # PostgreSQL ends the dead client's session a moment later
    while True:
        try:
            with store.lock_for_sync(wait=0.5):  # the dead holder's lock is gone
                break
        except StoreError:
            assert time.monotonic() < deadline


def test_a_second_sync_lock_gets_it_when_the_first_ends_in_time(store: Store) -> None:
    order: list[str] = []
    locked = threading.Event()

    def first() -> None:
        with reopen(store) as other, other.lock_for_sync():
            locked.set()
            time.sleep(0.4)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    locked.wait(5)
    with store.lock_for_sync(wait=5):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_readers_see_the_last_commit_while_a_writer_holds_a_transaction(store: Store) -> None:
    run = store.begin_run("test")
    apply(store, [row("1")], run_id=run)
    writer = Raw(store)
    writer.execute("BEGIN")
    writer.execute("UPDATE submissions SET version_id = 'uncommitted'")
    assert [s.version_id for s in store.submissions()] == ["v1"]
    writer.execute("ROLLBACK")
    writer.close()


def test_a_write_while_another_writer_holds_the_store_waits_for_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(postgres_module, "_WRITE_WAIT_MS", 200)
    with reopen(store) as impatient:
        blocker = Raw(store)
        if isinstance(store, PostgresStore):  # what a writer of the project holds while it writes
            blocker.execute("BEGIN")
            blocker.execute("SELECT pg_advisory_xact_lock(?, 1)", (store._lock_class,))
        else:
            blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="is busy: another kobo-tip process"):
            impatient.begin_run("blocked")
        blocker.execute("ROLLBACK")
        blocker.close()
        assert impatient.begin_run("now free") > 0


def test_answer_codes_past_the_surrogate_block_read_back_exactly(store: Store) -> None:
    run = store.begin_run("test")
    apply(store, [row("1"), row("2"), row("3")], run_id=run)
    db = Raw(store)
    # 60,000 distinct answers to one field: codes cross U+D800..U+DFFF, which UTF-8 cannot carry.
    db.executemany(
        "INSERT INTO answer_values VALUES ('age_years', ?, ?)",
        ((code, store._answer_param(str(code))) for code in range(1, 60_001)),
    )
    db.execute(
        "UPDATE submissions SET age_years = CASE row_id WHEN 1 THEN 55296 WHEN 2 THEN 60000 ELSE 7 END"
    )
    db.close()
    table = store.answer_table()
    assert list(table.codes["age_years"]) == [55_296, 60_000, 7]
    assert [table.values["age_years"][code] for code in table.codes["age_years"]] == ["55296", "60000", "7"]
    assert list(table.codes["event_date"]) == [1, 1, 1] and table.values["event_date"] == [None, "2026-01-02"]


def test_the_unreadable_share_and_its_acceptance_are_kept_in_meta(store: Store, make_project: Any) -> None:
    settings = load_settings(make_project())
    assert readability.recorded(store) is None and readability.accepted(store) is None
    low = readability.Readability(rows=300, unreadable=3, reasons=(("event_date", 3),))
    assert readability.hold_reason(store, settings, low, accept=False) is None
    assert readability.recorded(store) == low
    high = readability.Readability(rows=300, unreadable=268, reasons=(("consent", 268),))
    reason = readability.hold_reason(store, settings, high, accept=False)
    assert reason is not None and "268 of 300 submissions (89.3%)" in reason
    assert "--accept-unreadable" in reason
    assert readability.accepted(store) is None  # held: nothing accepted
    assert readability.hold_reason(store, settings, high, accept=True) is None
    assert readability.accepted(store) == 268
    # Accepted until more rows are unreadable than the officer looked at.
    assert readability.hold_reason(store, settings, high, accept=False) is None
    worse = dataclasses.replace(high, rows=310, unreadable=278)
    assert readability.hold_reason(store, settings, worse, accept=False) is not None
    assert readability.recorded(store) == worse


def test_the_rows_changed_after_a_mark_are_every_write_since_and_no_other(store: Store) -> None:
    run = store.begin_run("test")
    apply(store, [row(str(n)) for n in range(1, 8)], run_id=run)
    mark, table = store.answer_changes(None)
    assert len(table) == 7 and mark > 0
    assert store.answer_changes(mark)[0] == mark and len(store.answer_changes(mark)[1]) == 0

    apply(store, [row("2", version="v2")], run_id=run)  # an edit
    apply(store, [row("3")._replace(person_key="other", key_reason="a\x1fb")], run_id=run)  # a new key
    apply(store, [row("4")], run_id=run, review_statuses={"5": "approved"}, deleted=["6"])
    push(store, [row("8")])  # a new one pushed
    apply(store, [row("1")], run_id=run)  # the same copy again: not a change
    later, changed = store.answer_changes(mark)
    assert later > mark
    assert changed.submission_id == ["2", "3", "5", "6", "8"], "in row order, each once"
    assert changed.key_reason[1] == "a\x1fb", "a value holding the separator is read row by row"
    assert changed.review_status[2] == "approved" and changed.deleted.tolist() == [False] * 3 + [True, False]
    whole = store.answer_table()
    at = {sid: n for n, sid in enumerate(whole.submission_id)}
    for field, codes in changed.codes.items():
        assert codes.tolist() == [whole.codes[field][at[sid]] for sid in changed.submission_id]
    assert len(store.answer_changes(later)[1]) == 0
    assert [s.submission_id for s in store.submissions(changed_after=mark)] == ["2", "3", "5", "6", "8"]
