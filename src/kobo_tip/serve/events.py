"""The service's log lines: one JSON object each, an event name and facts, never personal data."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson

from kobo_tip.store import utc_stamp

logger = logging.getLogger("kobo_tip.serve")


def event_line(event: str, **facts: Any) -> str:
    """``{"time": ..., "event": ..., **facts}`` as one line of JSON."""
    return orjson.dumps({"time": utc_stamp(), "event": event, **facts}).decode()


def log_event(level: int, event: str, **facts: Any) -> None:
    logger.log(level, "%s", event_line(event, **facts))


class JsonLines(logging.Formatter):
    """While serving, every other kobo_tip line (a sync's progress, a retried request) becomes an
    event too, so a log collector reads one JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == logger.name:
            return record.getMessage()
        return event_line(
            "log", level=record.levelname.lower(), logger=record.name, message=record.getMessage()
        )


@contextlib.contextmanager
def json_log_lines() -> Iterator[None]:
    """Format the handlers of the ``kobo_tip`` logger as ``JsonLines`` for the duration."""
    handlers = logging.getLogger("kobo_tip").handlers
    saved = [handler.formatter for handler in handlers]
    for handler in handlers:
        handler.setFormatter(JsonLines())
    try:
        yield
    finally:
        for handler, formatter in zip(handlers, saved, strict=True):
            handler.setFormatter(formatter)
