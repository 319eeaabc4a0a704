"""A submission made into the row the store keeps: answers coded, person keyed, UIC parts dropped.

A sync (``kobo_tip.sync``, in its worker process for the unkeyed half) and the service's pushes
(``kobo_tip.serve.intake``) prepare rows here alike, so both store the same row for the same
submission.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from kobo_tip import indicator as ind
from kobo_tip.answers import (
    MAX_DEPTH,
    AnswerCodes,
    NestedTooDeep,
    SubmissionReader,
    add_field_aliases,
    field_name,
    without_fields,
    without_top_fields,
)
from kobo_tip.config import Settings
from kobo_tip.errors import SourceError
from kobo_tip.labels import Labels, field_labels, load_labels
from kobo_tip.person_key import KEY_FIELDS, key_parts
from kobo_tip.sources import RawSubmission
from kobo_tip.sources.base import misshapen_metadata
from kobo_tip.store import SubmissionRow
from kobo_tip.worker import pack, unpack

logger = logging.getLogger("kobo_tip")

# Never stored: the raw UIC parts (contract section 3), and the keys where servers put the review state
# (Kobo _validation_status, Central CSV ReviewState, OData __system/reviewState and the updatedAt a
# review bumps). The review_status column holds the state, so a review never looks like an edit.
# The instance name too: a form's settings may build it from any answers, name codes included, and a
# pusher may fold them into it (issue 27); counting never reads it.
_NOT_STORED = frozenset(
    {*ind.UIC_PARTS, "_validation_status", "ReviewState", "reviewState", "updatedAt", "instanceName"}
)
_NOT_STORED_MARKS = tuple(f'{name}":'.encode() for name in _NOT_STORED)
# A key of the stored JSON that ends in a UIC part's name (after any separator a source uses) or is
# one of its labels: a UIC part that was not stripped. Found in the text, where a key is followed
# by `":` (in a string value that quote would be escaped); the names alone are looked for first.
_CLEAR_CODE_NAMES = tuple(
    name
    for part in ind.UIC_PARTS
    for name in (part, *(orjson.dumps(label).decode()[1:-1] for label in field_labels(part)))
)
_CLEAR_CODE_MARKS = tuple(
    f'{start}{name}":' for name in _CLEAR_CODE_NAMES for start in ('"', "/", "-", ".", ":")
)
# Answers a submission of the form always has: a page in which no row has any of them is not of it.
_REQUIRED = tuple(
    ind.COUNTED_FIELDS.index(name)
    for name in (
        ind.CONSENT,
        ind.EVENT_DATE,
        ind.ACTION,
        ind.STAKEHOLDER_TYPE,
        ind.STAKEHOLDER_ID,
        ind.PERSON_CATEGORY,
    )
)


def stored_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The submission as the store keeps it: no UIC parts, no review-state keys (one copy)."""
    return without_fields(data, _NOT_STORED)


def stored_json(data: Mapping[str, Any]) -> bytes:
    """The JSON the store keeps of ``stored_data(data)``, without walking the whole submission when it can.

    Keys stay in the server's order: a server sends one submission's keys in one order, so a copy
    that is sent again is stored as the same text, which is how an edit without a new version shows.
    """
    return _stored_text(data, without_top_fields(data, _NOT_STORED))


def _stored_text(data: Mapping[str, Any], kept: Mapping[str, Any]) -> bytes:
    """``stored_json(data)``, given ``data`` without its top-level fields that are not stored."""
    text = _dumps(kept)
    # Only an object further down (an ODK group, a repeat) can still hold a dropped field, and a key
    # naming one shows in the text as `name":` (inside a string value that quote would be escaped).
    if text.find(b"{", 1) != -1 and any(mark in text for mark in _NOT_STORED_MARKS):
        text = _dumps(stored_data(data))
    return text


def _dumps(data: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(data, default=str)
    except orjson.JSONEncodeError:
        pass
    try:  # a key that is not a string: no parsed JSON has one
        # OPT_NON_STR_KEYS writes it as a string, but makes every dump 60% slower.
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits, or nesting beyond orjson's limit: the standard library writes both.
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


# A submission on its way to the store, not keyed yet, packed (worker.pack) into one bytes object:
# submission_id, version_id, review_status, submitted_at, form_version, the stored JSON (bytes),
# the answers of KEY_FIELDS (the UIC parts among them, dropped by keyed_row) and the codes of the
# counted answers. Packed as soon as it is made, while it is fresh in the processor's cache, a row
# costs the worker an eighth less than when whole pages are packed (11.5 against 13.0 us).
UnkeyedRow = bytes


def _uic_aliases(labels: Iterable[Labels]) -> dict[str, str]:
    return {label.field(part): part for label in labels for part in ind.UIC_PARTS}


def recognise_project_labels(settings: Settings) -> None:
    """Add the project's own label texts of the name-code questions (its translations folder may
    change them, or add a language) to the keys read, and dropped, as those questions. Called before
    a sync and a service read any submission."""
    add_field_aliases(_uic_aliases(load_labels(language) for language in settings.project.languages))


def odd_name_code_keys(data: Mapping[str, Any], depth: int = 0) -> list[str]:
    """The keys of ``data`` (at any depth) that address a name-code question without being written
    as Kobo and Central write it (``person/uic_given``, ``uic_given``): another case, a separator,
    a label, invisible or full-width letters. A sync drops them; a push holding one is refused."""
    odd = []
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if field_name(key) in ind.UIC_PARTS and key.rsplit("/", 1)[-1] not in ind.UIC_PARTS:
            odd.append(key)
        items = value if type(value) is list else [value]
        for item in items:
            if isinstance(item, Mapping) and depth < MAX_DEPTH:
                odd += odd_name_code_keys(item, depth + 1)
    return odd


def submission_reader(codes: AnswerCodes) -> SubmissionReader:
    """What reads a submission for the store: its counted answers coded, the person key's answers,
    and a copy without the fields never stored. ``codes`` continues the store's (``Store.answer_codes``)."""
    return SubmissionReader(codes, KEY_FIELDS, _NOT_STORED)


def unkeyed_row(raw: RawSubmission, reader: SubmissionReader) -> UnkeyedRow:
    """Find and code the answers, and encode the JSON the store keeps (no UIC parts in it).

    A submission nested deeper than any of the form is stored without its answers (counting then
    lists it as having none): reading it would exhaust the recursion. Metadata not in its own shape
    (``sources.base.misshapen_metadata``) is not stored, and the row's form version says so."""
    misshapen = misshapen_metadata(raw.data, strict=False)
    if misshapen:
        raw = _without_metadata(raw, misshapen)
    try:
        answer_codes, key_values, kept = reader.read(raw.data)
        text = _stored_text(raw.data, kept)
    except (NestedTooDeep, RecursionError):
        logger.warning(
            "submission %s nests deeper than the form can: stored without its answers", raw.submission_id
        )
        answer_codes, key_values, _ = reader.read({})
        text = b"{}"
    return pack(
        (
            raw.submission_id,
            raw.version_id,
            raw.review_status,
            raw.submitted_at,
            raw.form_version,
            text,  # bytes: decoding is left to keyed_row, in the other process
            key_values,
            answer_codes,  # coded here: small integers cost less to pack, unpack and store than answers
        )
    )


def _without_metadata(raw: RawSubmission, keys: tuple[str, ...]) -> RawSubmission:
    """``raw`` without the metadata ``keys``, whose values were planted: none of them reaches a
    column, the stored copy or a report; counting lists the submission as malformed."""
    logger.warning(
        "submission %s: %s not in its own shape, not stored", raw.submission_id, " and ".join(keys)
    )
    planted = {str(raw.data[key]).strip() for key in keys}
    data = {key: value for key, value in raw.data.items() if key not in keys}
    version_id = raw.version_id
    if version_id in planted:
        version_id = "sha256:" + hashlib.sha256(_dumps(data)).hexdigest()[:32]
    submitted_at = "" if "_submission_time" in keys else raw.submitted_at
    return RawSubmission(
        raw.submission_id, version_id, raw.review_status, submitted_at, ind.MISSHAPEN_METADATA, data
    )


def keyed_row(row: UnkeyedRow, secret: bytes) -> SubmissionRow:
    """Key the person; the UIC parts go no further."""
    submission_id, version_id, review_status, submitted_at, form_version, text, key_values, answer_codes = (
        unpack(row)
    )
    key, basis, reason = key_parts(key_values, submission_id, secret)
    return SubmissionRow(
        submission_id,
        version_id,
        review_status,
        submitted_at,
        form_version,
        key,
        basis,
        reason,
        text.decode("utf-8"),
        answer_codes,
    )


def prepare_row(raw: RawSubmission, secret: bytes, reader: SubmissionReader) -> SubmissionRow:
    """Key the person, drop the UIC parts, code the answers and encode what will be stored.

    The answers coded for the first time (``reader.codes.take_added``) go with the batch.
    """
    return keyed_row(unkeyed_row(raw, reader), secret)


def refuse_foreign(rows: list[SubmissionRow], description: str) -> None:
    """Refuse a batch (a page, or a part of a file) before it is stored when no row has an answer
    the form always has, or a row still holds a UIC part: it is not an export kobo-tip can read by
    field name (labels as headers, another form), and its codes must not reach the disk."""
    for row in rows:
        text = row.data_json
        if not any(name in text for name in _CLEAR_CODE_NAMES):
            continue
        found = next((mark for mark in _CLEAR_CODE_MARKS if mark in text), None)
        if found is not None:
            raise SourceError(
                f"{description}: submission {row.submission_id} holds a name code (a key ending in "
                f"{found.strip(chr(34) + ':/-.')!r}) where kobo-tip cannot remove it; nothing of this batch "
                "was stored. Export the data with field names as headers (Kobo: 'XML values and headers'), "
                "not labels."
            )
    if rows and not any(any(row.answer_codes[i] for i in _REQUIRED) for row in rows):
        raise SourceError(
            f"{description}: none of its {len(rows)} submissions has an answer of the {ind.FORM_ID} form by "
            "field name (consent, event_date, action, stakeholder_id, ...); nothing of it was stored. "
            "Is it an export of another form, or one with labels as headers? Export it with field names "
            "(Kobo: 'XML values and headers')."
        )
