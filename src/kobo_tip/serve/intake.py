"""Pushed submissions into the store: keyed and stripped of the UIC parts in memory, committed in
groups by one writer thread, each push answered only once its group is committed.

One writer keeps SQLite's single-writer rule inside the service (the receiver's threads never
wait on each other's transactions), and a group commit costs one fsync for many pushes. The
bounded queue is the overload signal: when it is full the receiver answers 503, which Kobo
retries, and the scheduled poll brings whatever Kobo gave up on.

A push for a submission a sync found deleted on the server is stale (Kobo has no restore): the
store drops it, and it is answered 200 all the same. Kobo counts any 2xx as delivered and never
sends it again; a 4xx would be logged as a failed delivery in Kobo and in ``kobo-tip status``,
and re-sent by every "retry failed" an officer clicks, for a push there is nothing to do about.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import orjson

from kobo_tip.answers import AnswerCodes
from kobo_tip.errors import KoboTipError, SourceError
from kobo_tip.rows import keyed_row, odd_name_code_keys, refuse_foreign, submission_reader, unkeyed_row
from kobo_tip.serve.events import log_event
from kobo_tip.sources.base import RawSubmission, misshapen_metadata
from kobo_tip.sources.kobo import raw_submission
from kobo_tip.store import NewAnswer, Store, SubmissionRow

GROUP_LIMIT = 500  # pushes committed in one transaction at most
PUSH = "a pushed submission"


class PushRefused(KoboTipError):
    """A push that is not a submission of this form; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Overloaded(KoboTipError):
    """The queue of pushes waiting for the store is full (503: Kobo retries)."""


def read_push(body: bytes, asset_uid: str) -> RawSubmission:
    """The submission a Kobo REST Service (JSON) sent: the data API's JSON of one submission."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # integers beyond 64 bits, which orjson refuses, are still JSON
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise PushRefused("The body is not JSON.") from None
    if not isinstance(data, dict):
        raise PushRefused("The body is not a JSON object (one submission, as Kobo's REST Service sends).")
    form = data.get("_xform_id_string")
    if form is not None and form != asset_uid:
        raise PushRefused("The submission is of another form than this asset.", 422)
    if odd_name_code_keys(data):  # never a key Kobo writes: a pusher trying the check (issue 27)
        raise PushRefused(
            "The submission holds a name code under a key Kobo does not write (another case, "
            "separator or alphabet, or a label); refused: nothing of it is stored.",
            422,
        )
    misshapen = misshapen_metadata(data, strict=True)
    if misshapen:  # planted values (issue 27): never stored, never on a report
        raise PushRefused(
            f"The submission's {' and '.join(misshapen)} is not in its own shape (a uuid, a version, an ISO "
            "time).",
            422,
        )
    try:
        return raw_submission(data)
    except SourceError:
        raise PushRefused(
            "The submission lacks a valid _id (a whole number, as JSON or decimal text) or _uuid.", 422
        ) from None


@dataclass
class _Pending:
    raw: RawSubmission
    future: Future[dict[str, str]]  # the answer's body once committed: stored, or dropped


def stored_answer(submission_id: str) -> dict[str, str]:
    return {"stored": submission_id}


def dropped_answer(submission_id: str) -> dict[str, str]:
    return {"dropped": submission_id, "detail": "Deleted on the server: a push does not bring it back."}


class Intake:
    """The writer thread and its queue, on a store of its own (``open_store``). ``on_change`` is
    called after a commit that stored something new or edited (the service renders then)."""

    def __init__(
        self, open_store: Callable[[], Store], secret: bytes, limit: int, on_change: Callable[[], None]
    ) -> None:
        self.open_store, self.secret, self.on_change = open_store, secret, on_change
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=limit)
        self._thread = threading.Thread(target=self._run, name="kobo-tip push writer", daemon=True)
        self.last_error = ""
        self.stored = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, raw: RawSubmission) -> Future[dict[str, str]]:
        """Queue ``raw``; once it is committed, the future gives the answer's body (``stored`` or,
        for a submission deleted on the server, ``dropped``, with its id), or raises."""
        pending = _Pending(raw, Future())
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise Overloaded("Too many pushes are waiting for the store.") from None
        return pending.future

    def close(self) -> None:
        """Commit everything queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        with self.open_store() as store:
            while True:
                first = self._queue.get()
                group = [first] if first is not None else []
                stopping = first is None
                while not stopping and len(group) < GROUP_LIMIT:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                    else:
                        group.append(item)
                if group:
                    self._commit(store, group)
                if stopping:
                    return

    def _commit(self, store: Store, group: list[_Pending]) -> None:
        started = time.monotonic()
        refused: dict[int, PushRefused] = {}

        def make_rows(codes: AnswerCodes) -> tuple[list[SubmissionRow], list[NewAnswer]]:
            reader = submission_reader(codes)
            rows = []
            for number, pending in enumerate(group):
                row = keyed_row(unkeyed_row(pending.raw, reader), self.secret)
                try:
                    refuse_foreign([row], PUSH)
                except SourceError as exc:
                    refused[number] = PushRefused(exc.message, 422)
                    continue
                rows.append(row)
            return rows, codes.take_added()

        try:
            outcome = store.apply_pushed(make_rows)
        except Exception as exc:
            # A message of ours holds no data; anything else may quote a submission: its type only.
            error = exc.message if isinstance(exc, KoboTipError) else f"unexpected {type(exc).__name__}"
            self.last_error = error
            log_event(logging.ERROR, "push_failed", pushes=len(group), error=error)
            for pending in group:
                pending.future.set_exception(KoboTipError(error))
            return
        self.last_error = ""
        seconds = time.monotonic() - started
        stale = set(outcome.stale)
        for number, pending in enumerate(group):
            sid = pending.raw.submission_id
            if number in refused:
                pending.future.set_exception(refused[number])
            elif sid in stale:
                pending.future.set_result(dropped_answer(sid))
            else:
                pending.future.set_result(stored_answer(sid))
        for sid in outcome.stale:
            # The id only: what the push held is never written anywhere.
            log_event(logging.WARNING, "push_dropped", submission_id=sid, reason="deleted on the server")
        self.stored += outcome.new + outcome.edited
        log_event(
            logging.INFO,
            "pushes_stored",
            pushes=len(group),
            new=outcome.new,
            edited=outcome.edited,
            unchanged=outcome.unchanged,
            dropped=len(outcome.stale),
            refused=len(refused),
            ms=round(seconds * 1000),
        )
        if outcome.new or outcome.edited:
            self.on_change()
