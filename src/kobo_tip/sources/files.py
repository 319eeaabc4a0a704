"""Export files as a source: Kobo data-API JSON, ODK Central OData JSON, Kobo and Central CSV.

A file is a complete snapshot of the form's submissions, so a sync reads all of it and ends with a
reconcile batch: stored submissions absent from the file are marked deleted. Both kinds are read
as a stream, ``batch_size`` rows at a time, so memory stays flat whatever the file's size: JSON
with ijson (its C backend, yajl2), CSV with the csv module.

The reconcile batch also saves the file's fingerprint (``FINGERPRINT``: size, modification time
and SHA-256 of the bytes, hashed as they are parsed). The next sync compares size and time first,
then, only when both match, hashes the file once (one read, no parsing): a file unchanged in all
three is skipped, nothing of it is read again and nothing is marked deleted. ``sync --full``
always reads. A folder of page files is fingerprinted file by file: it is unchanged when it holds
the same export files, in the same order, each unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import ijson

from kobo_tip import indicator as ind
from kobo_tip.answers import NestedTooDeep, find_values
from kobo_tip.config import Settings
from kobo_tip.errors import ConfigError, SourceError
from kobo_tip.sources.base import Batch, DeployResult, FormFiles, RawSubmission, SyncState
from kobo_tip.sources.labelled import ExportReader, ExportVocabulary

logger = logging.getLogger("kobo_tip")

try:
    _json = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - every wheel of ijson has it; the default is the next best
    _json = ijson

BATCH_SIZE = 1000
FINGERPRINT = "file_fingerprint"  # the watermark holding what the last complete read saw
_FINGERPRINT_FORMAT = 1  # bump when reading changes what a file yields: every file is read again
# Lists and objects inside one another, counted from the document down (a Kobo envelope is 2 of
# them). No export of a form comes near; the limit keeps the parser's memory small, which grows with
# the square of the depth, and the rows within reach of Python's recursion (json.loads stopped near
# 1,000, by exhausting it).
MAX_NESTING = 512
_READ_SIZE = 1 << 16  # bytes per read of the parser (a larger buffer parses slower: caches)
_HEAD_SIZE = 1 << 16  # what is looked at first: what kind of file, and where the rows are
_UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")  # an XLSX workbook is a zip
_SUFFIXES = (".json", ".csv")
_SPLIT_BOUNDARY = re.compile(r"[/\-]")
# Kobo CSV exports write the validation status as its label, or as its uid.
_KOBO_STATUS_LABELS = {"approved": "approved", "not approved": "rejected", "on hold": "on_hold"}
_UNREVIEWED = "unreviewed"
_LOOKED_UP = ("instanceID", "rootUuid", ind.FORM_VERSION)  # answers read from every row, in one walk
_CSV_STATUS_COLUMNS = frozenset({"_validation_status", "ReviewState"})
# A CSV export names at least one of these columns; anything else is not an export of this kind.
_CSV_ID_COLUMNS = frozenset({"_id", "_uuid", "KEY", "meta/instanceID", "meta-instanceID", "instanceID"})
_Entry = list[Any] | None  # a file's [name, size, mtime_ns, sha256]; None when it changed while read


class FileSource:
    """Submissions from an export file, or a folder of page files read in name order."""

    kind = "file"

    def __init__(self, path: Path, *, batch_size: int = BATCH_SIZE, settings: Settings | None = None) -> None:
        self.path = path
        self.batch_size = batch_size
        # The project whose form the export is of: with it, exports made with labels are read as
        # names (``labelled``); without it (tests of the file formats), rows are read as they are.
        self._settings = settings
        self._vocabulary: ExportVocabulary | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSource:
        if settings.source.path is None:
            raise ConfigError(
                '[source] path is missing: kind = "file" needs path = "<export .json or .csv, or a folder>".'
            )
        return cls(settings.source.path, settings=settings)

    def describe(self) -> str:
        return f"file {self.path}"

    def batches(self, state: SyncState) -> Iterator[Batch]:
        files = self._files()
        saved = state.watermark(FINGERPRINT)
        if saved and not state.full and _unchanged(files, saved):
            logger.info(
                "%s is unchanged since the last sync (size, time and SHA-256): not read again", self.path
            )
            yield Batch(reconciled=True)  # the store mirrors the file as it is now
            return
        # Asked before any row is given: every row this read adds is in the file, so the rows missing
        # from it are among these; and a first sync's store is empty, where after the rows it holds
        # them all (a million KnownSubmissions, in this process and in sync's).
        known = state.known()
        seen: set[str] = set()
        batch: list[RawSubmission] = []
        # A sync that stops half-way must not leave the last fingerprint behind: the first batch
        # clears it, and only the reconcile batch, after every row, writes the new one.
        cleared = {FINGERPRINT: ""} if saved else {}
        read: list[_Entry] = []
        tally = _Tally(files)
        expected: int | None = None  # told with the first batch, for the progress bar
        for path in files:
            translate = self._translator(path)
            for row in _read_rows(path, read, tally):
                tally.rows += 1
                raw = to_raw_submission(translate(row))
                if raw.submission_id in seen:
                    logger.warning("%s holds submission %s twice; the first is kept", path, raw.submission_id)
                    continue
                seen.add(raw.submission_id)
                batch.append(raw)
                if len(batch) >= self.batch_size:
                    first = expected is None
                    if first:
                        expected = tally.estimate()
                    yield Batch(
                        submissions=batch,
                        fetched=len(batch),
                        watermarks=cleared,
                        expected=expected if first else None,
                    )
                    batch, cleared = [], {}
        if batch:
            yield Batch(
                submissions=batch,
                fetched=len(batch),
                watermarks=cleared,
                expected=len(batch) if expected is None else None,
            )
        gone = [sid for sid in known if sid not in seen]
        yield Batch(deleted=gone, reconciled=True, watermarks={FINGERPRINT: _fingerprint_text(read)})

    def submissions(self) -> Iterator[RawSubmission]:
        """Every submission of the file (or folder), in file order."""
        files = self._files()
        for path in files:
            translate = self._translator(path)
            for row in _read_rows(path, [], _Tally(files)):
                yield to_raw_submission(translate(row))

    def _translator(self, path: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """What turns a row of ``path`` into the row of a names export (labels mapped to names)."""
        if self._settings is None:
            return _as_it_is
        if self._vocabulary is None:
            self._vocabulary = ExportVocabulary.of(self._settings)
        return ExportReader(self._vocabulary, str(path)).row

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
            if not files:
                raise ConfigError(
                    f"The folder {self.path} holds no .json or .csv export files; check [source] path."
                )
            return files
        if not self.path.is_file():
            raise ConfigError(f"The export file {self.path} does not exist; check [source] path.")
        return [self.path]

    # What a file source cannot do is a matter of configuration (exit 2), like a missing file.
    def ready_to_deploy(self) -> None:
        raise ConfigError(_CANNOT_DEPLOY)

    def deploy(self, form: FormFiles, *, ignore_warnings: bool = False) -> DeployResult:
        raise ConfigError(_CANNOT_DEPLOY)

    def list_assets(self) -> list[dict[str, str]]:
        raise ConfigError(
            'A file source has no server assets to list: set [source] kind = "kobo" to list them.'
        )


_CANNOT_DEPLOY = 'A file source cannot deploy a form: set [source] kind = "kobo" or "odk_central" to deploy.'


def _as_it_is(row: dict[str, Any]) -> dict[str, Any]:
    return row


class _Tally:
    """Rows parsed and bytes read so far over the files of one read: how many rows they hold."""

    def __init__(self, files: list[Path]) -> None:
        self.rows = 0
        self.bytes = 0
        try:
            self.size = sum(path.stat().st_size for path in files)
        except OSError:
            self.size = 0  # the read says what is wrong

    def estimate(self) -> int:
        """The rows of every file, from the bytes the rows parsed so far took (read ahead included)."""
        if not self.bytes:
            return self.rows
        return max(self.rows, round(self.rows * self.size / self.bytes))


# --- fingerprints ------------------------------------------------------------------------------


def _fingerprint_text(read: list[_Entry]) -> str:
    """The watermark of a complete read: [name, size, mtime_ns, sha256] per file, in read order.

    Empty (nothing to compare with next time) when a file changed while it was read."""
    if any(entry is None for entry in read):
        return ""
    return json.dumps({"format": _FINGERPRINT_FORMAT, "files": read}, separators=(",", ":"))


def _unchanged(files: list[Path], saved: str) -> bool:
    """True when ``files`` are, name, size, time and content, the ones ``saved`` describes."""
    try:
        document = json.loads(saved)
        entries = document["files"] if document.get("format") == _FINGERPRINT_FORMAT else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return False
    if not isinstance(entries, list) or len(entries) != len(files):
        return False
    if not all(isinstance(entry, list) and len(entry) == 4 for entry in entries):
        return False
    try:
        stats = [path.stat() for path in files]
    except OSError:
        return False  # the read that follows says what is wrong
    for path, stat, entry in zip(files, stats, entries, strict=True):
        if entry[:3] != [path.name, stat.st_size, stat.st_mtime_ns]:
            return False
    # Same names, sizes and times: only the content can tell now (one read each, no parsing).
    return all(_sha256(path) == entry[3] for path, entry in zip(files, entries, strict=True))


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb", buffering=0) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


class _HashingFile(io.RawIOBase):
    """A file opened for one read from its start; every byte read is hashed and counted."""

    def __init__(self, path: Path, tally: _Tally | None = None) -> None:
        super().__init__()
        self._tally = tally or _Tally([])
        self._file = path.open("rb", buffering=0)
        stat = os.fstat(self._file.fileno())
        self.path, self.size, self.mtime_ns = path, stat.st_size, stat.st_mtime_ns
        self.sha256 = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size) if size >= 0 else self._file.readall()
        if data:
            self.sha256.update(data)
            self.count += len(data)
            self._tally.bytes += len(data)
        return data or b""

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer) or 0
        if count:
            self.sha256.update(memoryview(buffer)[:count])
            self.count += count
            self._tally.bytes += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()

    def fingerprint(self) -> list[Any] | None:
        """[name, size, mtime_ns, sha256] once read to its end; None if it changed while read."""
        if self.count != self.size or os.fstat(self._file.fileno()).st_mtime_ns != self.mtime_ns:
            logger.warning("%s changed while it was read: the next sync reads it again", self.path)
            return None
        return [self.path.name, self.size, self.mtime_ns, self.sha256.hexdigest()]


# --- reading -----------------------------------------------------------------------------------


def _read_rows(path: Path, read: list[_Entry], tally: _Tally) -> Iterator[dict[str, Any]]:
    """The rows of one export file, streamed; its fingerprint is added to ``read`` at its end, and
    the bytes read to ``tally`` as they are read."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_SIZE)
        whole = len(head) < _HEAD_SIZE
        _refuse_what_is_no_export(path, head, whole)
        start = head[len(_UTF8_BOM) :] if head.startswith(_UTF8_BOM) else head
        if path.suffix.lower() == ".json" or start.lstrip()[:1] in (b"{", b"["):
            if not start.strip():
                raise SourceError(f"{path} is empty: download the export again.")
            yield from _json_rows(path, head, whole, read, tally)
        else:
            with (
                _HashingFile(path, tally) as raw,
                io.TextIOWrapper(
                    io.BufferedReader(raw, _READ_SIZE), encoding="utf-8-sig", newline=""
                ) as handle,
            ):
                yield from _csv_rows(path, handle)
                read.append(raw.fingerprint())
    except UnicodeDecodeError:
        raise SourceError(_not_utf8(path)) from None
    except OSError as exc:
        raise SourceError(f"Cannot read {path}: {exc.strerror}.") from None


def _not_utf8(path: Path) -> str:
    return f"{path} is not UTF-8 (UTF-16 or Latin-1?): save or export it as UTF-8."


def _refuse_what_is_no_export(path: Path, head: bytes, whole: bool) -> None:
    """Name what the file is when its first bytes show that it is no export: a workbook or zip,
    text in another encoding than UTF-8, a web page."""
    if head.startswith(_ZIP_SIGNATURES):
        raise SourceError(
            f"{path} is an XLSX workbook or a zip archive, not a JSON or CSV export: "
            "export the data as JSON or CSV."
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise SourceError(_not_utf8(path))  # UTF-16 (or 32), with its byte-order mark or without
    start = head[len(_UTF8_BOM) :] if head.startswith(_UTF8_BOM) else head
    if start.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html")):
        raise SourceError(
            f"{path} is a web page (the server's login or error page), not an export: "
            "download the export again while logged in."
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if whole or exc.start < len(head) - 3:  # not a character cut by the end of the head
            raise SourceError(_not_utf8(path)) from None


def _json_rows(
    path: Path, head: bytes, whole: bool, read: list[_Entry], tally: _Tally
) -> Iterator[dict[str, Any]]:
    """The submissions of a JSON export, each parsed as json.loads parses it, as they are read.

    yajl2 reads floats as json.loads does, but cannot hold an integer beyond 64 bits or a float
    beyond the largest double: at the first, the file is read again with numbers as text
    (int or Decimal, the Decimal made a float), and the rows already given are skipped."""
    prefix = _rows_prefix(path, head, whole)
    given = 0
    exact = False
    while True:
        with _HashingFile(path, tally) as raw:
            stream = _ParserFeed(raw, path)
            try:
                rows = _json.items(stream, prefix, buf_size=_READ_SIZE, use_float=not exact)
                if given:
                    rows = itertools.islice(rows, given, None)  # given before the file was read again
                for row in rows:
                    if type(row) is not dict:
                        raise SourceError(
                            f"{path}: submission {given + 1} is {_json_kind(row)}, not a JSON object."
                        )
                    if exact:
                        _to_floats(row)
                    given += 1
                    yield row
            except ijson.JSONError as exc:
                reason = _reason(exc)
                if not exact and reason in ("integer overflow", "numeric (floating point) overflow"):
                    exact = True
                    tally.bytes -= raw.count  # read again from its start
                    continue
                raise SourceError(_syntax_error(path, reason, exc, stream)) from None
            except UnicodeDecodeError:
                # yajl2 writes a lone UTF-16 surrogate escape (\udc00) as bytes that are no UTF-8.
                raise SourceError(
                    f"{path} holds a \\u escape of half a UTF-16 surrogate pair, which is no text: "
                    "download or export it again."
                ) from None
            read.append(raw.fingerprint())
            return


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float, decimal.Decimal)):
        return "a number"
    return {str: "a string", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)


def _to_floats(node: dict[str, Any] | list[Any]) -> None:
    """Make every Decimal in ``node`` a float, in place, as json.loads would have read it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if type(value) is decimal.Decimal:
                node[key] = float(value)
            elif isinstance(value, (dict, list)):
                _to_floats(value)
    else:
        for index, value in enumerate(node):
            if type(value) is decimal.Decimal:
                node[index] = float(value)
            elif isinstance(value, (dict, list)):
                _to_floats(value)


def _rows_prefix(path: Path, head: bytes, whole: bool) -> str:
    """Where the rows are, as an ijson prefix: a list of submissions (``item``), a Kobo page
    (``results.item``) or an OData document (``value.item``), keys in any order.

    Read from the events of the file's first bytes; the whole file's only when they do not tell."""
    found = _prefix_in(_ParserFeed(io.BytesIO(head), path), complete=whole)
    if found is None:
        with path.open("rb") as handle:
            found = _prefix_in(_ParserFeed(handle, path), complete=True)
    if found == "":
        raise SourceError(
            f"{path} holds neither a list of submissions, a Kobo {{'results': [...]}} page "
            "nor an ODK Central OData {'value': [...]} document."
        )
    return found or "item"


# One loop over the parser's events with a branch per shape it can tell; splitting it would split the state.
def _prefix_in(stream: Any, *, complete: bool) -> str | None:  # noqa: PLR0911, PLR0912
    """``_rows_prefix`` from the events of ``stream``: '' when it is none of the shapes, None when
    ``stream`` ends before it tells. Invalid JSON gives 'item': the parse of the rows says where."""
    events = _json.parse(stream, buf_size=_READ_SIZE)
    level = 0  # 1 inside the top-level object (prefixes cannot tell: a key may be '')
    try:
        for _, event, value in events:
            if level == 0:
                if event == "start_array":
                    return "item"
                if event != "start_map":
                    return ""  # a string, a number, true, false or null
                level = 1
            elif level == 1 and event == "map_key":
                if value in ("results", "value"):
                    _, kind, _ = next(events)
                    if kind == "start_array":
                        return f"{value}.item"
                    if value == "results":
                        return ""  # a Kobo page's results that are no list
                    if kind == "start_map":
                        level += 1  # an OData 'value' that is an object: its keys are no rows
            elif event in ("start_map", "start_array"):
                level += 1
            elif event in ("end_map", "end_array"):
                level -= 1
                if level == 0:
                    return ""  # the object ended without its rows
    except ijson.JSONError as exc:
        if not complete and _reason(exc) == "premature EOF":
            return None
        return "item"
    except StopIteration:
        pass
    return None if not complete else "item"


class _ParserFeed:
    """What the JSON parser reads: the file without its UTF-8 BOM, refused when it nests deeper
    than ``MAX_NESTING``. Keeps the last chunk, where a syntax error is."""

    def __init__(self, raw: Any, path: Path) -> None:
        self._raw, self._path = raw, path
        self._first = True
        self.skipped = 0  # bytes of BOM before what the parser sees
        self.start = 0  # where ``last`` starts in what the parser sees
        self.last = b""
        self._depth = 0
        self._in_string = False
        self._escaped = False  # the last chunk ended with a backslash that escapes the next byte

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson asks for nothing first, to learn whether reads give bytes or text
        if self._first:  # the first bytes, however few the reads give: a BOM is not JSON
            self._first = False
            head = b""
            while len(head) < len(_UTF8_BOM) and (more := self._raw.read(len(_UTF8_BOM) - len(head))):
                head += more
            if head == _UTF8_BOM:
                head, self.skipped = b"", len(_UTF8_BOM)
            chunk = head or self._raw.read(size)
        else:
            chunk = self._raw.read(size)
        self.start += len(self.last)
        self.last = chunk
        if chunk:
            self._check_nesting(chunk)
        return chunk

    def _check_nesting(self, chunk: bytes) -> None:
        """Follow the depth of lists and objects outside strings, at the speed of bytes methods.

        ijson has no depth bound. Measured gain: 2.0 s for a 48 MB export, against 6.8 s for a plain
        guard that drops the strings with a regular expression (as long as json.loads takes)."""
        if self._escaped:
            chunk, self._escaped = chunk[1:], False
        if b"\\" in chunk:  # escapes: only an escaped quote matters, and a backslash cut at the end
            chunk = chunk.replace(b"\\\\", b"")
            if chunk.endswith(b"\\"):
                chunk, self._escaped = chunk[:-1], True
            chunk = chunk.replace(b'\\"', b"")
        marks = chunk.translate(None, _NOT_STRUCTURE)  # only quotes and brackets are left
        if self._in_string:
            marks = b'"' + marks
        marks = marks.replace(b'""', b"")  # a string with no bracket in it, or the gap between two
        if b'"' in marks:
            self._in_string = marks.count(b'"') % 2 == 1
            marks = _STRING.sub(b"", marks + b'"' if self._in_string else marks)
        else:
            self._in_string = False
        if not marks:
            return
        opened = marks.count(b"[") + marks.count(b"{")
        change = 2 * opened - len(marks)
        # Removing a matched pair lowers the highest depth by at most 1: when the matched pairs
        # are gone, what is left bounds how deep the chunk goes, with 2 a round.
        rest, rounds = marks, 0
        while rest and rounds < 4:
            shorter = rest.replace(b"[]", b"").replace(b"{}", b"")
            if len(shorter) == len(rest):
                break
            rest, rounds = shorter, rounds + 1
        if self._depth + rest.count(b"[") + rest.count(b"{") + 2 * rounds > MAX_NESTING:
            depth = self._depth
            for mark in marks:
                depth += 1 if mark in _OPENERS else -1
                if depth > MAX_NESTING:
                    raise SourceError(
                        f"{self._path} nests lists and objects more than {MAX_NESTING} deep, deeper than "
                        "kobo-tip reads and than any export of a form: is it an export of submissions?"
                    )
        self._depth += change


_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_OPENERS = frozenset(b"[{")
_STRING = re.compile(rb'"[^"]*"')
_NEWLINES_AS_SPACES = bytes.maketrans(b"\n\r", b"  ")
# yajl2's words for the common syntax errors, in plainer ones.
_REASONS = {
    "invalid char in json text": "a character JSON does not allow there",
    "trailing garbage": "more text after the end of the JSON document",
    "invalid bytes in UTF8 string": "bytes that are not UTF-8",
}


def _reason(exc: Exception) -> str:
    """The first line of yajl2's message, without its 'parse error: ' and final full stop."""
    message = exc.args[0] if exc.args else ""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    first = text.split("\n", 1)[0].strip()
    return first.split(": ", 1)[-1].rstrip(".")


def _syntax_error(path: Path, reason: str, exc: Exception, stream: _ParserFeed) -> str:
    """One sentence on a JSON syntax error, with its line and column (never the text around it)."""
    if reason == "invalid bytes in UTF8 string":
        return _not_utf8(path)
    if reason == "premature EOF":
        size = stream.skipped + stream.start + len(stream.last)
        return (
            f"{path} is not valid JSON: it ends in the middle of the document (after {size:,} bytes), "
            "so the file is truncated: download it again."
        )
    plain = _REASONS.get(reason, reason)
    offset = _error_offset(exc, stream.last)
    if offset is None:
        start = stream.skipped + stream.start
        where = f"between bytes {start:,} and {start + len(stream.last):,}"
    else:
        # yajl2 stops after the token it could not take: name that token's last byte.
        line, column = _line_and_column(path, stream.skipped + stream.start + max(offset - 1, 0))
        where = f"line {line:,}, column {column:,}"
    return f"{path} is not valid JSON ({where}: {plain}); export or download it again, unedited."


def _error_offset(exc: Exception, chunk: bytes) -> int | None:
    """Where in ``chunk`` yajl2 stopped, found from the excerpt its message shows (the caret under
    the 41st byte, 30 bytes either side, line breaks as spaces); None when unsure."""
    message = exc.args[0] if exc.args else ""
    raw = message if isinstance(message, bytes) else str(message).encode("utf-8", "surrogateescape")
    lines = raw.split(b"\n")
    if len(lines) < 3 or not lines[2].endswith(b"^"):
        return None
    caret = len(lines[2]) - 1
    excerpt = lines[1]
    if len(excerpt) < caret:
        return None
    after, before = excerpt[caret:], excerpt[max(0, caret - 30) : caret]
    text = chunk.translate(_NEWLINES_AS_SPACES)
    found: list[int] = []
    position = text.find(after)
    while position != -1 and len(found) < 2:
        shown = min(position, 30)  # the excerpt shows at most 30 bytes before, padded with spaces
        if text[position - shown : position] == before[len(before) - shown :] and not before[
            : len(before) - shown
        ].strip(b" "):
            found.append(position)
        position = text.find(after, position + 1)
    return found[0] if len(found) == 1 else None


def _line_and_column(path: Path, offset: int) -> tuple[int, int]:
    """Line and column (in bytes, from 1) of the byte at ``offset`` of ``path``."""
    line, line_start, done = 1, 0, 0
    with path.open("rb") as handle:
        while done < offset:
            chunk = handle.read(min(1 << 20, offset - done))
            if not chunk:
                break
            line += chunk.count(b"\n")
            last = chunk.rfind(b"\n")
            if last != -1:
                line_start = done + last + 1
            done += len(chunk)
    return line, offset - line_start + 1


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
    system: Mapping[str, Any] = system_value if isinstance(system_value, Mapping) else _NO_SYSTEM
    try:
        instance_id, root_uuid, form_version = find_values(data, _LOOKED_UP)
    except NestedTooDeep:  # sync stores it without answers, and says so
        instance_id = root_uuid = form_version = None
    version = _text(data.get("_uuid")) or _text(instance_id) or _content_id(data)
    return RawSubmission(  # positional: one per row
        _submission_id(data, instance_id, root_uuid),
        version,
        _review_status(data, system),
        utc_naive(data.get("_submission_time") or system.get("submissionDate") or data.get("SubmissionDate")),
        _text(form_version)
        or _text(data.get("__version__"))
        or _text(system.get("formVersion"))
        or _text(data.get("FormVersion")),
        data,
    )


_NO_SYSTEM: Mapping[str, Any] = {}  # the __system of a row without one (never written to)


def _submission_id(data: Mapping[str, Any], instance_id: Any, root_uuid: Any) -> str:
    for value in (data.get("_id"), data.get("__id"), data.get("KEY")):
        text = _text(value)
        if text:
            return text
    root = _text(root_uuid) or _text(instance_id) or _text(data.get("_uuid"))
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
    if type(value) is str and len(value) == 19 and _NAIVE_TIME.fullmatch(value):
        try:  # already naive UTC, as Kobo's _submission_time is: checked, and kept as it is
            dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # said below
        else:
            return value
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


# A year from 1000 on: strftime writes an earlier one without its leading zeros.
_NAIVE_TIME = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def _text(value: Any) -> str:
    if type(value) is str:
        return value.strip()
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
