"""The sync's worker process: items in order, state read through the parent, errors carried across."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kobo_tip.errors import ServerError, SourceError
from kobo_tip.sources import KnownSubmission
from kobo_tip.worker import PrepareState, RemoteTraceback, _Channel, pack, unpack, worker, worker_available

pytestmark = pytest.mark.skipif(not worker_available(), reason="the sync worker needs fork (Linux)")


class CountingState:
    """A parent-side state that counts how the child read it."""

    full = True
    reconcile_due = False

    def __init__(self) -> None:
        self.marks = {"kobo_last_id": "41"}
        self.reads: list[str] = []

    def watermark(self, name: str) -> str | None:
        self.reads.append(f"watermark {name}")
        return self.marks.get(name)

    def known(self) -> dict[str, KnownSubmission]:
        self.reads.append("known")
        return {"7": KnownSubmission("v7", "approved")}

    def answer_values(self) -> dict[str, list[Any]]:
        self.reads.append("answer_values")
        return {"gender": [None, "female", "male"], "age_years": [None, 17]}


def reading(state: PrepareState) -> Iterator[Any]:
    yield ("flags", state.full, state.reconcile_due)
    yield ("mark", state.watermark("kobo_last_id"), state.watermark("other"))
    known = state.known()
    yield ("known", {sid: (k.version_id, k.review_status) for sid, k in known.items()})
    assert state.known() is known  # read once
    yield ("answers", state.answer_values())
    yield ("odd", {1, 2}, KnownSubmission("v", "s"))  # not plain data: travels pickled


@pytest.mark.parametrize(
    "data",
    [
        None,
        ("1", "v", None, "", "", '{"a":"é"}', ["no", None, "", 1.5, float("inf"), [1, {"k": "v"}]]),
        {"statuses": {"7": "approved"}, "deleted": ["8"], "reconciled": True, "fetched": 2**70},
        (b"\x80 starts like pickle", "\x80"),
        {"odd", "set"},  # marshal-able too
    ],
)
def test_plain_data_packs_as_marshal_and_comes_back_equal(data: Any) -> None:
    packed = pack(data)
    assert packed[:1] != b"\x80" and unpack(packed) == data


@pytest.mark.parametrize("data", [KnownSubmission("v", "s"), ServerError("x", status=1), [1, object]])
def test_other_data_packs_as_pickle_and_comes_back(data: Any) -> None:
    packed = pack(data)
    assert packed[:1] == b"\x80"
    back = unpack(packed)
    assert type(back) is type(data) and repr(back) == repr(data)


def test_items_arrive_in_order_and_state_reads_are_answered_by_the_parent() -> None:
    state = CountingState()
    with worker(reading) as running:
        items = list(running.items(state))
    assert items == [
        ("flags", True, False),
        ("mark", "41", None),
        ("known", {"7": ("v7", "approved")}),
        ("answers", {"gender": [None, "female", "male"], "age_years": [None, 17]}),
        ("odd", {1, 2}, KnownSubmission("v", "s")),
    ]
    assert state.reads == ["watermark kobo_last_id", "watermark other", "known", "answer_values"]


def test_a_state_read_sees_what_the_parent_did_after_the_items_before_it() -> None:
    state = CountingState()

    def produce(state: PrepareState) -> Iterator[str | None]:
        yield "first"
        yield state.watermark("kobo_last_id")

    with worker(produce) as running:
        seen = []
        for item in running.items(state):
            seen.append(item)
            state.marks["kobo_last_id"] = "99"  # what committing "first" does in a sync
    assert seen == ["first", "99"]


def failing(state: PrepareState) -> Iterator[int]:
    yield 1
    raise ServerError("HTTP 502 from the server.", status=502, url="http://127.0.0.1/x", detail="bad gateway")


def test_the_childs_error_arrives_with_its_class_facts_and_traceback() -> None:
    received: list[int] = []
    with worker(failing) as running, pytest.raises(ServerError) as caught:
        received.extend(running.items(CountingState()))
    assert received == [1]
    error = caught.value
    assert (error.message, error.status, error.url, error.detail) == (
        "HTTP 502 from the server.",
        502,
        "http://127.0.0.1/x",
        "bad gateway",
    )
    assert isinstance(error.__cause__, RemoteTraceback) and "in failing" in str(error.__cause__)


class Unpicklable(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)  # args hold one of the two: unpickling calls __init__ with one
        self.second = second


def test_an_error_that_cannot_cross_becomes_a_source_error_naming_its_type() -> None:
    def produce(state: PrepareState) -> Iterator[int]:
        raise Unpicklable("a", "b")
        yield 0

    with worker(produce) as running, pytest.raises(SourceError, match="unexpected Unpicklable"):
        list(running.items(CountingState()))


def test_a_worker_that_dies_is_reported_and_nothing_waits_forever() -> None:
    def produce(state: PrepareState) -> Iterator[int]:
        yield 1
        os._exit(3)

    with (
        worker(produce) as running,
        pytest.raises(SourceError, match=r"stopped unexpectedly \(exit code 3\)"),
    ):
        list(running.items(CountingState()))


def test_leaving_early_stops_the_child() -> None:
    def endless(state: PrepareState) -> Iterator[int]:
        number = 0
        while True:
            number += 1
            yield number

    with worker(endless) as running:
        for number in running.items(CountingState()):
            if number == 3:
                break
        process, reader = running._process, running._reader
    assert not process.is_alive() and not reader.is_alive()


def test_a_worker_whose_parent_has_gone_gets_broken_pipe_and_never_blocks() -> None:
    incoming, outgoing = multiprocessing.Pipe(duplex=False)
    channel = _Channel(incoming, outgoing)
    incoming.close()  # the parent's end
    channel.write_behind()
    with pytest.raises(BrokenPipeError):
        for number in range(1000):  # far more than the writer thread keeps in hand
            channel.send(("item", number, "x" * 10_000))
    channel.flush()  # returns: the writer thread has drained and ended
    outgoing.close()


def test_no_reader_thread_outlives_its_sync() -> None:
    for produce in (reading, failing):
        with worker(produce) as running, contextlib.suppress(ServerError):
            list(running.items(CountingState()))
    assert not [thread for thread in threading.enumerate() if thread.name == "kobo-tip-inbox"]
