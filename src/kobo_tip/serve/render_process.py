"""The service's renders run in a process of their own, so that a render never holds up a push.

A render of a large store holds the interpreter's lock for hundreds of milliseconds at a time
(pandas and numpy let go of it only in places); in the service's process every push waits that
long for its answer. In a child process the render runs on the other core and the service's render
thread only waits on a pipe. The child is spawned, not forked: the service runs threads, and a
fork copies their locks in whatever state they are. It lives as long as the service, so its imports
are paid once and its counts are kept between renders (``live``: each render reads only the rows
written since the last), and renders one report at a time (the ``Renderer`` coalesces the requests).
The internal report.html is swapped in as soon as it is rendered, before its folder's other files
are written again (``render_reports(..., html_first=True)``): the officer's page does not wait for
counts.xlsx and data_quality.csv.

The child ignores SIGTERM and SIGINT: a service manager sends them to the whole group, and the
render still due at shutdown must be written; the service closes the child after it. A child that
died (killed, out of memory) is replaced by the next render.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from kobo_tip.config import Settings
from kobo_tip.errors import KoboTipError
from kobo_tip.ledger import KeptLedger
from kobo_tip.report import render_reports
from kobo_tip.serve.events import JsonLines
from kobo_tip.serve.live import LiveCounts

# The child's counts, kept from one render to the next (``live``): a render reads only what changed.
_LIVE = LiveCounts()
_LEDGER = KeptLedger()  # the ledger, read again only when a release adds to it


class RenderFailed(KoboTipError):
    """A render in the child failed; the message is the child's (never data, see ``failure_text``)."""


def failure_text(exc: Exception) -> str:
    """What may be said of a failed render: our messages hold no data; anything else may quote a
    submission, so its type only."""
    return exc.message if isinstance(exc, KoboTipError) else f"unexpected {type(exc).__name__}"


def _child_started(level: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The render's warnings (a held outside report, a store with no submission) as the service's
    # own lines: one JSON object each, on the stderr the child shares with the service.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("kobo_tip")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _render_in_child(settings: Settings, audiences: list[str]) -> tuple[list[Path], float] | str:
    """The paths written and the CPU seconds it took, or what to say of the failure (exceptions are
    not sent back: one that cannot be pickled would break the pool, and its message may quote data)."""
    started = time.process_time()
    try:
        return render_reports(
            settings, audiences=audiences, count=_LIVE, html_first=True, kept_ledger=_LEDGER
        ), time.process_time() - started
    except Exception as exc:
        return failure_text(exc)


class RenderProcess:
    """``render_reports`` for the ``Renderer``, run in a long-lived child process."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.cpu_seconds = 0.0  # the last render's, in the child (its wall time depends on the load)

    def __call__(self, settings: Settings, *, audiences: Sequence[str]) -> list[Path]:
        pool = self._started()
        try:
            outcome = pool.submit(_render_in_child, settings, list(audiences)).result()
        except BrokenProcessPool as exc:
            self._forget(pool)
            raise RenderFailed(
                "The render process stopped (killed, or out of memory); the next render starts another."
            ) from exc
        if isinstance(outcome, str):
            raise RenderFailed(outcome)
        written, self.cpu_seconds = outcome
        return written

    def start(self) -> None:
        """Start the child now, so that it has imported what a render needs before the first."""
        self._started().submit(os.getpid)

    def pid(self) -> int:
        """The child's process id (it is started if it is not running)."""
        return int(self._started().submit(os.getpid).result())

    def close(self) -> None:
        """Stop the child after the render in hand."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_child_started,
                    initargs=(logging.getLogger("kobo_tip").getEffectiveLevel(),),
                )
            return self._pool

    def _forget(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False)
