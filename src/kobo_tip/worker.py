"""Run the producing half of a sync (fetch, parse, prepare rows) in a forked second process.

Preparing a page costs about as much CPU as storing it; in a child process the two overlap on two
cores. Measured gain (bench_kobo_sync.py): of a Kobo row's 45 us of CPU the worker takes 24, so the
sync's wall time nearly halves. The child reads the store's state through the parent, which
answers only between batches: what the child reads always includes every batch it sent before.
Fork (not spawn) lets the child run the very source object the caller built; it is used where
fork is safe for what the child does (Linux), before the store is opened, so the child holds no
store or lock handle.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from kobo_tip.errors import SourceError
from kobo_tip.sources.base import KnownSubmission, SyncState

T = TypeVar("T")


class PrepareState(SyncState, Protocol):
    """What the producing half reads of the store: the source's state and the saved answer codes."""

    def answer_values(self) -> dict[str, list[Any]]: ...


@runtime_checkable
class _KnownPairs(Protocol):
    """A state that reads ``known`` as plain pairs without keeping them (the sync's)."""

    def known_pairs(self) -> dict[str, tuple[str, str]]: ...


Produce = Callable[[PrepareState], Iterator[T]]

# What travels: parent to child _START, _ANSWER; child to parent _ITEM, _CALL, _ERROR, _DONE.
_START, _ANSWER, _ITEM, _CALL, _ERROR, _DONE = "start", "answer", "item", "call", "error", "done"
_PICKLE_PROTO = pickle.PROTO  # b"\x80"
# Version 2: no back-references. A packed row shares nothing, and building the reference table
# made packing a fifth slower and unpacking a sixth (2.96 against 2.30 us a Kobo row to pack).
_MARSHAL_VERSION = 2
_PIPE_BYTES = 1 << 20
_MESSAGES_IN_HAND = 4  # a few pages: the worker may run ahead, memory stays bounded
_CLOSE_WAIT = 5.0  # seconds close() gives the worker, then the reader thread, to end
_STATE_CALLS = frozenset({"watermark", "known", "deleted_since", "answer_values"})


def worker_available() -> bool:
    """True where a sync may fork its producer: Linux with more than one core.

    macOS system libraries that requests reaches (proxy lookup) are not fork-safe, and Windows
    cannot fork; there, and on one core, a sync runs in one process.
    """
    return sys.platform == "linux" and (os.cpu_count() or 1) > 1


class RemoteTraceback(Exception):
    """The worker's traceback, attached as ``__cause__`` of the error it sent (shown by --debug)."""


class _Channel:
    """One process's ends of the two pipes between them: messages go out on one, come in on the other."""

    def __init__(self, incoming: Connection, outgoing: Connection) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self._outbox: queue.Queue[bytes | None] | None = None
        self._writer: threading.Thread | None = None
        self._broken = False

    def write_behind(self) -> None:
        """From now on ``send`` hands messages to a writer thread and returns (the worker's side).

        Writing a page into the pipe waited, 2 to 3 ms a page, for the parent's reader thread to
        get the GIL and take the first part; the worker now prepares the next page meanwhile.
        """
        self._outbox = queue.Queue(_MESSAGES_IN_HAND)
        self._writer = threading.Thread(target=self._write_out, name="kobo-tip-outbox", daemon=True)
        self._writer.start()

    def _write_out(self) -> None:
        assert self._outbox is not None
        while (data := self._outbox.get()) is not None:
            if not self._broken:  # once the parent has gone, drain: a put must never block
                try:
                    self._outgoing.send_bytes(data)
                except OSError:  # BrokenPipeError: the parent has gone
                    self._broken = True

    def send(self, message: Any) -> None:
        if self._outbox is None:
            self._outgoing.send_bytes(pack(message))
            return
        if self._broken:
            raise BrokenPipeError("the parent has closed the channel")
        self._outbox.put(pack(message))

    def flush(self) -> None:
        """Wait until the writer thread has written every message sent."""
        if self._outbox is not None and self._writer is not None:
            self._outbox.put(None)
            self._writer.join()

    def receive(self) -> Any:
        return unpack(self.receive_bytes())

    def receive_bytes(self) -> bytes:
        return self._incoming.recv_bytes()

    def close(self) -> None:
        self._incoming.close()
        self._outgoing.close()


class _ParentState:
    """The ``PrepareState`` the child sees: each read is a call answered by the parent."""

    def __init__(self, channel: _Channel, full: bool, reconcile_due: bool) -> None:
        self.full = full
        self.reconcile_due = reconcile_due
        self._channel = channel
        self._known: dict[str, KnownSubmission] | None = None

    def _call(self, name: str, *args: Any) -> Any:
        self._channel.send((_CALL, (name, args)))
        return self._channel.receive()[1]

    def watermark(self, name: str) -> str | None:
        return self._call("watermark", name)  # type: ignore[no-any-return]

    def known(self) -> Mapping[str, KnownSubmission]:
        if self._known is None:  # read once, as the parent's own state does
            known: dict[str, Any] = self._call("known")
            for sid, pair in known.items():  # in place: one tuple at a time in memory, not two dicts
                known[sid] = KnownSubmission._make(pair)
            self._known = known
        return self._known

    def deleted_since(self, since: str) -> list[str]:
        return self._call("deleted_since", since)  # type: ignore[no-any-return]

    def answer_values(self) -> dict[str, list[Any]]:
        return self._call("answer_values")  # type: ignore[no-any-return]


class Worker(Generic[T]):
    """A forked process running ``produce(state)``; ``items(state)`` yields what it produced."""

    def __init__(self, produce: Produce[T]) -> None:
        context = multiprocessing.get_context("fork")
        from_child, to_parent = context.Pipe(duplex=False)
        from_parent, to_child = context.Pipe(duplex=False)
        _widen(to_parent)
        self._channel = _Channel(from_child, to_child)
        child = _Channel(from_parent, to_parent)
        self._process = context.Process(
            target=_child, args=(produce, child, self._channel), name="kobo-tip-sync", daemon=True
        )
        self._process.start()
        child.close()
        # A reader thread keeps a few messages in hand, so neither process waits on the other's
        # slower batches (a checkpoint here, a slow page there).
        self._inbox: queue.Queue[bytes | None] = queue.Queue(_MESSAGES_IN_HAND)
        self._reader = threading.Thread(
            target=_read_into, args=(self._channel, self._inbox), name="kobo-tip-inbox", daemon=True
        )

    def items(self, state: PrepareState) -> Iterator[T]:
        """What the child produced, in order; its error re-raised here, with its traceback as cause."""
        channel = self._channel
        channel.send((_START, (state.full, state.reconcile_due)))
        self._reader.start()
        while True:
            data = self._inbox.get()
            if data is None:
                self._process.join(_CLOSE_WAIT)
                raise SourceError(
                    f"The sync's worker process stopped unexpectedly (exit code {self._process.exitcode}); "
                    "the batches committed so far are kept: run the sync again."
                )
            kind, payload = unpack(data)
            if kind == _ITEM:
                yield payload
            elif kind == _CALL:
                name, args = payload
                channel.send((_ANSWER, _state_answer(state, name, args)))
            elif kind == _DONE:
                return
            else:
                error, remote = payload
                error.__cause__ = RemoteTraceback(remote)
                raise error

    def close(self) -> None:
        """Stop the child if it still runs (an interrupted or failed sync), then the reader thread."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(_CLOSE_WAIT)
        # With the child gone the reader meets the pipe's end; it ends once it can hand that over.
        # The pipes close after it, so no read is ever left on a closed (and maybe reused) descriptor.
        deadline = time.monotonic() + _CLOSE_WAIT
        while self._reader.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                self._inbox.get(timeout=0.1)
        self._channel.close()


@contextlib.contextmanager
def worker(produce: Produce[T]) -> Iterator[Worker[T]]:
    """A ``Worker`` stopped on the way out, however the block ends."""
    running = Worker(produce)
    try:
        yield running
    finally:
        running.close()


def _read_into(channel: _Channel, inbox: queue.Queue[bytes | None]) -> None:
    try:
        while True:
            inbox.put(channel.receive_bytes())
    except (EOFError, OSError):  # the child has gone, or the parent closed the channel
        inbox.put(None)


def _widen(pipe: Connection) -> None:
    """A 1 MiB pipe where Linux allows it: a page of rows then crosses in two writes, not twenty."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # capped by /proc/sys/fs/pipe-max-size
            fcntl.fcntl(pipe.fileno(), set_size, _PIPE_BYTES)


def _state_answer(state: PrepareState, name: str, args: tuple[Any, ...]) -> Any:
    if name not in _STATE_CALLS:
        raise ValueError(f"the sync worker asked for an unknown state call {name!r}")
    if name == "known":
        # Pairs, read for the worker alone (the main process keeps none): a reconcile sends every
        # stored id, and plain tuples travel as marshal.
        if isinstance(state, _KnownPairs):
            return state.known_pairs()
        return {sid: tuple(known) for sid, known in state.known().items()}
    return getattr(state, name)(*args)


def _child(produce: Produce[Any], channel: _Channel, parent: _Channel) -> None:
    parent.close()  # the parent's ends: its exit then shows here as a closed pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches both; the parent ends the sync
    channel.write_behind()
    try:
        _, (full, reconcile_due) = channel.receive()
        for item in produce(_ParentState(channel, full, reconcile_due)):
            channel.send((_ITEM, item))
        channel.send((_DONE, None))
    except (BrokenPipeError, EOFError):
        return  # the parent has gone: nobody to tell
    except BaseException as exc:  # handed to the parent, which decides what the user sees
        with contextlib.suppress(BrokenPipeError, EOFError):
            channel.send((_ERROR, (_portable(exc), "".join(traceback.format_exception(exc)))))
    finally:
        channel.flush()


def pack(data: Any) -> bytes:
    """``data`` as bytes for the other process: marshal, in half pickle's time, for plain data
    (tuples, lists, dicts, strings, numbers, None); pickle for anything else."""
    try:
        return marshal.dumps(data, _MARSHAL_VERSION)
    except ValueError:
        return pickle.dumps(data, pickle.HIGHEST_PROTOCOL)


def unpack(packed: bytes) -> Any:
    """What ``pack`` was given. Pickle starts with its PROTO opcode, a byte no marshal type code is."""
    return pickle.loads(packed) if packed[:1] == _PICKLE_PROTO else marshal.loads(packed)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a SourceError naming its type for the parent to raise."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return SourceError(f"unexpected {type(exc).__name__} in the sync's worker process")
    return exc
