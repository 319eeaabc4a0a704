"""The service's clocks in process: the debounced render and when outside releases are due."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kobo_tip.config import Settings, load_settings
from kobo_tip.report import outside_due, render_reports
from kobo_tip.serve.render_process import RenderFailed, RenderProcess
from kobo_tip.serve.schedule import Renderer
from report_project import AS_OF, make_project, sync


class Calls:
    def __init__(self) -> None:
        self.audiences: list[list[str]] = []
        self.times: list[float] = []
        self.done = threading.Event()

    def __call__(self, settings: Settings, *, audiences: Sequence[str]) -> list[Path]:
        self.audiences.append(list(audiences))
        self.times.append(time.monotonic())
        self.done.set()
        return []


def test_many_requests_within_the_delay_make_one_internal_render(settings: Settings) -> None:
    calls = Calls()
    renderer = Renderer(settings, 0.3, render=calls)
    renderer.start()
    started = time.monotonic()
    for _ in range(50):
        renderer.request()
        time.sleep(0.002)
    assert calls.done.wait(5)
    time.sleep(0.5)
    renderer.close()
    assert calls.audiences == [["internal"]], "one render, internal only"
    assert calls.times[0] - started >= 0.3, "it waited for the requests to stop"


def test_a_steady_stream_still_renders_and_outside_is_asked_for_explicitly(settings: Settings) -> None:
    calls = Calls()
    renderer = Renderer(settings, 0.1, render=calls)
    renderer.start()
    until = time.monotonic() + 1.5
    while time.monotonic() < until:  # a request every 50 ms: the delay never passes quietly
        renderer.request()
        time.sleep(0.05)
    renderer.request(outside=True)
    renderer.close()  # renders what is still due before it stops
    assert len(calls.audiences) >= 2, "renders at least every LONGEST_WAIT delays"
    assert all(a == ["internal"] for a in calls.audiences[:-1])
    assert calls.audiences[-1] == ["internal", "donor"]


def test_a_failing_render_is_told_and_the_next_one_runs(settings: Settings) -> None:
    attempts: list[int] = []

    def render(settings: Settings, *, audiences: Sequence[str]) -> list[Path]:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("a bug, with data in its message")
        return []

    renderer = Renderer(settings, 0.05, render=render)
    renderer.start()
    renderer.request()
    while not attempts:
        time.sleep(0.01)
    time.sleep(0.1)
    assert renderer.last_error == "unexpected ValueError", "the type only: a message may quote data"
    renderer.request()
    renderer.close()
    assert len(attempts) == 2 and renderer.last_error == "" and renderer.renders == 1


def test_the_default_render_runs_in_a_child_that_outlives_sigterm_and_is_replaced_when_killed(
    settings: Settings, tmp_path: Path
) -> None:
    process = RenderProcess()
    try:
        child = process.pid()
        assert child != os.getpid(), "the render runs outside the service's process"
        written = process(settings, audiences=["internal"])
        report = settings.report.out_dir / "internal" / "report.html"
        assert report in written and report.exists()
        os.kill(child, signal.SIGTERM)  # a service manager signals the whole group at shutdown
        time.sleep(0.3)
        assert process.pid() == child, "the child ignores SIGTERM: the render still due is written"
        os.kill(child, signal.SIGKILL)
        time.sleep(0.3)
        with pytest.raises(RenderFailed, match="render process stopped"):
            process(settings, audiences=["internal"])
        assert process(settings, audiences=["internal"]) and process.pid() != child, "a new child"
        unsynced = make_project(tmp_path / "unsynced", submissions=5, dhis2=False)
        with pytest.raises(RenderFailed, match="synced"):  # the child's own message comes back
            process(load_settings(unsynced), audiences=["internal"])
    finally:
        process.close()


def test_a_renderer_without_a_render_given_renders_in_its_child(settings: Settings) -> None:
    renderer = Renderer(settings, 0.05)
    renderer.start()
    renderer.request()
    renderer.close()  # the render still due is written before it stops
    assert renderer.renders == 1 and renderer.last_error == ""
    assert (settings.report.out_dir / "internal" / "report.html").exists()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from conftest import SECRET

    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    return sync(make_project(tmp_path, submissions=120, dhis2=False))


def test_outside_releases_are_due_when_a_quarter_ended_since_the_last(settings: Settings) -> None:
    assert outside_due(settings, AS_OF), "nothing released yet"
    render_reports(settings, as_of=AS_OF)
    assert not outside_due(settings, AS_OF), "released through the last ended quarter"
    assert not outside_due(settings, AS_OF + dt.timedelta(days=30)), "the same quarter is still running"
    next_quarter = dt.date(2027, 4, 2)  # FY2027 Q2 ended on 31 March
    assert outside_due(settings, next_quarter)


def test_fuzzed_pushes_never_stop_the_writer_and_the_report_still_renders(settings: Settings) -> None:
    import json
    import random

    from kobo_tip import synthetic
    from kobo_tip.errors import KoboTipError
    from kobo_tip.serve.intake import Intake, PushRefused, read_push
    from kobo_tip.store import open_store
    from test_fuzz import mutate

    rng = random.Random(20261202)
    base = synthetic.generate_submissions(
        200,
        seed=3,
        roster=settings.form.roster,
        locations=settings.form.locations,
        start_date=settings.project.start_date,
        end_date=settings.project.end_date,
        as_of=AS_OF,
    )
    changed: list[int] = []
    intake = Intake(lambda: open_store(settings), settings.secret(), 1000, lambda: changed.append(1))
    intake.start()
    futures, refused = [], 0
    for number, row in enumerate(base):
        body = json.dumps(mutate(row, rng, number)).encode()
        try:
            futures.append(intake.submit(read_push(body, row["_xform_id_string"])))
        except PushRefused:
            refused += 1
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result(timeout=30).get("stored", "dropped"))
        except KoboTipError as exc:
            outcomes.append(type(exc).__name__)
    assert intake.alive, "no push stopped the writer"
    intake.close()
    stored = [o for o in outcomes if o.isdigit()]
    assert len(stored) > 100 and refused + len(outcomes) == 200
    assert changed, "the stored pushes asked for a render"
    render_reports(settings, audiences=("internal",), as_of=AS_OF)


@contextlib.contextmanager
def kobo_tip_log() -> Iterator[io.StringIO]:
    """The kobo_tip logger's lines, in the command line's plain format, written to the given text."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    base = logging.getLogger("kobo_tip")
    base.addHandler(handler)
    level = base.level
    base.setLevel(logging.INFO)
    try:
        yield out
    finally:
        base.removeHandler(handler)
        base.setLevel(level)


def test_while_serving_every_kobo_tip_log_line_is_a_json_event() -> None:
    import json

    from kobo_tip.serve.events import RepeatLimit, json_log_lines, log_event

    with kobo_tip_log() as out:
        with json_log_lines(RepeatLimit()):
            logging.getLogger("kobo_tip.probe").info("sync %s: %d of %d rows", "Kobo", 5, 10)
            log_event(logging.INFO, "synced", new=5)
        logging.getLogger("kobo_tip.probe").info("plain again")
    first, second, third = out.getvalue().splitlines()
    assert json.loads(first)["message"] == "sync Kobo: 5 of 10 rows"
    assert json.loads(first)["event"] == "log" and json.loads(first)["logger"] == "kobo_tip.probe"
    assert json.loads(second)["event"] == "synced" and json.loads(second)["new"] == 5
    assert third == "plain again", "the command line's own format is back"


def test_a_flood_of_loop_errors_writes_a_few_json_lines_and_their_count() -> None:
    """asyncio's accept() out of files, as it happened: thousands of errors a second (600,000 in
    45 s), each with a traceback, from the event loop and from uvicorn's logger. While serving, ten
    JSON lines a kind a window, no traceback, and the count of the rest."""
    import asyncio
    import errno
    import json

    from kobo_tip.serve.events import RepeatLimit, json_log_lines, loop_error

    limit = RepeatLimit(shown=10, window=3.0)
    error = OSError(errno.EMFILE, "Too many open files")

    async def flood() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(loop_error)
        for _ in range(2_000):
            context = {"message": "socket.accept() out of system resource", "exception": error}
            loop.call_exception_handler(context)
        try:
            raise RuntimeError("/home/someone/secret/path.py")
        except RuntimeError as exc:
            for _ in range(500):
                logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=exc)

    with kobo_tip_log() as out, json_log_lines(limit):
        asyncio.run(flood())
        time.sleep(3.1)  # a new window: the next line says how many of its kind were left out
        asyncio.run(flood())
        limit.report()
    text = out.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]  # every line JSON
    assert "Traceback" not in text and "/home/someone" not in text
    loop_lines = [line for line in lines if line["event"] == "loop_error"]
    assert len(loop_lines) == 20 and loop_lines[0]["errno"] == errno.EMFILE
    assert loop_lines[10]["repeats_left_out"] == 2_000 - 10
    uvicorn_lines = [line for line in lines if line["event"] == "log" and line["logger"] == "uvicorn.error"]
    assert len(uvicorn_lines) == 20 and uvicorn_lines[0]["message"] == "Exception in ASGI application"
    left = {line["kind"]: line["count"] for line in lines if line["event"] == "repeats_left_out"}
    assert left == {"loop_error": 2_000 - 10, "Exception in ASGI application": 500 - 10}
    assert len(lines) == 42
