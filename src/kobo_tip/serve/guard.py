"""What one client can hold of ``kobo-tip serve``: a connection slot for a bounded time.

uvicorn bounds the size of a request's headers (``h11_max_incomplete_event_size``) and the idle
time between requests (``timeout_keep_alive``), but not the time a client may take to send its
headers: a client that never finishes them holds its connection, and its file descriptor, for
ever. ``limit_concurrency`` does not help there, as uvicorn applies it only once a request's
headers are in. So the protocol here adds the two missing bounds:

* a deadline for the headers of each request, from the moment the connection waits for one;
* at most ``max_connections`` connections, a number kept below the process's open-file limit so
  that ``accept()`` never fails for want of a descriptor. At the limit a new connection takes the
  place of the one that has waited longest without sending a whole request (a flood of idle
  connections cannot keep a real push out, since a push sends its headers at once); when every
  connection has a request in hand, the new one is answered 503 and closed.

The body's own deadline is the receiver's (``app``), which can still answer 408; the rest of a body
left unread by a refusal must arrive, with the next request's headers, within the header deadline.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from kobo_tip.errors import ConfigError
from kobo_tip.serve.events import log_event

# uvicorn's listen() backlog, which is also how many connections asyncio accepts in one go before
# any of them is counted: kept small so that a burst cannot outrun the count.
BACKLOG = 64
# Descriptors kept for everything but client connections (the store and its WAL, the log, the
# source's HTTP sessions, a render's files), plus the accepts of three bursts not yet counted.
RESERVED_FILES = 64 + 3 * BACKLOG
MIN_CONNECTIONS = 16
HEADER_BYTES = 16 * 1024  # a Kobo push's headers take well under 1 KB
_BUSY_BODY = b'{"detail": "Busy: try again later."}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 60\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_seconds: float


def open_file_limit() -> int | None:
    """The process's soft limit on open files (systemd's LimitNOFILE), None if unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_limit(configured: int, files: int | None) -> int:
    """``configured``, lowered to fit ``files`` open files with the reserve kept; a ConfigError when
    the limit leaves too few."""
    if files is None:
        return configured
    room = files - RESERVED_FILES
    if room < MIN_CONNECTIONS:
        raise ConfigError(
            f"kobo-tip serve may open only {files} files (RLIMIT_NOFILE), too few for "
            f"{MIN_CONNECTIONS} connections beside the {RESERVED_FILES} it keeps for itself: set "
            "LimitNOFILE=8192 in the systemd unit (or 'ulimit -n 8192' in the shell)."
        )
    return min(configured, room)


def bounded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the header deadline and the connection limit (one class per
    server: the connections waiting for a request are the server's)."""
    # Connections with no request in hand, oldest first (a dict keeps insertion order).
    waiting: dict[BoundedProtocol, None] = {}

    class BoundedProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _answered: Any = None  # the request cycle last answered when the wait began

        def connection_made(self, transport: Any) -> None:
            if len(self.connections) >= limits.max_connections:
                if not waiting:
                    # Every slot has a request in hand: this one is told to come back.
                    self.transport = transport
                    transport.write(_BUSY)
                    transport.close()
                    log_event(logging.WARNING, "connection_refused", reason="connections_full")
                    return
                next(iter(waiting)).drop("evicted")
            super().connection_made(transport)
            self._wait_for_request()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self in waiting and self.cycle is not self._answered:
                self._request_arrived()  # its headers are in: the app's own bounds hold from here

        def on_response_complete(self) -> None:
            answered = self.cycle
            super().on_response_complete()  # may read a pipelined request: a new cycle
            if not self.transport.is_closing() and self.cycle is answered:
                # No request in hand: the next one's headers (after the rest of this one's body,
                # if it was answered before reading it, as a refusal is) must arrive in time.
                self._wait_for_request()

        def connection_lost(self, exc: Exception | None) -> None:
            self._request_arrived()
            super().connection_lost(exc)

        def _wait_for_request(self) -> None:
            self._request_arrived()
            self._answered = self.cycle  # a new cycle is a new request (None: none yet)
            waiting[self] = None
            self._deadline = self.loop.call_later(limits.header_seconds, self.drop, "header_timeout")

        def _request_arrived(self) -> None:
            waiting.pop(self, None)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def drop(self, reason: str) -> None:
            """Close a connection that sent no whole request in time, or gave its slot to a new one."""
            self._request_arrived()
            if self.transport is not None and not self.transport.is_closing():
                log_event(logging.WARNING, "connection_closed", reason=reason)
                self.transport.abort()

    return BoundedProtocol


def uvicorn_bounds(limits: ConnectionLimits, keep_alive_seconds: int) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.Config`` that bound a client (``limit_max_requests``,
    which restarts a worker after so many requests, is for a process manager to use; not here)."""
    return {
        "http": bounded_protocol(limits),
        "ws": "none",
        "backlog": BACKLOG,
        "timeout_keep_alive": keep_alive_seconds,
        "h11_max_incomplete_event_size": HEADER_BYTES,
    }
