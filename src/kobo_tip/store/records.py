"""What the store gives and takes: plain records, and the one timestamp format of its columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple


def utc_stamp(moment: dt.datetime | str | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC: the one timestamp format of the store's own columns."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    moment = moment or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The meta key of a project store whose outside releases its programme makes: the programme config.
PROGRAMME_MEMBER = "programme"


@dataclass(slots=True)  # not frozen: a frozen init costs more, once per submission
class StoredSubmission:
    """One submission as the store holds it (UIC parts removed, person key added)."""

    submission_id: str
    version_id: str
    review_status: str
    submitted_at: str
    form_version: str
    person_key: str
    key_basis: str
    key_reason: str
    deleted: bool
    data: dict[str, Any]


class SubmissionRow(NamedTuple):  # a tuple: made once per submission, and pickled between processes
    """What sync writes for one submission; ``review_status`` None keeps the store's."""

    submission_id: str
    version_id: str
    review_status: str | None
    submitted_at: str
    form_version: str
    person_key: str
    key_basis: str
    key_reason: str
    data_json: str
    answer_codes: Sequence[int]  # the codes of the answers of ANSWER_COLUMNS, in that order (AnswerCodes)


NewAnswer = tuple[str, int, Any]  # field, code, answer: AnswerCodes.take_added


@dataclass
class BatchOutcome:
    """What one committed batch changed."""

    new: int = 0
    edited: int = 0
    unchanged: int = 0
    deleted: int = 0
    status_changed: int = 0
    restored: int = 0  # of ``new``: stored as deleted, and listed by the server again
    # Pushed submissions the server had deleted, as a sync found: dropped, never stored again.
    stale: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SyncCounts:
    """What one sync did to the store, counted: a sync's summary and a row of the run log both."""

    source: str
    fetched: int
    new: int
    edited: int
    unchanged: int
    deleted: int
    status_changed: int


@dataclass(frozen=True)
class RunInfo(SyncCounts):
    """One row of the run log."""

    id: int
    started: str
    finished: str | None
    seconds: float | None
    error: str | None
    retries: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreCounts:
    """What ``kobo-tip status`` shows about the store."""

    path: Path | str  # a file, or a PostgreSQL database and schema
    submissions: int  # not deleted
    deleted: int
    by_review_status: dict[str, int]
    by_key_basis: dict[str, int]
    first_submitted_at: str | None
    last_submitted_at: str | None
    last_reconcile: str | None
    watermarks: dict[str, str]


@dataclass(frozen=True)
class StoredRelease:
    """One saved release: ``cells`` maps each column name to its values."""

    id: int
    audience: str
    released_at: str
    k: int
    through: str
    last_run: int
    cells: dict[str, list[Any]]


@dataclass(frozen=True)
class LedgerRows:
    """Rows of the as-reported ledger (contract section 4), as saved and as read back.

    ``quarters``: (indicator, quarter, released_at, seeded); ``cells``: (indicator, quarter,
    dimension, category, value); ``persons``: (indicator, person_key, quarter, submission_id,
    released_at, categories as JSON)."""

    quarters: list[tuple[str, str, str, bool]] = field(default_factory=list)
    cells: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    persons: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.quarters or self.cells or self.persons)
