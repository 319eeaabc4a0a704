"""Pull a source into the store: person key added, UIC parts dropped, one transaction per batch."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from tqdm import tqdm

from kobo_tip import indicator as ind
from kobo_tip.answers import AnswerCodes
from kobo_tip.config import Settings
from kobo_tip.errors import KoboTipError, StoreError, SyncStopped
from kobo_tip.person_key import check_secret
from kobo_tip.rows import (
    UnkeyedRow,
    keyed_row,
    recognise_project_labels,
    refuse_foreign,
    submission_reader,
    unkeyed_row,
)
from kobo_tip.sources import KnownSubmission, Source, open_source
from kobo_tip.store import BatchOutcome, NewAnswer, Store, open_store
from kobo_tip.store.records import SyncCounts
from kobo_tip.worker import PrepareState, worker, worker_available

logger = logging.getLogger("kobo_tip")
http_log = logging.getLogger("kobo_tip.http")

_LOG_EVERY = 5.0  # seconds between progress log lines when not on a terminal


@dataclass(frozen=True)
class SyncSummary(SyncCounts):
    """What one sync did."""

    seconds: float
    restored: int = 0  # of ``new``: held as deleted, listed by the server again

    def line(self) -> str:
        """The one-line summary the command line prints."""
        restored = f" ({self.restored} of them restored after a deletion)" if self.restored else ""
        return (
            f"Synced {self.source}: {self.new} new{restored}, {self.edited} edited, {self.deleted} deleted, "
            f"{self.status_changed} review-status changes, {self.unchanged} unchanged "
            f"({self.fetched} rows fetched in {self.seconds:.1f} s)."
        )


class _StoreState:
    """The ``SyncState`` a source reads: watermarks and, on demand, what the store holds."""

    def __init__(self, store: Store, *, full: bool, reconcile_due: bool) -> None:
        self.full = full
        self.reconcile_due = reconcile_due
        self._store = store
        self._known: dict[str, KnownSubmission] | None = None

    def watermark(self, name: str) -> str | None:
        return self._store.watermark(name)

    def known(self) -> Mapping[str, KnownSubmission]:
        # Read once: the store's non-deleted rows as of the first call.
        if self._known is None:
            self._known = self._store.known()
        return self._known

    def known_pairs(self) -> dict[str, tuple[str, str]]:
        return self._store.known_pairs()

    def deleted_since(self, since: str) -> list[str]:
        return self._store.deleted_since(since)

    def answer_values(self) -> dict[str, list[Any]]:
        return self._store.answer_codes().values


def reconcile_is_due(last_reconcile: str | None, hours: float, now: dt.datetime | None = None) -> bool:
    """True when no reconcile pass was ever committed, or the last is older than ``hours``."""
    if last_reconcile is None:
        return True
    last = dt.datetime.fromisoformat(last_reconcile.replace("Z", "+00:00"))
    return (now or dt.datetime.now(dt.UTC)) - last >= dt.timedelta(hours=hours)


class BatchFacts(NamedTuple):
    """What a batch says besides its rows, as the producing half hands it over.

    Marshal refuses a tuple subclass, so a batch crosses from the worker as pickle: for a page of
    1,000 rows no slower than marshal (9.3 against 10.5 ms to pack and unpack, memory copies dominate).
    """

    review_statuses: dict[str, str]
    deleted: list[str]
    watermarks: dict[str, str]
    reconciled: bool
    fetched: int  # rows received from the server for this batch
    new_answers: list[NewAnswer]  # coded for the first time by its rows: Store.apply_batch's
    expected: int | None  # the rows its pass brings (Batch.expected), for the progress bar
    retries: list[str]  # the retry warnings logged while it was fetched


class Prepared(NamedTuple):
    """One batch from the producing half: its facts and its rows, ready to be keyed."""

    facts: BatchFacts
    rows: list[UnkeyedRow]


class _Progress:
    """A tqdm bar on a terminal, periodic log lines elsewhere."""

    def __init__(self, enabled: bool | None, description: str) -> None:
        use_bar = sys.stderr.isatty() if enabled is None else enabled
        self._bar = tqdm(unit=" rows", desc="sync", file=sys.stderr, dynamic_ncols=True) if use_bar else None
        self._description = description
        self._rows = 0
        self._total: int | None = None
        self._started = self._logged = time.monotonic()

    def expect(self, rows: int | None) -> None:
        """A pass starts that brings ``rows`` more (None: unknown): the bar gets a total and an ETA."""
        if rows is None:
            return
        self._total = self._rows + rows
        if self._bar is not None:
            self._bar.total = self._total
            self._bar.refresh()

    def advance(self, rows: int) -> None:
        self._rows += rows
        if self._bar is not None:
            self._bar.update(rows)
            if self._rows == self._total:  # shown at once: tqdm redraws at most every 0.1 s
                self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY:
            self._logged = now
            rate = self._rows / max(now - self._started, 1e-9)
            if self._total and self._rows < self._total:
                left = (self._total - self._rows) / max(rate, 1e-9)
                logger.info(
                    "sync %s: %d of %d rows (%.0f rows/s, about %.0f s left)",
                    self._description,
                    self._rows,
                    self._total,
                    rate,
                    left,
                )
            else:
                logger.info("sync %s: %d rows so far (%.0f rows/s)", self._description, self._rows, rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _error_text(exc: BaseException) -> str:
    # A KoboTipError message is written for users and holds no secret; anything else may quote
    # data or headers, so only its type is logged.
    if isinstance(exc, KoboTipError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"unexpected {type(exc).__name__} (run with --debug for details)"


def run_sync(
    settings: Settings,
    *,
    full: bool = False,
    progress: bool | None = None,
    source: Source | None = None,
    parallel: bool | None = None,
    stop: threading.Event | None = None,
) -> SyncSummary:
    """Pull ``source`` (default: the configured one) into the store and return what changed.

    ``progress`` None shows a bar when stderr is a terminal; True or False force it on or off.
    ``parallel`` None fetches and prepares rows in a second process where ``worker_available()``;
    there ``source`` runs in a forked copy, so changes it makes to itself stay in that copy. A
    program running threads of its own should pass False: forking such a process is unsafe.
    A failing source leaves every committed batch in place and re-raises; ``stop``, once set, ends
    the sync after the batch in hand with ``SyncStopped``.
    """
    secret = settings.secret()  # before anything touches a server or the store
    recognise_project_labels(settings)  # before the worker forks: it inherits them
    source = source or open_source(settings)
    description = source.describe()
    produce: Callable[[PrepareState], Iterator[Prepared]] = functools.partial(_unkeyed_batches, source)
    with contextlib.ExitStack() as stack:
        if worker_available() if parallel is None else parallel:
            # Forked before the store opens: the child holds no store or lock handle.
            produce = stack.enter_context(worker(produce)).items
        store = stack.enter_context(open_store(settings))
        stack.enter_context(store.lock_for_sync())
        summary = _sync_into(
            store, settings, secret, full, progress, description=description, produce=produce, stop=stop
        )
    logger.debug(summary.line())  # the command line prints it; the log keeps it for --debug
    return summary


def _unkeyed_batches(source: Source, state: PrepareState) -> Iterator[Prepared]:
    """Each batch of ``source`` as plain data: what it says, and its rows ready to be keyed.

    The producing half of a sync, which may run in the worker process. Keying stays with the
    consumer: the work then splits about evenly between the two processes. The retry warnings
    of ``kobo_tip.http`` travel with the batches (or as notes of the error) to the run log.
    """
    codes = AnswerCodes.of_values(ind.COUNTED_FIELDS, state.answer_values())
    reader = submission_reader(codes)
    retries = _RetryLines()
    http_log.addHandler(retries)
    try:
        for batch in source.batches(state):
            rows = [unkeyed_row(raw, reader) for raw in batch.submissions]
            facts = BatchFacts(
                review_statuses=batch.review_statuses,
                deleted=batch.deleted,
                watermarks=batch.watermarks,
                reconciled=batch.reconciled,
                fetched=max(batch.fetched, len(rows)),
                new_answers=codes.take_added(),
                expected=batch.expected,
                retries=retries.take(),
            )
            yield Prepared(facts, rows)
    except BaseException as exc:
        for line in retries.take():
            exc.add_note(line)
        raise
    finally:
        http_log.removeHandler(retries)


class _RetryLines(logging.Handler):
    """Collects the retry warnings of ``kobo_tip.http``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def _sync_into(
    store: Store,
    settings: Settings,
    secret: bytes,
    full: bool,
    progress: bool | None,
    *,
    description: str,
    produce: Callable[[PrepareState], Iterator[Prepared]],
    stop: threading.Event | None = None,
) -> SyncSummary:
    check_secret(store, secret, settings.privacy.secret_env)
    due = full or reconcile_is_due(store.last_reconcile(), settings.source.reconcile_hours)
    state = _StoreState(store, full=full, reconcile_due=due)
    run_id = store.begin_run(description)
    started = time.monotonic()
    totals = BatchOutcome()
    fetched = 0
    retried: list[str] = []
    meter = _Progress(progress, description)
    try:
        for facts, unkeyed in produce(state):
            retried += facts.retries
            meter.expect(facts.expected)
            rows = [keyed_row(row, secret) for row in unkeyed]
            refuse_foreign(rows, description)
            outcome = store.apply_batch(
                rows,
                new_answers=facts.new_answers,
                run_id=run_id,
                review_statuses=facts.review_statuses,
                deleted=facts.deleted,
                watermarks=facts.watermarks,
                reconciled=facts.reconciled,
                fetched=facts.fetched,
            )
            fetched += facts.fetched
            _add(totals, outcome)
            meter.advance(facts.fetched)
            if stop is not None and stop.is_set():
                # Raised inside the try on purpose: the handler below records the stopped run.
                raise SyncStopped(  # noqa: TRY301
                    f"{description}: sync stopped after {fetched} rows; the next one resumes."
                )
    except BaseException as exc:
        meter.close()
        retried += getattr(exc, "__notes__", [])
        _record_failure(store, run_id, time.monotonic() - started, exc, retried)
        raise
    meter.close()
    seconds = time.monotonic() - started
    store.finish_run(run_id, seconds=seconds, retries=retried)
    return SyncSummary(
        source=description,
        fetched=fetched,
        new=totals.new,
        edited=totals.edited,
        unchanged=totals.unchanged,
        deleted=totals.deleted,
        status_changed=totals.status_changed,
        seconds=seconds,
        restored=totals.restored,
    )


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """Fewer garbage-collector passes while pages stream through: for the ``sync`` command's entry.

    Every page is tens of thousands of short-lived objects; with the default thresholds the
    collector walks them (and the whole heap, often) many times per page, about a sixth of a
    sync's CPU. Freezing what exists and raising the first threshold keeps the passes rare. Both
    are settings of the whole process (the worker forked inside inherits them), so only a program
    that runs nothing else meanwhile, the command line, holds them; ``kobo-tip serve`` does not.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _add(totals: BatchOutcome, outcome: BatchOutcome) -> None:
    totals.new += outcome.new
    totals.edited += outcome.edited
    totals.unchanged += outcome.unchanged
    totals.deleted += outcome.deleted
    totals.status_changed += outcome.status_changed
    totals.restored += outcome.restored


def _record_failure(
    store: Store, run_id: int, seconds: float, exc: BaseException, retries: list[str]
) -> None:
    try:
        store.finish_run(run_id, seconds=seconds, error=_error_text(exc), retries=retries)
    except StoreError:
        # The original failure matters more than a run-log row that could not be closed.
        logger.warning("sync failed and its run-log row could not be closed")
