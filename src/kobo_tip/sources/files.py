"""Export files as a source: Kobo data-API JSON, ODK Central OData JSON, Kobo and Central CSV.

A file is a complete snapshot of the form's submissions, so every sync reads all of it and ends
with a reconcile batch: stored submissions absent from the file are marked deleted.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kobo_tip import indicator as ind
from kobo_tip.answers import find_answers
from kobo_tip.config import Settings
from kobo_tip.errors import ConfigError, SourceError
from kobo_tip.sources.base import Batch, DeployResult, FormFiles, RawSubmission, SyncState

logger = logging.getLogger("kobo_tip")

BATCH_SIZE = 1000
_SUFFIXES = (".json", ".csv")
_SPLIT_BOUNDARY = re.compile(r"[/\-]")
# Kobo CSV exports write the validation status as its label, or as its uid.
_KOBO_STATUS_LABELS = {"approved": "approved", "not approved": "rejected", "on hold": "on_hold"}
_UNREVIEWED = "unreviewed"
_LOOKED_UP = ("instanceID", "rootUuid", ind.FORM_VERSION)  # answers read from every row, in one walk
_CSV_STATUS_COLUMNS = frozenset({"_validation_status", "ReviewState"})
# A CSV export names at least one of these columns; anything else is not an export of this kind.
_CSV_ID_COLUMNS = frozenset({"_id", "_uuid", "KEY", "meta/instanceID", "meta-instanceID", "instanceID"})


class FileSource:
    """Submissions from an export file, or a folder of page files read in name order."""

    kind = "file"

    def __init__(self, path: Path, *, batch_size: int = BATCH_SIZE) -> None:
        self.path = path
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSource:
        if settings.source.path is None:
            raise ConfigError(
                '[source] path is missing: kind = "file" needs path = "<export .json or .csv, or a folder>".'
            )
        return cls(settings.source.path)

    def describe(self) -> str:
        return f"file {self.path}"

    def batches(self, state: SyncState) -> Iterator[Batch]:
        seen: set[str] = set()
        batch: list[RawSubmission] = []
        for raw in self.submissions():
            if raw.submission_id in seen:
                logger.warning(
                    "%s holds submission %s twice; the first is kept", self.path, raw.submission_id
                )
                continue
            seen.add(raw.submission_id)
            batch.append(raw)
            if len(batch) >= self.batch_size:
                yield Batch(submissions=batch, fetched=len(batch))
                batch = []
        if batch:
            yield Batch(submissions=batch, fetched=len(batch))
        gone = [sid for sid in state.known() if sid not in seen]
        yield Batch(deleted=gone, reconciled=True)

    def submissions(self) -> Iterator[RawSubmission]:
        """Every submission of the file (or folder), in file order."""
        for path in self._files():
            for row in _read_rows(path):
                yield to_raw_submission(row)

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
            if not files:
                raise SourceError(f"The folder {self.path} holds no .json or .csv export files.")
            return files
        if not self.path.is_file():
            raise SourceError(f"The export file {self.path} does not exist; check [source] path.")
        return [self.path]

    def deploy(self, form: FormFiles, *, ignore_warnings: bool = False) -> DeployResult:
        raise SourceError(
            'A file source cannot deploy a form: set [source] kind = "kobo" or "odk_central" to deploy.'
        )

    def list_assets(self) -> list[dict[str, str]]:
        raise SourceError(
            'A file source has no server assets to list: set [source] kind = "kobo" to list them.'
        )


# --- reading ---------------------------------------------------------------------------------


def _read_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            head = handle.read(4096).lstrip()
            handle.seek(0)
            if path.suffix.lower() == ".json" or head[:1] in ("{", "["):
                yield from _json_rows(path, handle.read())
            else:
                yield from _csv_rows(path, handle)
    except UnicodeDecodeError:
        raise SourceError(
            f"{path} is not UTF-8 text: export the data as JSON or CSV (not XLSX or a zip)."
        ) from None
    except OSError as exc:
        raise SourceError(f"Cannot read {path}: {exc.strerror}.") from None


def _json_rows(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "the file may be truncated: download it again."
        ) from None
    rows = document.get("results", document.get("value")) if isinstance(document, dict) else document
    if not isinstance(rows, list):
        raise SourceError(
            f"{path} holds neither a list of submissions, a Kobo {{'results': [...]}} page "
            "nor an ODK Central OData {'value': [...]} document."
        )
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise SourceError(f"{path}: submission {number} is a {type(row).__name__}, not a JSON object.")
    return rows


def _csv_rows(path: Path, handle: Iterable[str]) -> Iterator[dict[str, Any]]:
    lines = iter(handle)
    header_line = next(lines, "")
    if not header_line.strip():
        raise SourceError(f"{path} is empty: expected a CSV export with a header row.")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    if header_line.count(delimiter) == 0:
        raise SourceError(f"{path} is neither JSON nor a CSV export (no ';' or ',' in its first line).")
    reader = csv.reader(_chain(header_line, lines), delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
        if not _CSV_ID_COLUMNS & set(header):
            raise SourceError(
                f"{path} is not a Kobo or ODK Central CSV export: it has no _id, _uuid, KEY or "
                "meta/instanceID column."
            )
        names = set(header)
        kept = [i for i, name in enumerate(header) if name and not _is_split_column(name, names)]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise SourceError(
                    f"{path} line {reader.line_num} has {len(row)} cells where the header has "
                    f"{len(header)}; the file may be truncated or not an unedited export: export it again."
                )
            # Unanswered questions are absent, as in JSON; an empty status column means unreviewed.
            yield {header[i]: row[i] for i in kept if row[i] != "" or header[i] in _CSV_STATUS_COLUMNS}
    except csv.Error as exc:
        raise SourceError(f"{path} line {reader.line_num} is not valid CSV: {exc}.") from None


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _is_split_column(name: str, header: set[str]) -> bool:
    """``event/services/medical`` is a 0/1 column of the select_multiple ``event/services``."""
    return any(name[: match.start()] in header for match in _SPLIT_BOUNDARY.finditer(name))


# --- one row -> RawSubmission ------------------------------------------------------------------


def to_raw_submission(data: dict[str, Any]) -> RawSubmission:
    """The sync facts of one Kobo, Central OData or CSV row."""
    system_value = data.get("__system")
    system: Mapping[str, Any] = system_value if isinstance(system_value, Mapping) else {}
    found = find_answers(data, _LOOKED_UP)
    version = _text(data.get("_uuid")) or _text(found.get("instanceID")) or _content_id(data)
    return RawSubmission(
        submission_id=_submission_id(data, found),
        version_id=version,
        review_status=_review_status(data, system),
        submitted_at=utc_naive(
            data.get("_submission_time") or system.get("submissionDate") or data.get("SubmissionDate")
        ),
        form_version=_text(found.get(ind.FORM_VERSION))
        or _text(data.get("__version__"))
        or _text(system.get("formVersion"))
        or _text(data.get("FormVersion")),
        data=data,
    )


def _submission_id(data: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    for value in (data.get("_id"), data.get("__id"), data.get("KEY")):
        text = _text(value)
        if text:
            return text
    root = _text(found.get("rootUuid")) or _text(found.get("instanceID")) or _text(data.get("_uuid"))
    if root:
        return root if root.startswith("uuid:") else f"uuid:{root}"
    return _content_id(data)


def _content_id(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _review_status(data: Mapping[str, Any], system: Mapping[str, Any]) -> str | None:
    if "_validation_status" in data:
        status = data["_validation_status"]
        uid = status.get("uid") if isinstance(status, Mapping) else status
        if not uid:
            return _UNREVIEWED
        text = str(uid).strip()
        found = ind.KOBO_REVIEW_STATUS.get(text) or _KOBO_STATUS_LABELS.get(text.lower())
        if found is None:
            logger.warning("unknown Kobo validation status %r: the stored status is kept", text)
        return found
    if "reviewState" in system or "ReviewState" in data:
        state = system.get("reviewState") if "reviewState" in system else data.get("ReviewState")
        if not state:
            return _UNREVIEWED
        return ind.CENTRAL_REVIEW_STATUS.get(str(state))
    return None  # the row carries no review state (a projected page): keep the store's


def utc_naive(value: Any) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC from a Kobo or Central timestamp; '' if there is none."""
    text = _text(value)
    if not text:
        return ""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        logger.warning("submission time %r is not an ISO timestamp", text)
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
