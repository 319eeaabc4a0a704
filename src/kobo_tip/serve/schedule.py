"""The service's two clocks: the poll (an incremental sync every ``poll_minutes``) and the
debounced render (one internal report for many changes, a moment after the last)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kobo_tip.config import Settings
from kobo_tip.errors import CodesClash, KoboTipError, SyncStopped
from kobo_tip.indicator import INTERNAL
from kobo_tip.report import outside_due
from kobo_tip.serve.events import log_event
from kobo_tip.serve.render_process import RenderProcess, failure_text
from kobo_tip.store import open_store, utc_stamp
from kobo_tip.sync import SyncSummary, run_sync

CLASH_ATTEMPTS = 3
LONGEST_WAIT = 5.0  # under a steady stream of pushes, render at least this often (times the delay)


class Renderer:
    """Renders the reports ``delay`` seconds after the last request (at most ``LONGEST_WAIT``
    delays after the first): many pushes, one render. A thread of its own waits for the render,
    which runs in a child process (``RenderProcess``) unless ``render`` is given: at most one
    render runs and one more is due, however many requests come meanwhile."""

    def __init__(
        self,
        settings: Settings,
        delay: float,
        render: Callable[..., Sequence[Path]] | None = None,
    ) -> None:
        self.settings, self.delay = settings, delay
        self._process = RenderProcess()  # no child until its first render
        self._render = render or self._process
        self._changed = threading.Condition()
        self._due: float | None = None
        self._first: float | None = None
        self._outside = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="kobo-tip render", daemon=True)
        self.last_render = ""
        self.last_error = ""
        self.renders = 0

    def start(self) -> None:
        if self._render is self._process:
            self._process.start()
        self._thread.start()

    def request(self, *, outside: bool = False) -> None:
        """Render soon: the internal report, and with ``outside`` the outside audiences too."""
        with self._changed:
            now = time.monotonic()
            self._first = self._first or now
            self._due = min(now + self.delay, self._first + LONGEST_WAIT * max(self.delay, 0.2))
            self._outside |= outside
            self._changed.notify()

    def close(self) -> None:
        """Render what is still due, then stop."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join()
        self._process.close()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closing and (self._due is None or self._due > time.monotonic()):
                    self._changed.wait(None if self._due is None else self._due - time.monotonic())
                if self._due is None:  # closing, nothing due
                    return
                outside, closing = self._outside, self._closing
                self._due = self._first = None
                self._outside = False
            self._render_now(outside)
            if closing:
                return

    def _render_now(self, outside: bool) -> None:
        configured = self.settings.report.audiences
        audiences = [a for a in configured if a == INTERNAL or outside]
        if not audiences:
            return
        started = time.monotonic()
        try:
            written = self._render(self.settings, audiences=audiences)
        except Exception as exc:
            self.last_error = failure_text(exc)
            log_event(logging.WARNING, "render_failed", audiences=audiences, error=self.last_error)
            return
        self.last_error = ""
        self.last_render = utc_stamp()
        self.renders += 1
        log_event(
            logging.INFO,
            "rendered",
            audiences=audiences,
            files=len(written),
            ms=round((time.monotonic() - started) * 1000),
            **({"cpu_ms": round(self._process.cpu_seconds * 1000)} if self._render is self._process else {}),
        )


class Poller:
    """Syncs the configured source every ``poll_minutes`` (the first at once) until ``stop``."""

    def __init__(self, settings: Settings, renderer: Renderer, stop: threading.Event) -> None:
        self.settings, self.renderer, self.stop = settings, renderer, stop
        self._thread = threading.Thread(target=self._run, name="kobo-tip poll", daemon=True)
        self.last_error = ""
        self.next_sync = ""

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        every = self.settings.serve.poll_minutes * 60
        while not self.stop.is_set():
            self.sync_once()
            self.next_sync = utc_stamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=every))
            self.stop.wait(every)

    def sync_once(self) -> None:
        """One incremental sync (a reconcile when due); then the renders it calls for."""
        before = _last_reconcile(self.settings)
        started = time.monotonic()
        try:
            summary = self._sync()
        except SyncStopped:
            return
        except Exception as exc:
            self.last_error = failure_text(exc)
            log_event(logging.WARNING, "sync_failed", error=self.last_error)
            return
        self.last_error = ""
        changed = summary.new + summary.edited + summary.deleted + summary.status_changed
        reconciled = _last_reconcile(self.settings) != before
        log_event(
            logging.INFO,
            "synced",
            new=summary.new,
            edited=summary.edited,
            deleted=summary.deleted,
            status_changed=summary.status_changed,
            reconciled=reconciled,
            ms=round((time.monotonic() - started) * 1000),
        )
        # Outside audiences are releases: when a quarter ended since the last one, or after a
        # reconcile that changed something (a revision held back may now be released).
        try:
            outside = outside_due(self.settings) or (reconciled and changed > 0)
        except KoboTipError as exc:
            log_event(logging.WARNING, "release_check_failed", error=exc.message)
            outside = False
        if changed or outside:
            self.renderer.request(outside=outside)

    def _sync(self) -> SyncSummary:
        # Threads of this process serve requests: the sync must not fork a worker.
        for _ in range(CLASH_ATTEMPTS - 1):
            try:
                return run_sync(self.settings, progress=False, parallel=False, stop=self.stop)
            except CodesClash:
                # A push saved a new answer's code while the sync held another under the same
                # number; the committed batches stay, and a new sync reads the saved codes.
                log_event(logging.INFO, "sync_restarted", reason="answer codes saved by a push")
        return run_sync(self.settings, progress=False, parallel=False, stop=self.stop)


def _last_reconcile(settings: Settings) -> str | None:
    with open_store(settings) as store:
        return store.last_reconcile()
