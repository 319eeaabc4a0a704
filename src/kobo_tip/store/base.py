"""What every back end of the store shares: its connection's shape, its transactions, and
how a database failure becomes one sentence."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kobo_tip.answers import AnswerCodes
from kobo_tip.errors import StoreError

_LAST_RECONCILE = "last_reconcile"
_LAST_PUSH, _PUSHES = "last_push", "pushes"  # when the last push was stored; how many so far


class StoreBase:
    """The state the concerns (``writes``, ``reads``, ``runlog``) work on. A back end gives the
    connection (``_db``: ``execute`` and ``executemany`` with ``?`` parameters), its transactions
    and the database errors it can meet."""

    path: Path | str  # what the store is called in messages: a file, or a database and schema
    _db: Any

    def __init__(self) -> None:
        self._expect_new = True  # the last batch held only new submissions: try the next as such first
        self._codes: AnswerCodes | None = None  # apply_pushed's answer codes, and how many are saved
        self._codes_count = 0

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _reading(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def answer_codes(self) -> AnswerCodes:
        raise NotImplementedError

    def _answer_param(self, key: str | bytes) -> Any:
        """How ``answers.answer_key`` (a string, or the JSON of anything else) is saved: as it is in
        SQLite, whose column takes TEXT and BLOB alike."""
        return key

    def _answer_value(self, saved: Any) -> Any:
        """The answer ``_answer_param`` saved."""
        return json.loads(saved) if isinstance(saved, bytes) else saved

    def _damaged(self, exc: Exception) -> StoreError | None:
        """The sentence for a database failure of a read or a write, or None to let it through."""
        raise NotImplementedError


def told(method: Callable[..., Any]) -> Callable[..., Any]:
    """A store method whose database failure becomes one sentence (``StoreBase._damaged``)."""

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generate(self: StoreBase, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except Exception as exc:
                if (error := self._damaged(exc)) is None:
                    raise
                raise error from None

        return generate

    @functools.wraps(method)
    def call(self: StoreBase, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if (error := self._damaged(exc)) is None:
                raise
            raise error from None

    return call


def _id_order(submission_id: str) -> int | None:
    """Numeric ids (Kobo ``_id``) as integers, so they sort as numbers."""
    if len(submission_id) <= 18 and submission_id.isascii() and submission_id.isdigit():
        return int(submission_id)
    return None
