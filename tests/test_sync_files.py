"""run_sync with the file source: edits, deletions, re-appearance, privacy, atomicity, locking."""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kobo_tip import cli
from kobo_tip import sync as sync_module
from kobo_tip.answers import AnswerCodes, SubmissionReader
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import SecretMissingError, SourceError, StoreError
from kobo_tip.person_key import person_key
from kobo_tip.rows import prepare_row, stored_json, submission_reader
from kobo_tip.sources import Batch, RawSubmission, SyncState
from kobo_tip.store import ANSWER_COLUMNS, INTERRUPTED, Store, StoredSubmission, open_store, utc_stamp
from kobo_tip.store import sqlite as store_module
from kobo_tip.sync import SyncSummary, few_collections, reconcile_is_due, run_sync
from test_files_source import kobo_submission

UIC_VALUES = ("Xylophona", "Quokkamum")  # distinctive, so a byte scan cannot match by chance


@pytest.fixture
def project(make_project: Callable[..., Path], secret: str) -> Settings:
    return load_settings(make_project())


def export(settings: Settings, rows: list[dict[str, Any]]) -> None:
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    settings.source.path.write_text(json.dumps({"count": len(rows), "results": rows}), encoding="utf-8")


def stored(settings: Settings) -> dict[str, StoredSubmission]:
    with open_store(settings) as store:
        return {s.submission_id: s for s in store.submissions()}


def counts(summary: SyncSummary) -> tuple[int, int, int, int, int]:
    return summary.new, summary.edited, summary.unchanged, summary.deleted, summary.status_changed


def test_a_first_sync_stores_every_submission_keyed_and_without_uic(project: Settings, secret: str) -> None:
    rows = [kobo_submission(sid) for sid in range(1, 6)]
    export(project, rows)
    summary = run_sync(project, progress=False)
    assert counts(summary) == (5, 0, 0, 0, 0) and summary.fetched == 5
    held = stored(project)
    assert sorted(held, key=int) == ["1", "2", "3", "4", "5"]
    one = held["1"]
    expected_key = person_key(rows[0], "1", secret.encode())
    assert (one.person_key, one.key_basis, one.key_reason) == (expected_key.key, "uic", "")
    assert "person/uic_given" not in one.data and "person/uic_mother" not in one.data
    assert one.data["person/birth_year"] == rows[0]["person/birth_year"]
    assert "_validation_status" not in one.data  # the review_status column holds it
    assert (one.version_id, one.submitted_at, one.review_status) == (
        rows[0]["_uuid"],
        rows[0]["_submission_time"],
        "unreviewed",
    )
    assert summary.line().startswith(f"Synced file {project.source.path}: 5 new, 0 edited, 0 deleted")


def test_rerun_edit_delete_status_and_reappearance(project: Settings) -> None:
    rows = [kobo_submission(sid) for sid in range(1, 6)]
    export(project, rows)
    run_sync(project, progress=False)
    # --full: an unchanged file is otherwise not read again
    assert counts(run_sync(project, progress=False, full=True)) == (0, 0, 5, 0, 0)  # never duplicates

    rows[1] = kobo_submission(2, version="v2", event_date="2026-02-14")  # edited on the server
    rows[2] = kobo_submission(3, status="approved")  # reviewed only
    del rows[3]  # submission 4 deleted on the server
    export(project, rows)
    assert counts(run_sync(project, progress=False)) == (0, 1, 3, 1, 1)
    held = stored(project)
    assert held["2"].version_id == rows[1]["_uuid"] and held["2"].data["event/event_date"] == "2026-02-14"
    assert held["3"].review_status == "approved"
    assert held["4"].deleted and not held["5"].deleted and len(held) == 5

    rows.append(kobo_submission(4))  # restored on the server
    export(project, rows)
    assert counts(run_sync(project, progress=False)) == (1, 0, 4, 0, 0)
    assert not stored(project)["4"].deleted

    with open_store(project) as store:
        history = store.runs(10)
    assert [(r.new, r.edited, r.deleted, r.status_changed) for r in history] == [
        (1, 0, 0, 0),
        (0, 1, 1, 1),
        (0, 0, 0, 0),
        (5, 0, 0, 0),
    ]
    assert all(r.error is None and r.finished and r.source == f"file {project.source.path}" for r in history)


def test_uic_parts_and_the_secret_never_reach_the_store_files(project: Settings, secret: str) -> None:
    rows = [kobo_submission(sid, uic_given=UIC_VALUES[0], uic_mother=UIC_VALUES[1]) for sid in range(1, 40)]
    export(project, rows)
    # An open reader keeps the WAL file from being checkpointed away when the sync closes the store.
    with open_store(project):
        run_sync(project, progress=False)
        rows[0] = kobo_submission(1, version="v2", uic_given=UIC_VALUES[0], uic_mother=UIC_VALUES[1])
        export(project, rows)
        run_sync(project, progress=False, full=True)
        wal = Path(f"{project.store.path}-wal")
        assert wal.stat().st_size > 0
        contents = project.store.path.read_bytes() + wal.read_bytes()
    assert b"person/birth_year" in contents  # the scan does see the stored answers
    for needle in (*UIC_VALUES, secret):
        assert needle.encode() not in contents
        assert needle.encode("utf-16-le") not in contents
    with open_store(project) as store:
        assert all(secret not in str(run) for run in store.runs(10))


def test_the_secret_is_required_before_anything_is_touched(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(make_project())
    monkeypatch.delenv("KOBO_TIP_SECRET", raising=False)

    class Untouchable:
        kind = "test"

        def describe(self) -> str:
            raise AssertionError("the source was used without a secret")

    with pytest.raises(SecretMissingError, match="KOBO_TIP_SECRET"):
        run_sync(settings, source=Untouchable())  # type: ignore[arg-type]
    assert not settings.store.path.exists()


@pytest.mark.parametrize("weak", ["a", "s3cr3t-short", "x" * 19])
def test_a_short_secret_is_refused_with_how_to_make_one(
    project: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], weak: str
) -> None:
    export(project, [kobo_submission(1)])
    monkeypatch.setenv("KOBO_TIP_SECRET", weak)
    assert cli.main(["sync", "-c", str(project.path), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert f"KOBO_TIP_SECRET holds {len(weak)} characters" in err and "at least 20" in err
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in err
    assert "s3cr3t" not in err, "the secret is never echoed"
    assert not project.store.path.exists(), "nothing is keyed with a weak secret"
    monkeypatch.setenv("KOBO_TIP_SECRET", "x" * 20)
    assert cli.main(["sync", "-c", str(project.path), "--no-report"]) == 0


def test_a_different_secret_is_refused_instead_of_mixing_person_keys(
    project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    export(project, [kobo_submission(sid) for sid in range(1, 4)])
    run_sync(project, progress=False)
    before = {sid: s.person_key for sid, s in stored(project).items()}
    monkeypatch.setenv("KOBO_TIP_SECRET", "another-secret-of-20-or-more")
    with pytest.raises(StoreError, match="KOBO_TIP_SECRET is not the one the store"):
        run_sync(project, progress=False)
    assert {sid: s.person_key for sid, s in stored(project).items()} == before


class ScriptedSource:
    """A source that yields prepared batches, optionally failing or pausing between them.

    Tests that read what it records (``states``, ``started``) sync with ``parallel=False``: in the
    worker process it would record into the worker's copy.
    """

    kind = "test"

    def __init__(self, batches: list[Batch | Exception], pause: threading.Event | None = None) -> None:
        self.script = batches
        self.pause = pause
        self.started = threading.Event()
        self.states: list[SyncState] = []

    def describe(self) -> str:
        return "scripted test source"

    def batches(self, state: SyncState) -> Iterator[Batch]:
        self.states.append(state)
        for step in self.script:
            if isinstance(step, Exception):
                raise step
            yield step
            self.started.set()
            if self.pause is not None:
                assert self.pause.wait(10)


def raw(sid: int, version: str = "v1") -> RawSubmission:
    return RawSubmission(str(sid), version, None, "2026-01-03T00:00:00", "1", kobo_submission(sid))


def test_a_failing_source_keeps_committed_batches_and_records_the_error(project: Settings) -> None:
    source = ScriptedSource(
        [
            Batch(submissions=[raw(1), raw(2)], watermarks={"_id": "2"}),
            SourceError("HTTP 502 from the server, retried 5 times."),
        ]
    )
    with pytest.raises(SourceError):
        run_sync(project, source=source, progress=False)
    assert sorted(stored(project)) == ["1", "2"]
    with open_store(project) as store:
        assert store.watermark("_id") == "2"
        [run] = store.runs(1)
    assert run.error == "HTTP 502 from the server, retried 5 times." and run.new == 2 and run.finished


def test_a_sync_leaves_the_collector_alone_and_the_commands_settings_come_back(project: Settings) -> None:
    before = gc.get_threshold()
    seen: list[tuple[tuple[int, ...], int]] = []

    class Observing(ScriptedSource):
        def batches(self, state: SyncState) -> Iterator[Batch]:
            seen.append((gc.get_threshold(), gc.get_freeze_count()))
            yield from super().batches(state)

    # A library call (the service's poller makes one) changes nothing process-wide.
    run_sync(project, source=Observing([Batch(submissions=[raw(1)])]), progress=False, parallel=False)
    assert seen == [(before, 0)]
    # The sync command's entry holds fewer collections, and gives them back, even after a failure.
    with few_collections():
        run_sync(project, source=Observing([Batch(submissions=[raw(2)])]), progress=False, parallel=False)
    assert seen[1][0] != before and seen[1][1] > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(SourceError), few_collections():
        run_sync(project, source=ScriptedSource([SourceError("gone")]), progress=False)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_an_unexpected_failure_is_logged_by_type_only(project: Settings, secret: str) -> None:
    source = ScriptedSource([Batch(submissions=[raw(1)]), ValueError(f"leaky {secret} detail")])
    with pytest.raises(ValueError):
        run_sync(project, source=source, progress=False)
    with open_store(project) as store:
        [run] = store.runs(1)
    assert run.error == "unexpected ValueError (run with --debug for details)"


def test_a_batch_failing_inside_its_transaction_lands_nothing(
    project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ScriptedSource(
        [
            Batch(submissions=[raw(1)], watermarks={"_id": "1"}),
            Batch(
                submissions=[raw(2), raw(1, "v2")], deleted=["1"], watermarks={"_id": "2"}, reconciled=True
            ),
        ]
    )
    real = Store._mark_deleted

    def fail_on_second(self: Store, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        raise OSError("simulated crash after the deletions were written")

    monkeypatch.setattr(Store, "_mark_deleted", fail_on_second)
    with pytest.raises(OSError):
        run_sync(project, source=source, progress=False)
    held = stored(project)
    assert list(held) == ["1"] and held["1"].version_id == "v1" and not held["1"].deleted
    with open_store(project) as store:
        assert store.watermark("_id") == "1" and store.last_reconcile() is None


def test_reconcile_is_due_when_full_never_done_or_old(project: Settings) -> None:
    first = ScriptedSource([Batch(reconciled=True)])
    run_sync(project, source=first, progress=False, parallel=False)
    assert first.states[0].reconcile_due and not first.states[0].full
    second = ScriptedSource([Batch()])
    run_sync(project, source=second, progress=False, parallel=False)
    assert not second.states[0].reconcile_due  # reconciled moments ago, reconcile_hours = 24
    third = ScriptedSource([Batch()])
    run_sync(project, source=third, progress=False, full=True, parallel=False)
    assert third.states[0].full and third.states[0].reconcile_due
    assert reconcile_is_due("2026-01-01T00:00:00Z", 24, now=_at("2026-01-02T00:00:01+00:00"))
    assert not reconcile_is_due("2026-01-01T00:00:00Z", 24, now=_at("2026-01-01T23:59:59+00:00"))
    assert reconcile_is_due(None, 24)


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_a_second_concurrent_sync_fails_clearly_and_the_store_stays_consistent(
    project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "SYNC_LOCK_WAIT", 0.3)
    release = threading.Event()
    slow = ScriptedSource([Batch(submissions=[raw(1)]), Batch(submissions=[raw(2)])], pause=release)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            run_sync(project, source=slow, progress=False, parallel=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert slow.started.wait(10)
    try:
        with pytest.raises(StoreError, match="Another kobo-tip sync"):
            run_sync(
                project, source=ScriptedSource([Batch(submissions=[raw(3)])]), progress=False, parallel=False
            )
        # A report may read while the sync writes: it sees the committed first batch.
        assert list(stored(project)) == ["1"]
    finally:
        release.set()
        thread.join()
    assert not errors
    assert sorted(stored(project)) == ["1", "2"]
    with open_store(project) as store:
        assert [run.new for run in store.runs(10)] == [2]  # the refused sync wrote no run row


def test_a_second_sync_waits_for_a_short_first_one(project: Settings) -> None:
    release = threading.Event()
    slow = ScriptedSource([Batch(submissions=[raw(1)])], pause=release)
    thread = threading.Thread(
        target=run_sync, args=(project,), kwargs={"source": slow, "progress": False, "parallel": False}
    )
    thread.start()
    assert slow.started.wait(10)
    threading.Timer(0.3, release.set).start()
    summary = run_sync(
        project, source=ScriptedSource([Batch(submissions=[raw(2)])]), progress=False, parallel=False
    )
    thread.join()
    assert summary.new == 1 and sorted(stored(project)) == ["1", "2"]


def test_progress_bar_on_request_and_log_lines_otherwise(
    project: Settings,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export(project, [kobo_submission(sid) for sid in range(1, 4)])
    run_sync(project, progress=True)
    assert "3/3" in capsys.readouterr().err  # the file source tells how many rows: a bar with a total
    monkeypatch.setattr(sync_module, "_LOG_EVERY", 0.0)
    caplog.set_level(logging.DEBUG, logger="kobo_tip")
    summary = run_sync(project, progress=False, full=True)  # the unchanged file read again
    assert f"sync file {project.source.path}: 3 rows so far" in caplog.text
    assert summary.line() in caplog.messages
    assert "rows" not in capsys.readouterr().err  # no bar


def test_prepare_row_stores_one_json_whatever_the_review_state(secret: str) -> None:
    approved = kobo_submission(1, status="approved")
    plain = kobo_submission(1)
    a = prepare_row(_raw_of(approved), secret.encode(), _reader())
    b = prepare_row(_raw_of(plain), secret.encode(), _reader())
    assert a.data_json == b.data_json
    edited = prepare_row(_raw_of(kobo_submission(1, event_date="2026-03-01")), secret.encode(), _reader())
    assert edited.data_json != a.data_json
    assert json.loads(a.data_json)["event/event_date"] == plain["event/event_date"]
    odata = {"__id": "uuid:1", "__system": {"submissionDate": "2026-01-01T00:00:00Z"}, "meta": {}}
    reviewed = {**odata, "__system": {**odata["__system"], "reviewState": "hasIssues", "updatedAt": "x"}}
    first, second = (
        prepare_row(RawSubmission("uuid:1", "v", None, "", "", d), b"k", _reader()) for d in (odata, reviewed)
    )
    assert first.data_json == second.data_json
    assert json.loads(second.data_json)["__system"] == {"submissionDate": "2026-01-01T00:00:00Z"}


def test_stored_json_keeps_the_servers_key_order_and_writes_any_key_or_value() -> None:
    assert stored_json({"b": 1, "person/uic_given": "Ma", "a": [None]}) == b'{"b":1,"a":[null]}'
    # Not from a parsed JSON, but a hand-made export could hold them: numbers as keys, odd values.
    odd = {"when": dt.date(2026, 1, 2), 2: {1.5: "x"}}
    assert json.loads(stored_json(odd)) == {"when": "2026-01-02", "2": {"1.5": "x"}}


def _reader() -> SubmissionReader:
    return submission_reader(AnswerCodes(ANSWER_COLUMNS))


def _raw_of(data: dict[str, Any]) -> RawSubmission:
    return RawSubmission(str(data["_id"]), data["_uuid"], None, data["_submission_time"], "1", data)


def test_run_times_use_one_utc_format() -> None:
    assert utc_stamp("2026-01-02T03:04:05+07:00") == "2026-01-01T20:04:05Z"
    assert utc_stamp("2026-01-02T03:04:05") == "2026-01-02T03:04:05Z"


KILLABLE_SYNC = """
import sys, time
from kobo_tip.config import load_settings
from kobo_tip.sources.files import FileSource
from kobo_tip.sync import run_sync

class SlowFileSource(FileSource):
    def batches(self, state):
        for batch in super().batches(state):
            yield batch
            time.sleep(0.05)

settings = load_settings(sys.argv[1])
run_sync(settings, source=SlowFileSource(settings.source.path, batch_size=50), progress=False)
"""


@pytest.mark.slow
def test_a_sync_killed_mid_way_then_rerun_gives_the_uninterrupted_store(
    make_project: Callable[..., Path], secret: str
) -> None:
    rows = [
        kobo_submission(sid, status="approved" if sid % 7 == 0 else "unreviewed") for sid in range(1, 2001)
    ]
    killed_config, calm_config = make_project("killed"), make_project("calm")
    killed, calm = load_settings(killed_config), load_settings(calm_config)
    for settings in (killed, calm):
        export(settings, rows)
    run_sync(calm, progress=False)
    assert calm.store.path.exists()
    worker = subprocess.Popen([sys.executable, "-c", KILLABLE_SYNC, str(killed_config)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _committed_rows(killed.store.path) < 500:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait()
    partial = _committed_rows(killed.store.path)
    assert 500 <= partial < len(rows), "the sync was not killed mid-way"

    rerun = run_sync(killed, progress=False)
    assert (rerun.new, rerun.unchanged, rerun.edited) == (len(rows) - partial, partial, 0)
    assert _content(killed) == _content(calm)
    with open_store(killed) as store:
        latest, interrupted = store.runs(2)
    assert latest.error is None and interrupted.error == INTERRUPTED
    assert interrupted.finished is None and interrupted.new == partial


def _committed_rows(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not written yet
        return 0
    finally:
        db.close()


def _content(settings: Settings) -> list[tuple[Any, ...]]:
    with open_store(settings) as store:
        return sorted(
            (s.submission_id, s.version_id, s.review_status, s.person_key, s.deleted, json.dumps(s.data))
            for s in store.submissions()
        )


snapshots = st.lists(
    st.dictionaries(
        keys=st.integers(min_value=1, max_value=12),
        values=st.tuples(
            st.sampled_from(["v1", "v2"]), st.sampled_from(["unreviewed", "approved", "rejected"])
        ),
        max_size=8,
    ),
    min_size=1,
    max_size=4,
)


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(snapshots=snapshots)
def test_the_store_mirrors_every_snapshot_of_a_file(
    make_project: Callable[..., Path], secret: str, snapshots: list[dict[int, tuple[str, str]]]
) -> None:
    project = load_settings(make_project(f"p{uuid.uuid4().hex}"))
    previous: dict[int, tuple[str, str]] = {}
    ever: set[int] = set()
    for snapshot in snapshots:
        export(project, [kobo_submission(sid, version=v, status=s) for sid, (v, s) in snapshot.items()])
        summary = run_sync(project, progress=False)
        held = stored(project)
        live = {int(sid): (s.version_id[-2:], s.review_status) for sid, s in held.items() if not s.deleted}
        assert live == snapshot
        assert {int(sid) for sid in held} == ever | set(snapshot)  # deleted rows are kept, flagged
        assert summary.new + summary.edited + summary.unchanged == len(snapshot)
        assert summary.new == len(set(snapshot) - set(previous))
        assert summary.edited == sum(
            1 for k in snapshot if k in previous and previous[k][0] != snapshot[k][0]
        )
        assert summary.deleted == len(set(previous) - set(snapshot))
        kept = set(previous) & set(snapshot)
        assert summary.status_changed == sum(1 for k in kept if previous[k][1] != snapshot[k][1])
        previous = snapshot
        ever |= set(snapshot)
