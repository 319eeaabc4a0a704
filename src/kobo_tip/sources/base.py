"""What every source yields, and what it may read of the store's state."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol


@dataclass(slots=True)  # not frozen: a frozen init costs more, once per submission
class RawSubmission:
    """One submission as the server sent it, with the facts sync needs about it."""

    submission_id: str  # Kobo str(_id); Central __id
    version_id: str  # Kobo _uuid; Central meta/instanceID; changes on every edit
    review_status: str | None  # approved | rejected | on_hold | unreviewed; None keeps the store's
    submitted_at: str  # UTC 'YYYY-MM-DDTHH:MM:SS'
    form_version: str
    data: dict[str, Any]


# The shapes of the metadata a server writes (issue 27): anything else in these keys was planted.
_UUID = re.compile(r"(?:uuid:)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
_ISO_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
_VERSIONS = ("form_version", "__version__")


def misshapen_metadata(data: Mapping[str, Any], *, strict: bool) -> tuple[str, ...]:
    """The metadata keys of ``data`` whose value is not in its own shape: ``_uuid`` a uuid (with
    ``strict``, as Kobo pushes it; else any identifier token, as exports and test servers write it),
    ``form_version`` and ``__version__`` a version token, ``_submission_time`` an ISO time."""
    bad = []
    for key, shape in (
        ("_uuid", _UUID if strict else _TOKEN),
        (_VERSIONS[0], _TOKEN),
        (_VERSIONS[1], _TOKEN),
        ("_submission_time", _ISO_TIME),
    ):
        value = data.get(key)
        if value is None:
            continue
        if key in _VERSIONS and type(value) is int:
            value = str(value)
        if type(value) is not str or not shape.fullmatch(value):
            bad.append(key)
    return tuple(bad)


class KnownSubmission(NamedTuple):
    """What the store holds of a non-deleted submission, for a reconcile pass. A tuple: a reconcile
    holds one for every stored submission, in each process of a sync."""

    version_id: str
    review_status: str


class SyncState(Protocol):
    """Read-only view of the store that a source plans its pull from."""

    full: bool
    reconcile_due: bool

    def watermark(self, name: str) -> str | None: ...

    def known(self) -> Mapping[str, KnownSubmission]: ...

    def deleted_since(self, since: str) -> list[str]:
        """The ids the store marked deleted at ``since`` (UTC ``YYYY-MM-DDTHH:MM:SSZ``) or later."""
        ...


@dataclass
class Batch:
    """One unit of work that sync commits in a single transaction."""

    submissions: list[RawSubmission] = field(default_factory=list)
    review_statuses: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    watermarks: dict[str, str] = field(default_factory=dict)
    reconciled: bool = False
    fetched: int = 0
    # On the first batch of a pass over the server or file: the rows the pass will bring in all,
    # where the source knows (Kobo's count, Central's @odata.count, a file's estimate); for progress.
    expected: int | None = None


@dataclass(frozen=True)
class FormFiles:
    """A built form, as deploy needs it."""

    form_id: str
    title: str
    version: str
    xlsx_path: Path
    xml_path: Path


@dataclass(frozen=True)
class DeployResult:
    uid: str  # Kobo asset uid; Central xmlFormId
    version: str
    url: str  # the server's page or API address of the form
    enketo_url: str = ""  # the web form link, when the server gives one
    messages: tuple[str, ...] = ()


class Source(Protocol):
    kind: str

    def describe(self) -> str: ...

    def batches(self, state: SyncState) -> Iterator[Batch]: ...

    def ready_to_deploy(self) -> None:
        """Raise the error ``deploy`` would meet before it sends anything (a missing credential,
        a source that cannot deploy), so a command fails before building or bumping a form."""
        ...

    def deploy(self, form: FormFiles, *, ignore_warnings: bool = False) -> DeployResult: ...

    def list_assets(self) -> list[dict[str, str]]: ...
