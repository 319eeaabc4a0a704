"""What every back end of the store shares: its connection's shape, its transactions, and
how a database failure becomes one sentence."""

from __future__ import annotations

import abc
import contextlib
import functools
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from kobo_tip.answers import AnswerCodes
from kobo_tip.errors import StoreError

_LAST_RECONCILE = "last_reconcile"
_LAST_PUSH, _PUSHES = "last_push", "pushes"  # when the last push was stored; how many so far


class StoreBase(abc.ABC):
    """The state the concerns (``writes``, ``reads``, ``runlog``) work on. A back end gives the
    connection (``_db``: ``execute`` and ``executemany`` with ``?`` parameters), its transactions
    and the database errors it can meet: an abstract base, so a back end that misses one cannot
    be made at all."""

    path: Path | str  # what the store is called in messages: a file, or a database and schema
    _db: Any

    def __init__(self) -> None:
        self._expect_new = True  # the last batch held only new submissions: try the next as such first
        self._codes: AnswerCodes | None = None  # apply_pushed's answer codes, and how many are saved
        self._codes_count = 0

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction: committed when the block ends, rolled back when it raises."""

    @abc.abstractmethod
    def _reading(self) -> contextlib.AbstractContextManager[None]:
        """One read snapshot: every read in the block sees the same committed state."""

    @abc.abstractmethod
    def answer_codes(self) -> AnswerCodes:
        """The saved answer codes (``reads.CountingReads``)."""

    def _answer_param(self, key: str | bytes) -> Any:
        """How ``answers.answer_key`` (a string, or the JSON of anything else) is saved: as it is in
        SQLite, whose column takes TEXT and BLOB alike."""
        return key

    def _answer_value(self, saved: Any) -> Any:
        """The answer ``_answer_param`` saved."""
        return json.loads(saved) if isinstance(saved, bytes) else saved

    @abc.abstractmethod
    def _damaged(self, exc: Exception) -> StoreError | None:
        """The sentence for a database failure of a read or a write, or None to let it through."""


_Store = TypeVar("_Store", bound=StoreBase)
_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def told(
    method: Callable[Concatenate[_Store, _Params], _Result],
) -> Callable[Concatenate[_Store, _Params], _Result]:
    """A store method whose database failure becomes one sentence (``StoreBase._damaged``)."""

    if inspect.isgeneratorfunction(method):
        generator = cast("Callable[Concatenate[_Store, _Params], Iterator[Any]]", method)

        @functools.wraps(method)
        def generate(self: _Store, *args: _Params.args, **kwargs: _Params.kwargs) -> Iterator[Any]:
            try:
                yield from generator(self, *args, **kwargs)
            except Exception as exc:
                if (error := self._damaged(exc)) is None:
                    raise
                raise error from None

        return cast("Callable[Concatenate[_Store, _Params], _Result]", generate)

    @functools.wraps(method)
    def call(self: _Store, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
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
