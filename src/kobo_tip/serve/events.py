"""The service's log lines: one JSON object each, an event name and facts, never personal data.

While serving, the lines of uvicorn and asyncio are events too, and a line that repeats (a flood
of refused connections, an error of the event loop) is written at most ``REPEATS_SHOWN`` times a
minute: the next one after a quiet spell says how many were left out. Tracebacks are never
written (they quote local paths and, from a request, what it sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

from kobo_tip.store import utc_stamp

logger = logging.getLogger("kobo_tip.serve")
REPEATS_SHOWN = 10  # lines of one kind a window
REPEAT_WINDOW = 60.0  # seconds
# Loggers whose lines become events while serving (they would otherwise reach stderr as plain text).
SERVER_LOGGERS = ("asyncio", "uvicorn")


def event_line(event: str, **facts: Any) -> str:
    """``{"time": ..., "event": ..., **facts}`` as one line of JSON."""
    return orjson.dumps({"time": utc_stamp(), "event": event, **facts}, default=str).decode()


def log_event(level: int, event: str, **facts: Any) -> None:
    logger.log(level, "%s", event_line(event, **facts), extra={"event": event, "facts": facts})


class JsonLines(logging.Formatter):
    """While serving, every other line (a sync's progress, a retried request, uvicorn's and
    asyncio's own) becomes an event too, so a log collector reads one JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        dropped = getattr(record, "left_out", 0)
        left_out = {"repeats_left_out": dropped} if dropped else {}
        event = getattr(record, "event", None)
        if isinstance(event, str):
            return event_line(event, **getattr(record, "facts", {}), **left_out)
        # The message only: exc_info (a traceback) is left out on purpose.
        return event_line(
            "log",
            level=record.levelname.lower(),
            logger=record.name,
            message=record.getMessage(),
            **left_out,
        )


class RepeatLimit(logging.Filter):
    """Lets ``shown`` lines of one kind (an event's name, or a logger's message) through each
    ``window`` seconds; the first let through after some were dropped carries their number."""

    def __init__(self, shown: int = REPEATS_SHOWN, window: float = REPEAT_WINDOW) -> None:
        super().__init__()
        self.shown, self.window = shown, window
        self._kinds: dict[tuple[str, str], list[float]] = {}  # kind -> [window start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        event = getattr(record, "event", None)
        kind = (record.name, event if isinstance(event, str) else str(record.msg))
        now = time.monotonic()
        state = self._kinds.get(kind)
        if state is None or now - state[0] >= self.window:
            dropped = int(state[2]) if state else 0
            self._kinds[kind] = [now, 1, 0]
            if len(self._kinds) > 10_000:  # kinds of a long past: forget them
                recent = {key: value for key, value in self._kinds.items() if now - value[0] < self.window}
                self._kinds = recent
            record.left_out = dropped
            return True
        if state[1] < self.shown:
            state[1] += 1
            record.left_out = 0
            return True
        state[2] += 1
        return False

    def report(self) -> None:
        """One line for each kind of line left out since it was last shown (the service stops)."""
        kinds, self._kinds = self._kinds, {}
        for (name, kind), (_start, _count, dropped) in kinds.items():
            if dropped:
                log_event(logging.WARNING, "repeats_left_out", logger=name, kind=kind, count=int(dropped))


def loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's exception handler: what failed as one event, without its traceback (asyncio's
    own writes the traceback of each failed ``accept()``, thousands a second when out of files)."""
    error = context.get("exception")
    log_event(
        logging.ERROR,
        "loop_error",
        message=str(context.get("message", "")),
        error=type(error).__name__ if error is not None else None,
        errno=getattr(error, "errno", None),
    )


@contextlib.contextmanager
def json_log_lines(limit: RepeatLimit) -> Iterator[None]:
    """Format the handlers of the ``kobo_tip`` logger as ``JsonLines``, repeats limited by ``limit``,
    and send uvicorn's and asyncio's lines to them too, for the duration."""
    handlers = logging.getLogger("kobo_tip").handlers
    saved = [handler.formatter for handler in handlers]
    servers = [logging.getLogger(name) for name in SERVER_LOGGERS]
    saved_servers = [(server.propagate, server.level) for server in servers]
    for handler in handlers:
        handler.setFormatter(JsonLines())
        handler.addFilter(limit)
    for server in servers:
        server.propagate = False
        server.setLevel(logging.WARNING)
        for handler in handlers:
            server.addHandler(handler)
    try:
        yield
    finally:
        for server, (propagate, level) in zip(servers, saved_servers, strict=True):
            for handler in handlers:
                server.removeHandler(handler)
            server.propagate, server.level = propagate, level
        for handler, formatter in zip(handlers, saved, strict=True):
            handler.setFormatter(formatter)
            handler.removeFilter(limit)
