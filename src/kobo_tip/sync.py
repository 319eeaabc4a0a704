"""Pull a source into the store: person key added, UIC parts dropped, one transaction per batch."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import hmac
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from tqdm import tqdm

from kobo_tip import indicator as ind
from kobo_tip.answers import (
    MAX_DEPTH,
    AnswerCodes,
    NestedTooDeep,
    SubmissionReader,
    add_field_aliases,
    field_name,
    without_fields,
    without_top_fields,
)
from kobo_tip.config import Settings
from kobo_tip.errors import KoboTipError, SourceError, StoreError, SyncStopped
from kobo_tip.labels import Labels, field_labels, load_labels
from kobo_tip.person_key import KEY_FIELDS, key_parts
from kobo_tip.sources import KnownSubmission, RawSubmission, Source, open_source
from kobo_tip.sources.base import misshapen_metadata
from kobo_tip.store import BatchOutcome, NewAnswer, Store, SubmissionRow, open_store
from kobo_tip.worker import PrepareState, pack, unpack, worker, worker_available

logger = logging.getLogger("kobo_tip")
http_log = logging.getLogger("kobo_tip.http")

# Never stored: the raw UIC parts (contract section 3), and the keys where servers put the review state
# (Kobo _validation_status, Central CSV ReviewState, OData __system/reviewState and the updatedAt a
# review bumps). The review_status column holds the state, so a review never looks like an edit.
# The instance name too: a form's settings may build it from any answers, name codes included, and a
# pusher may fold them into it (issue 27); counting never reads it.
_NOT_STORED = frozenset(
    {*ind.UIC_PARTS, "_validation_status", "ReviewState", "reviewState", "updatedAt", "instanceName"}
)
_NOT_STORED_MARKS = tuple(f'{name}":'.encode() for name in _NOT_STORED)
# An HMAC of a fixed message tells whether today's secret is the store's, without revealing it.
FINGERPRINT = "secret_fingerprint"
_FINGERPRINT_MESSAGE = b"kobo-tip person-key secret check"
_LOG_EVERY = 5.0  # seconds between progress log lines when not on a terminal
# A key of the stored JSON that ends in a UIC part's name (after any separator a source uses) or is
# one of its labels: a UIC part that was not stripped. Found in the text, where a key is followed
# by `":` (in a string value that quote would be escaped); the names alone are looked for first.
_CLEAR_CODE_NAMES = tuple(
    name
    for part in ind.UIC_PARTS
    for name in (part, *(orjson.dumps(label).decode()[1:-1] for label in field_labels(part)))
)
_CLEAR_CODE_MARKS = tuple(
    f'{start}{name}":' for name in _CLEAR_CODE_NAMES for start in ('"', "/", "-", ".", ":")
)
# Answers a submission of the form always has: a page in which no row has any of them is not of it.
_REQUIRED = tuple(
    ind.COUNTED_FIELDS.index(name)
    for name in (
        ind.CONSENT,
        ind.EVENT_DATE,
        ind.ACTION,
        ind.STAKEHOLDER_TYPE,
        ind.STAKEHOLDER_ID,
        ind.PERSON_CATEGORY,
    )
)


@dataclass(frozen=True)
class SyncSummary:
    """What one sync did."""

    source: str
    fetched: int
    new: int
    edited: int
    unchanged: int
    deleted: int
    status_changed: int
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


def stored_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The submission as the store keeps it: no UIC parts, no review-state keys (one copy)."""
    return without_fields(data, _NOT_STORED)


def stored_json(data: Mapping[str, Any]) -> bytes:
    """The JSON the store keeps of ``stored_data(data)``, without walking the whole submission when it can.

    Keys stay in the server's order: a server sends one submission's keys in one order, so a copy
    that is sent again is stored as the same text, which is how an edit without a new version shows.
    """
    return _stored_text(data, without_top_fields(data, _NOT_STORED))


def _stored_text(data: Mapping[str, Any], kept: Mapping[str, Any]) -> bytes:
    """``stored_json(data)``, given ``data`` without its top-level fields that are not stored."""
    text = _dumps(kept)
    # Only an object further down (an ODK group, a repeat) can still hold a dropped field, and a key
    # naming one shows in the text as `name":` (inside a string value that quote would be escaped).
    if text.find(b"{", 1) != -1 and any(mark in text for mark in _NOT_STORED_MARKS):
        text = _dumps(stored_data(data))
    return text


def _dumps(data: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(data, default=str)
    except orjson.JSONEncodeError:
        pass
    try:  # a key that is not a string: no parsed JSON has one
        # OPT_NON_STR_KEYS writes it as a string, but makes every dump 60% slower.
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits, or nesting beyond orjson's limit: the standard library writes both.
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


# A submission on its way to the store, not keyed yet, packed (worker.pack) into one bytes object:
# submission_id, version_id, review_status, submitted_at, form_version, the stored JSON (bytes),
# the answers of KEY_FIELDS (the UIC parts among them, dropped by keyed_row) and the codes of the
# counted answers. Packed as soon as it is made, while it is fresh in the processor's cache, a row
# costs the worker an eighth less than when whole pages are packed (11.5 against 13.0 us).
UnkeyedRow = bytes
# What a batch says besides its rows: review statuses, deletions, watermarks, reconciled, rows
# fetched, the answers its rows coded for the first time (Store.apply_batch's new_answers), the
# rows its pass expects (Batch.expected) and the requests retried while it was fetched.
BatchFacts = tuple[
    dict[str, str], list[str], dict[str, str], bool, int, list[NewAnswer], int | None, list[str]
]
Prepared = tuple[BatchFacts, list[UnkeyedRow]]


def _uic_aliases(labels: Iterable[Labels]) -> dict[str, str]:
    return {label.field(part): part for label in labels for part in ind.UIC_PARTS}


def recognise_project_labels(settings: Settings) -> None:
    """Add the project's own label texts of the name-code questions (its translations folder may
    change them, or add a language) to the keys read, and dropped, as those questions. Called before
    a sync and a service read any submission."""
    add_field_aliases(_uic_aliases(load_labels(language) for language in settings.project.languages))


def odd_name_code_keys(data: Mapping[str, Any], depth: int = 0) -> list[str]:
    """The keys of ``data`` (at any depth) that address a name-code question without being written
    as Kobo and Central write it (``person/uic_given``, ``uic_given``): another case, a separator,
    a label, invisible or full-width letters. A sync drops them; a push holding one is refused."""
    odd = []
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if field_name(key) in ind.UIC_PARTS and key.rsplit("/", 1)[-1] not in ind.UIC_PARTS:
            odd.append(key)
        items = value if type(value) is list else [value]
        for item in items:
            if isinstance(item, Mapping) and depth < MAX_DEPTH:
                odd += odd_name_code_keys(item, depth + 1)
    return odd


def submission_reader(codes: AnswerCodes) -> SubmissionReader:
    """What reads a submission for the store: its counted answers coded, the person key's answers,
    and a copy without the fields never stored. ``codes`` continues the store's (``Store.answer_codes``)."""
    return SubmissionReader(codes, KEY_FIELDS, _NOT_STORED)


def unkeyed_row(raw: RawSubmission, reader: SubmissionReader) -> UnkeyedRow:
    """Find and code the answers, and encode the JSON the store keeps (no UIC parts in it).

    A submission nested deeper than any of the form is stored without its answers (counting then
    lists it as having none): reading it would exhaust the recursion. Metadata not in its own shape
    (``sources.base.misshapen_metadata``) is not stored, and the row's form version says so."""
    misshapen = misshapen_metadata(raw.data, strict=False)
    if misshapen:
        raw = _without_metadata(raw, misshapen)
    try:
        answer_codes, key_values, kept = reader.read(raw.data)
        text = _stored_text(raw.data, kept)
    except (NestedTooDeep, RecursionError):
        logger.warning(
            "submission %s nests deeper than the form can: stored without its answers", raw.submission_id
        )
        answer_codes, key_values, _ = reader.read({})
        text = b"{}"
    return pack(
        (
            raw.submission_id,
            raw.version_id,
            raw.review_status,
            raw.submitted_at,
            raw.form_version,
            text,  # bytes: decoding is left to keyed_row, in the other process
            key_values,
            answer_codes,  # coded here: small integers cost less to pack, unpack and store than answers
        )
    )


def _without_metadata(raw: RawSubmission, keys: tuple[str, ...]) -> RawSubmission:
    """``raw`` without the metadata ``keys``, whose values were planted: none of them reaches a
    column, the stored copy or a report; counting lists the submission as malformed."""
    logger.warning(
        "submission %s: %s not in its own shape, not stored", raw.submission_id, " and ".join(keys)
    )
    planted = {str(raw.data[key]).strip() for key in keys}
    data = {key: value for key, value in raw.data.items() if key not in keys}
    version_id = raw.version_id
    if version_id in planted:
        version_id = "sha256:" + hashlib.sha256(_dumps(data)).hexdigest()[:32]
    submitted_at = "" if "_submission_time" in keys else raw.submitted_at
    return RawSubmission(
        raw.submission_id, version_id, raw.review_status, submitted_at, ind.MISSHAPEN_METADATA, data
    )


def keyed_row(row: UnkeyedRow, secret: bytes) -> SubmissionRow:
    """Key the person; the UIC parts go no further."""
    submission_id, version_id, review_status, submitted_at, form_version, text, key_values, answer_codes = (
        unpack(row)
    )
    key, basis, reason = key_parts(key_values, submission_id, secret)
    # tuple.__new__ makes the very tuple SubmissionRow(...) would, without the Python frame of its
    # generated __new__; with key_parts' plain tuple, keying a row costs a tenth less.
    return _new_row(
        SubmissionRow,
        (
            submission_id,
            version_id,
            review_status,
            submitted_at,
            form_version,
            key,
            basis,
            reason,
            text.decode("utf-8"),
            answer_codes,
        ),
    )


_new_row = tuple.__new__


def prepare_row(raw: RawSubmission, secret: bytes, reader: SubmissionReader) -> SubmissionRow:
    """Key the person, drop the UIC parts, code the answers and encode what will be stored.

    The answers coded for the first time (``reader.codes.take_added``) go with the batch.
    """
    return keyed_row(unkeyed_row(raw, reader), secret)


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
    # The collector settings hold for both processes: the child inherits them.
    with _few_collections(), contextlib.ExitStack() as stack:
        if worker_available() if parallel is None else parallel:
            # Forked before the store opens: the child holds no store or lock handle.
            produce = stack.enter_context(worker(produce)).items
        store = stack.enter_context(open_store(settings))
        stack.enter_context(store.lock_for_sync())
        summary = _sync_into(store, settings, secret, full, progress, description, produce, stop)
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
            fetched = max(batch.fetched, len(rows))
            facts = (batch.review_statuses, batch.deleted, batch.watermarks, batch.reconciled, fetched)
            yield (*facts, codes.take_added(), batch.expected, retries.take()), rows
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
            statuses, deleted, watermarks, reconciled, batch_fetched, new, expected, retries = facts
            retried += retries
            meter.expect(expected)
            rows = [keyed_row(row, secret) for row in unkeyed]
            refuse_foreign(rows, description)
            outcome = store.apply_batch(
                rows,
                new_answers=new,
                run_id=run_id,
                review_statuses=statuses,
                deleted=deleted,
                watermarks=watermarks,
                reconciled=reconciled,
                fetched=batch_fetched,
            )
            fetched += batch_fetched
            _add(totals, outcome)
            meter.advance(batch_fetched)
            if stop is not None and stop.is_set():
                raise SyncStopped(f"{description}: sync stopped after {fetched} rows; the next one resumes.")
    except BaseException as exc:
        meter.close()
        retried += getattr(exc, "__notes__", [])
        _record_failure(store, run_id, time.monotonic() - started, exc, retried)
        raise
    meter.close()
    seconds = time.monotonic() - started
    store.finish_run(run_id, seconds=seconds, retries=retried)
    return SyncSummary(
        description,
        fetched,
        totals.new,
        totals.edited,
        totals.unchanged,
        totals.deleted,
        totals.status_changed,
        seconds,
        totals.restored,
    )


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Fewer garbage-collector passes while pages stream through.

    Every page is tens of thousands of short-lived objects; with the default thresholds the
    collector walks them (and the whole heap, often) many times per page, about a sixth of a
    sync's CPU. Freezing what exists and raising the first threshold keeps the passes rare.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def refuse_foreign(rows: list[SubmissionRow], description: str) -> None:
    """Refuse a batch (a page, or a part of a file) before it is stored when no row has an answer
    the form always has, or a row still holds a UIC part: it is not an export kobo-tip can read by
    field name (labels as headers, another form), and its codes must not reach the disk."""
    for row in rows:
        text = row.data_json
        if not any(name in text for name in _CLEAR_CODE_NAMES):
            continue
        found = next((mark for mark in _CLEAR_CODE_MARKS if mark in text), None)
        if found is not None:
            raise SourceError(
                f"{description}: submission {row.submission_id} holds a name code (a key ending in "
                f"{found.strip(chr(34) + ':/-.')!r}) where kobo-tip cannot remove it; nothing of this batch "
                "was stored. Export the data with field names as headers (Kobo: 'XML values and headers'), "
                "not labels."
            )
    if rows and not any(any(row.answer_codes[i] for i in _REQUIRED) for row in rows):
        raise SourceError(
            f"{description}: none of its {len(rows)} submissions has an answer of the {ind.FORM_ID} form by "
            "field name (consent, event_date, action, stakeholder_id, ...); nothing of it was stored. "
            "Is it an export of another form, or one with labels as headers? Export it with field names "
            "(Kobo: 'XML values and headers')."
        )


def secret_fingerprint(secret: bytes) -> str:
    """What a store records of the secret its keys were made with (``meta`` ``FINGERPRINT``)."""
    return hmac.new(secret, _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()


def check_secret(store: Store, secret: bytes, env_name: str) -> None:
    """Refuse to mix person keys made with two secrets: the same person would count twice."""
    fingerprint = secret_fingerprint(secret)
    recorded = store.meta_value(FINGERPRINT)
    if recorded is None:
        store.set_meta_value(FINGERPRINT, fingerprint)
    elif recorded != fingerprint:
        raise StoreError(
            f"The person-key secret in {env_name} is not the one the store {store.path} was keyed with: "
            "set the old secret again, or move the store away and sync everything anew."
        )


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
