"""`kobo-tip sync` against the fake Kobo server on loopback: completeness, increments, reconcile,
faults, SIGKILL and secrets. Every check compares the SQLite store with the server's own rows."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.kobo_server import FakeKobo
from kobo_tip import cli
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import ServerError, SourceError
from kobo_tip.http import ServerTimeout
from kobo_tip.rows import stored_data
from kobo_tip.sources.kobo import WATERMARK, KoboSource, review_status
from kobo_tip.store import open_store
from kobo_tip.sync import SyncSummary, run_sync
from kobo_tip.worker import worker_available

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def kobo(monkeypatch: pytest.MonkeyPatch, secret: str) -> Iterator[FakeKobo]:
    with FakeKobo() as fake:
        monkeypatch.setenv("KOBO_TOKEN", fake.token)
        yield fake


@pytest.fixture(params=["sqlite", "postgres"])
def project(
    request: pytest.FixtureRequest, kobo: FakeKobo, make_project: Callable[..., Path]
) -> Callable[..., Settings]:
    """Settings of a project synced from ``kobo``; keyword arguments add [source] lines. Each test
    runs on both back ends: a SQLite file, and a PostgreSQL schema (one per project folder)."""
    database = request.getfixturevalue("pg_database") if request.param == "postgres" else ""

    def make(folder: str = "project", **extra: object) -> Settings:
        lines = ['kind = "kobo"', f'url = "{kobo.url}"', f'asset_uid = "{kobo.asset_uid}"']
        lines += [f"{key} = {value}" for key, value in extra.items()]
        sections = {"source": "\n".join(lines)}
        if database:
            sections["store"] = f'url = "{database}"\nschema = "{folder.replace("-", "_")}"'
        return load_settings(make_project(folder, **sections))

    return make


def _source(kobo: FakeKobo, page_size: int = 250, **kwargs: Any) -> KoboSource:
    """A source with test-sized timeouts and backoff, so faults resolve in a second or two."""
    options: dict[str, Any] = {"timeout": (2.0, 0.4), "retries": 2, "backoff": 0.01, **kwargs}
    return KoboSource(url=kobo.url, asset_uid=kobo.asset_uid, page_size=page_size, **options)


def _sync(settings: Settings, kobo: FakeKobo, *, full: bool = False, **kwargs: Any) -> SyncSummary:
    return run_sync(settings, full=full, progress=False, source=_source(kobo, **kwargs))


def _stored(settings: Settings) -> dict[str, Any]:
    with open_store(settings, create=False) as store:
        return {s.submission_id: s for s in store.submissions() if not s.deleted}


def _watermark(settings: Settings) -> int:
    with open_store(settings, create=False) as store:
        return int(store.watermark(WATERMARK) or 0)


def assert_mirrors(settings: Settings, kobo: FakeKobo, *, up_to: int | None = None) -> None:
    """The store holds exactly the server's rows (those with ``_id <= up_to``), as sent."""
    stored = _stored(settings)
    server = {sid: doc for sid, doc in kobo.docs.items() if up_to is None or sid <= up_to}
    assert sorted(stored, key=int) == [str(sid) for sid in sorted(server)]
    for sid, doc in server.items():
        row = stored[str(sid)]
        assert row.version_id == doc["_uuid"]
        assert row.review_status == review_status(doc)
        assert row.data == stored_data(doc)


def _data_calls(kobo: FakeKobo) -> int:
    return sum(1 for _, path, _ in kobo.requests if path.endswith("/data/"))


# --- completeness and increments ------------------------------------------------------------------


@pytest.mark.slow
def test_25000_submissions_arrive_complete_through_the_command_line(
    kobo: FakeKobo, project: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    kobo.add_submissions(25_000)
    settings = project()
    assert cli.main(["sync", "-c", str(settings.path), "--no-report"]) == 0
    assert "25000 new" in capsys.readouterr().out
    assert_mirrors(settings, kobo)
    assert kobo.rows_served == 25_000  # no row read twice, no reconcile scan after a first pull
    assert _data_calls(kobo) == 25
    assert _watermark(settings) == max(kobo.docs)


def test_a_retried_request_is_said_on_the_terminal_and_by_status(
    kobo: FakeKobo, project: Callable[..., Settings], capfd: pytest.CaptureFixture[str]
) -> None:
    # capfd: the page may be fetched in the sync's worker process, which writes to the same stderr.
    kobo.add_submissions(10)
    kobo.inject("status", status=503, times=1)
    settings = project()
    assert cli.main(["sync", "-c", str(settings.path), "--no-report"]) == 0
    err = capfd.readouterr().err
    assert f"GET {kobo.url}/api/v2/assets/{kobo.asset_uid}/data/" in err
    assert "answered 503; retry 1 of 5 in 0.0 s" in err
    assert "Retrying (" not in err, "urllib3's own line, which quotes the whole URL, stays quiet"
    assert cli.main(["status", "-c", str(settings.path)]) == 0
    assert "1 request(s) retried; last: GET" in capfd.readouterr().out


def test_progress_bar_has_the_total_kobo_counts(
    kobo: FakeKobo, project: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    kobo.add_submissions(1000)
    settings = project()
    run_sync(settings, progress=True, source=_source(kobo, page_size=250))
    assert "1000/1000" in capsys.readouterr().err, "the bar counts towards the first page's count"


def test_incremental_sync_fetches_only_what_is_new(kobo: FakeKobo, project: Callable[..., Settings]) -> None:
    kobo.add_submissions(1200)
    settings = project()
    assert _sync(settings, kobo).new == 1200
    kobo.add_submissions(37)
    served, calls = kobo.rows_served, _data_calls(kobo)
    summary = _sync(settings, kobo)
    assert (summary.new, summary.fetched) == (37, 37)
    assert kobo.rows_served - served == 37
    assert _data_calls(kobo) - calls == 1
    assert_mirrors(settings, kobo)
    served = kobo.rows_served
    assert _sync(settings, kobo).fetched == 0
    assert kobo.rows_served == served


def test_edits_status_changes_and_deletions_are_reconciled(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    ids = kobo.add_submissions(900)
    settings = project()
    _sync(settings, kobo)
    kobo.set_status(ids[5], "validation_status_on_hold")
    _sync(settings, kobo, full=True)
    for sid in (ids[3], ids[400], ids[899]):
        kobo.edit(sid, {"event/event_date": "2026-02-02"})
    kobo.set_status(ids[10], "validation_status_approved")
    kobo.set_status(ids[11], "validation_status_not_approved")
    kobo.set_status(ids[5], None)
    kobo.delete(ids[0])
    kobo.delete(ids[500])
    kobo.add_submissions(5)
    plain = _sync(settings, kobo)  # reconcile not due: only the new rows
    assert (plain.new, plain.edited, plain.deleted, plain.status_changed) == (5, 0, 0, 0)
    summary = _sync(settings, kobo, full=True)
    assert (summary.new, summary.edited, summary.deleted, summary.status_changed) == (0, 3, 2, 3)
    assert_mirrors(settings, kobo)
    assert _stored(settings)[str(ids[3])].data["event/event_date"] == "2026-02-02"
    with open_store(settings, create=False) as store:
        gone = {s.submission_id for s in store.submissions() if s.deleted}
    assert gone == {str(ids[0]), str(ids[500])}


def test_a_submission_the_server_lists_again_after_a_deletion_counts_again(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    """Kobo has no restore, but its listing is the truth: a submission the store holds as deleted
    (a reconcile that ran while the account could not see it) is stored again when listed."""
    ids = kobo.add_submissions(30)
    settings = project()
    _sync(settings, kobo)
    with open_store(settings, create=False) as store, store._transaction():
        store._db.execute(
            "UPDATE submissions SET deleted_at = ?, deleted_run = 1 WHERE submission_id = ?",
            ("2026-01-01T00:00:00Z", str(ids[4])),
        )
    assert str(ids[4]) not in _stored(settings)
    assert _sync(settings, kobo).new == 0, "an incremental pull lists only what is new"
    summary = _sync(settings, kobo, full=True)
    assert (summary.new, summary.restored, summary.deleted) == (1, 1, 0)
    assert "1 new (1 of them restored after a deletion)" in summary.line()
    assert_mirrors(settings, kobo)


def test_reconcile_runs_by_itself_when_the_last_is_older_than_reconcile_hours(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    ids = kobo.add_submissions(300)
    settings = project(reconcile_hours=0)
    _sync(settings, kobo)
    kobo.delete(ids[7])
    kobo.edit(ids[8], {"person/gender": "male"})
    summary = _sync(settings, kobo)
    assert (summary.edited, summary.deleted) == (1, 1)
    assert_mirrors(settings, kobo)


def test_submissions_arriving_edited_or_deleted_while_paging_are_neither_lost_nor_doubled(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    ids = kobo.add_submissions(1500)

    def churn(fake: FakeKobo, number: int) -> None:
        if number <= 6:
            fake.add_submissions(40)
            fake.delete(ids[1499 - number])  # ahead of the pager: must never be fetched
            fake.edit(ids[number], {"person/age_years": "33"})  # behind it: caught by reconcile

    kobo.before_data_request = churn
    settings = project()
    first = _sync(settings, kobo)
    kobo.before_data_request = None
    stored = _stored(settings)
    assert first.new == len(stored) == first.fetched
    # Every server row up to the watermark is stored once; edits behind the pager wait for reconcile.
    assert sorted(map(int, stored)) == [sid for sid in sorted(kobo.docs) if sid <= _watermark(settings)]
    assert all(str(ids[1499 - n]) not in stored for n in range(1, 7))
    assert all(int(sid) in kobo.docs for sid in stored)
    _sync(settings, kobo, full=True)
    assert_mirrors(settings, kobo)


# --- faults ----------------------------------------------------------------------------------------

TRANSIENT = {
    "500": {"kind": "status", "status": 500, "times": 2},
    "502": {"kind": "status", "status": 502, "times": 2},
    "503": {"kind": "status", "status": 503, "times": 2},
    "504": {"kind": "status", "status": 504, "times": 2},
    "429 Retry-After": {"kind": "status", "status": 429, "retry_after": "1"},
    "read timeout": {"kind": "timeout", "delay": 1.0},
    "reset mid-body": {"kind": "reset"},
    "truncated JSON": {"kind": "truncate"},
}


def _fault_on_request(at: int, **fault: Any) -> Callable[[FakeKobo, int], None]:
    def hook(fake: FakeKobo, number: int) -> None:
        if number == at:
            fake.inject(**fault)

    return hook


@pytest.mark.parametrize("fault", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_fault_mid_sync_ends_in_a_complete_sync(
    kobo: FakeKobo, project: Callable[..., Settings], fault: dict[str, Any]
) -> None:
    kobo.add_submissions(1000)
    kobo.before_data_request = _fault_on_request(3, **fault)
    settings = project()
    summary = _sync(settings, kobo)
    assert not kobo.faults  # the fault was served
    assert summary.new == 1000
    assert_mirrors(settings, kobo)
    with open_store(settings, create=False) as store:
        retried = store.runs(1)[0].retries
    # The run log says what was retried, whether the page was fetched in this process or the worker.
    assert retried and all(f"/api/v2/assets/{kobo.asset_uid}/data/" in line for line in retried)
    assert all(re.search(r"; retry \d of \d in \d+\.\d s$", line) for line in retried), retried


PERSISTENT = {
    "503 forever": {"kind": "status", "status": 503, "times": 1000},
    "timeouts forever": {"kind": "timeout", "delay": 0.6, "times": 1000},
    "resets forever": {"kind": "reset", "times": 1000},
    "truncated forever": {"kind": "truncate", "times": 1000},
}


@pytest.mark.parametrize("fault", PERSISTENT.values(), ids=PERSISTENT.keys())
def test_a_lasting_fault_ends_in_an_error_with_every_committed_page_kept(
    kobo: FakeKobo, project: Callable[..., Settings], fault: dict[str, Any]
) -> None:
    kobo.add_submissions(1000)
    kobo.before_data_request = _fault_on_request(3, **fault)
    settings = project()
    with pytest.raises(ServerError) as caught:
        _sync(settings, kobo, page_size=250, timeout=(2.0, 0.3), retries=1)
    if fault["kind"] == "timeout":
        assert isinstance(caught.value, ServerTimeout)
    # Exactly the two pages before the fault are stored, with the watermark of the second.
    second_page_end = sorted(kobo.docs)[499]
    assert _watermark(settings) == second_page_end
    assert_mirrors(settings, kobo, up_to=second_page_end)
    with open_store(settings, create=False) as store:
        last_run = store.runs(1)[0]
    assert last_run.error and str(caught.value) in last_run.error
    assert last_run.retries and re.search(r"; retry (\d) of \1 in", last_run.retries[-1]), last_run.retries
    kobo.faults.clear()
    kobo.before_data_request = None
    assert _sync(settings, kobo).new == 500  # the re-run resumes after the last committed page
    assert_mirrors(settings, kobo)


def test_a_token_revoked_mid_sync_stops_with_a_token_error_and_keeps_the_pages(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    kobo.add_submissions(1000)

    def revoke(fake: FakeKobo, number: int) -> None:
        if number == 2:
            fake.token = "another-token-entirely-000000000000000000"

    kobo.before_data_request = revoke
    settings = project()
    with pytest.raises(ServerError) as caught:
        _sync(settings, kobo)
    assert caught.value.status == 401 and "token" in str(caught.value)
    # Request 2 passed the token check before the hook revoked it: two pages are stored.
    assert_mirrors(settings, kobo, up_to=sorted(kobo.docs)[499])


# --- SIGKILL ----------------------------------------------------------------------------------------


def _comparable(settings: Settings) -> list[tuple[Any, ...]]:
    with open_store(settings, create=False) as store:
        rows = [
            (s.submission_id, s.version_id, s.review_status, s.person_key, s.deleted, s.data)
            for s in store.submissions()
        ]
        return [*sorted(rows, key=lambda row: int(row[0])), store.watermark(WATERMARK)]


def test_a_sync_in_one_process_and_one_in_two_make_the_same_store(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    ids = kobo.add_submissions(1100)
    one, two = project("one"), project("two")
    for settings, parallel in ((one, False), (two, True)):
        run_sync(settings, progress=False, source=_source(kobo), parallel=parallel)
    kobo.edit(ids[2], {"person/gender": "male"})
    kobo.set_status(ids[3], "validation_status_approved")
    kobo.delete(ids[4])
    kobo.add_submissions(30)
    summaries = [
        run_sync(settings, full=True, progress=False, source=_source(kobo), parallel=parallel)
        for settings, parallel in ((one, False), (two, True))
    ]
    assert summaries[0].line().split("(")[0] == summaries[1].line().split("(")[0]
    assert (summaries[1].new, summaries[1].edited, summaries[1].deleted, summaries[1].status_changed) == (
        30,
        1,
        1,
        1,
    )
    assert _comparable(one) == _comparable(two)
    assert_mirrors(two, kobo)


@pytest.mark.slow
def test_sigkill_mid_sync_then_rerun_gives_the_store_of_an_uninterrupted_sync(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    kobo.add_submissions(4000)
    reached, release = threading.Event(), threading.Event()

    def pause(fake: FakeKobo, number: int) -> None:
        if number == 3:  # held until the kill: the batches before it get committed meanwhile
            reached.set()
            release.wait(60)

    kobo.before_data_request = pause
    killed = project("killed", page_size=500)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "kobo_tip", "sync", "-c", str(killed.path), "--no-report"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert reached.wait(60), process.stderr.read().decode() if process.stderr else ""
        deadline = time.monotonic() + 30
        while not _stored(killed) and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(process.pid)
        assert workers or not worker_available()
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    partial = _stored(killed)
    assert 0 < len(partial) < 4000
    # The worker process finds its parent gone at its next message and ends: nothing is left running.
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(pid) for pid in workers)
    assert_mirrors(killed, kobo, up_to=_watermark(killed))
    kobo.before_data_request = None
    run_sync(killed, progress=False)
    clean = project("clean", page_size=500)
    run_sync(clean, progress=False)
    assert _comparable(killed) == _comparable(clean)
    assert_mirrors(killed, kobo)


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


# --- a hostile server's ids --------------------------------------------------------------------------


def _arabic_indic(number: int) -> str:
    return "".join(chr(0x0660 + int(digit)) for digit in str(number))


@pytest.mark.parametrize(
    "odd_id",
    [
        lambda sid: float(sid) + 0.9,  # int() would take it as sid
        _arabic_indic,  # so would int() of these digits
        lambda sid: "0" + str(sid),  # a second text of the same id
        lambda sid: True,  # int(True) is 1
        lambda sid: float("inf"),  # int() raises OverflowError: the sync crashed
        lambda sid: -sid,
        lambda sid: 2**63,
    ],
    ids=["float", "arabic-indic", "leading-zero", "true", "infinity", "negative", "beyond-bigint"],
)
def test_an_odd_id_from_the_server_stops_the_sync_with_a_clear_error_and_overwrites_nothing(
    kobo: FakeKobo, project: Callable[..., Settings], odd_id: Callable[[int], Any]
) -> None:
    kobo.add_submissions(5)
    settings = project()
    _sync(settings, kobo)
    first = min(kobo.docs)
    before = _stored(settings)[str(first)]
    (hostile,) = kobo.add_submissions(1)
    # The server sends a new row whose _id, read loosely, is the first submission's.
    kobo.docs[hostile].update({"_id": odd_id(first), "event/event_date": "1999-01-01"})
    kobo._cache.pop(hostile, None)
    # Infinity is not JSON at all: the page is refused as such (a Python json would have read it).
    clear = r"no valid _id|not valid JSON"
    with pytest.raises((SourceError, ServerError), match=clear):
        _sync(settings, kobo)
    stored = _stored(settings)
    assert stored[str(first)].version_id == before.version_id and stored[str(first)].data == before.data
    assert len(stored) == 5 and _watermark(settings) == sorted(kobo.docs)[4]
    with open_store(settings, create=False) as store:
        (run,) = store.runs(1)
    assert run.error and re.search(clear, run.error)


# --- secrets ------------------------------------------------------------------------------------------


def test_the_token_appears_in_no_log_error_report_or_store_file(
    monkeypatch: pytest.MonkeyPatch,
    make_project: Callable[..., Path],
    secret: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "tok3n5ecret" * 4
    with FakeKobo(token=token) as kobo:
        kobo.add_submissions(600)
        config = make_project(source=f'kind = "kobo"\nurl = "{kobo.url}"\nasset_uid = "{kobo.asset_uid}"')
        caplog.set_level(logging.DEBUG)
        texts: list[str] = []
        # A wrong token, then a server that fails half-way, then a good run that renders the reports.
        monkeypatch.setenv("KOBO_TOKEN", token[::-1])
        assert cli.main(["--debug", "sync", "-c", str(config), "--no-report"]) == 1
        monkeypatch.setenv("KOBO_TOKEN", token)
        kobo.before_data_request = _fault_on_request(2, kind="status", status=503, times=100)
        try:
            run_sync(load_settings(config), progress=False, source=_source(kobo, page_size=200))
        except ServerError as exc:
            texts += [str(exc), repr(exc), str(exc.url), str(exc.detail)]
        kobo.faults.clear()
        kobo.before_data_request = None
        code = cli.main(["--debug", "sync", "-c", str(config)])
        out = capsys.readouterr()
        texts += [out.out, out.err, caplog.text]
        assert code == 0, out.err
        assert_mirrors(load_settings(config), kobo)
    files = [path for path in config.parent.rglob("*") if path.is_file()]
    assert any(path.suffix == ".sqlite" for path in files)
    assert any("reports" in path.parts for path in files)
    for text in texts:
        assert token not in text and token[::-1] not in text
    for path in files:
        data = path.read_bytes()
        assert token.encode() not in data and token[::-1].encode() not in data, path


def test_timeouts_that_outlast_the_retries_halve_the_page_size_and_the_sync_completes(
    kobo: FakeKobo, project: Callable[..., Settings]
) -> None:
    kobo.add_submissions(1000)
    # Three timeouts in a row exhaust one request's retries (2): the page is asked for again, smaller.
    kobo.before_data_request = _fault_on_request(2, kind="timeout", delay=0.6, times=3)
    source = _source(kobo, page_size=250, timeout=(2.0, 0.3))
    settings = project()
    summary = run_sync(settings, progress=False, source=source)
    assert summary.new == 1000
    assert_mirrors(settings, kobo)
    limits = [params["limit"] for _, path, params in kobo.requests if path.endswith("/data/")]
    assert limits[:4] == ["250", "250", "250", "250"] and set(limits[4:]) == {"125"}
