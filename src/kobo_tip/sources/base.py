"""What every source yields, and what it may read of the store's state."""

from __future__ import annotations

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
