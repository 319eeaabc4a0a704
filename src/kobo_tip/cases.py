"""Stored submissions -> typed case records, one row per submission, and data-quality findings.

Answers are read by field name whatever the key style (``kobo_tip.answers``). Kobo sends every
answer as a string and Central sends integers as numbers; both are accepted. A value that cannot
be read becomes missing and a ``malformed`` finding naming its field; nothing here raises on data.

Rows are read in small chunks (a chunk stays in the CPU cache) and typed column by column into
numpy arrays; caches keyed on the raw value keep this fast (forms produce few distinct answers).
Multiple-choice answers are bit masks: bit ``i`` is ``CHOICES[list][i]`` (see ``choice_bit``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pycountry

from kobo_tip import indicator as ind
from kobo_tip.answers import find_answers

if TYPE_CHECKING:
    from kobo_tip.config import Settings

CHUNK_ROWS = 1_000  # small enough that a chunk of submissions stays in the CPU cache
AGE_RANGE = (0, 120)
BIRTH_YEAR_RANGE = (1900, 2200)
# Fields read from the data: everything the counting rules and the dimensions use.
READ_FIELDS = (
    ind.CONSENT,
    ind.EVENT_DATE,
    ind.ACTION,
    ind.STAKEHOLDER_TYPE,
    ind.STAKEHOLDER_ID,
    ind.IDENTIFICATION_COUNTRY,
    ind.LOCATION_ADMIN1,
    ind.LOCATION_ADMIN2,
    ind.PERSON_CATEGORY,
    ind.EXPLOITATION_TYPE,
    ind.GBV_TYPE,
    ind.BIRTH_YEAR,
    ind.GENDER,
    ind.AGE_YEARS,
    ind.COUNTRY_ORIGIN,
    ind.ETHNICITY,
    *ind.WG_FIELDS,
    ind.SERVICES,
)
_READ_SET = frozenset(READ_FIELDS)
# A group is "missing" when none of these answers is present (spec section 2: required ones).
GROUP_FIELDS = {
    ind.GROUP_EVENT: (
        ind.EVENT_DATE,
        ind.ACTION,
        ind.STAKEHOLDER_TYPE,
        ind.STAKEHOLDER_ID,
        ind.PERSON_CATEGORY,
    ),
    ind.GROUP_PERSON: (ind.BIRTH_YEAR, ind.GENDER, ind.AGE_YEARS, ind.COUNTRY_ORIGIN),
}
MASK_FIELDS = {
    ind.ACTION: "action",
    ind.PERSON_CATEGORY: "person_category",
    ind.EXPLOITATION_TYPE: "exploitation_type",
    ind.SERVICES: "service",
}
FINDING_COLUMNS = list(ind.DATA_QUALITY_COLUMNS)
META_COLUMNS = ("submission_id", "review_status", "submitted_at", "deleted", "person_key", "key_basis")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INTEGER = re.compile(r"-?[0-9]+")
_DETAIL_VALUE_CHARS = 60


class StoredRow(Protocol):
    """What ``build_cases`` reads from each stored submission (``kobo_tip.store``)."""

    submission_id: str
    review_status: str
    submitted_at: str
    person_key: str
    key_basis: str
    key_reason: str
    deleted: bool
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Cases:
    """``frame``: one typed row per stored submission; ``findings``: malformed and not_linkable rows."""

    frame: pd.DataFrame
    findings: pd.DataFrame


def choice_bit(list_name: str, choice: str) -> int:
    """The bit of ``choice`` in the masks of a select_multiple answer from list ``list_name``."""
    return 1 << ind.CHOICES[list_name].index(choice)


def shown(value: Any) -> str:
    """A raw value for a finding's detail: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _DETAIL_VALUE_CHARS else text[: _DETAIL_VALUE_CHARS - 3] + "..."


# --- columns: raw answers -> typed values, with a finding for each unreadable one -----------------

Reading = tuple[Any, str]  # (typed value, problem or "")
Finding = tuple[str, str, str, str]
_CACHE_MAX = 100_000  # distinct raw answers kept per field (free text could be unbounded)
NAT_DAYS = np.iinfo(np.int64).min  # datetime64's NaT as an integer


class _Column:
    """One field: ``read`` turns a raw answer into a typed value; ``finish`` makes the column.

    Raw strings are cached with their typed value (answers repeat a lot), so most answers cost
    one dict lookup; a cache miss yields ``unread``, a value of the column's dtype that no
    answer can have, and only those go through ``read``. Only str keys are cached: an int key
    would also match True, and a float key the equal int.
    """

    dtype: Any
    missing: Any
    unread: Any

    def __init__(self, field: str) -> None:
        self.field = field
        self.readable: dict[str | None, Any] = {None: self.missing}
        self.unreadable: dict[str, Reading] = {}
        self.chunks: list[np.ndarray] = []

    def read(self, value: Any) -> Reading:
        raise NotImplementedError

    def finish(self, values: np.ndarray) -> Any:
        raise NotImplementedError

    def add(self, ids: list[str], answers: list[dict[str, Any]], findings: list[Finding]) -> None:
        """Type this field of a chunk of answers; an unreadable value becomes a ``malformed`` finding."""
        field = self.field
        typed = self._lookup(answers)
        pending = np.flatnonzero(typed == self.unread)
        fresh = {raw for raw in (answers[i].get(field) for i in pending) if type(raw) is str}
        fresh -= self.readable.keys() | self.unreadable.keys()
        if fresh and len(self.readable) + len(self.unreadable) + len(fresh) <= _CACHE_MAX:
            for raw in fresh:  # read each new string once, then look the chunk up again
                value, problem = self.read(raw)
                if problem:
                    self.unreadable[raw] = (value, problem)
                else:
                    self.readable[raw] = value
            typed = self._lookup(answers)
            pending = np.flatnonzero(typed == self.unread)
        for index in pending:  # unreadable values, non-strings, and strings past the cache size
            raw = answers[index].get(field)
            value, problem = (self.unreadable.get(raw) if type(raw) is str else None) or self.read(raw)
            typed[index] = value
            if problem:
                findings.append((ids[index], "malformed", field, problem))
        self.chunks.append(typed)

    def _lookup(self, answers: list[dict[str, Any]]) -> np.ndarray:
        """Cached typed values; ``unread`` where the raw value is not a cached readable string."""
        field, cached, unread = self.field, self.readable.get, self.unread
        try:
            return np.array([cached(found.get(field), unread) for found in answers], dtype=self.dtype)
        except TypeError:  # an unhashable value (a list or an object) somewhere
            return np.array(
                [cached(raw, unread) if raw is None or type(raw) is str else unread for raw in
                 (found.get(field) for found in answers)],
                dtype=self.dtype,
            )  # fmt: skip

    def column(self) -> Any:
        values = np.concatenate(self.chunks) if self.chunks else np.array([], dtype=self.dtype)
        self.chunks = []
        return self.finish(values)


class _ChoiceColumn(_Column):
    """select_one: category codes (-1 missing) of ``names``.

    ``unreadable``: a category for values that cannot be read, when they must stay apart from
    blanks (a malformed location is ``unknown``, a blank one falls back to the country).
    """

    dtype, missing, unread = np.int32, -1, -2

    def __init__(self, field: str, names: Iterable[str], what: str, unreadable: str | None = None) -> None:
        super().__init__(field)
        self.codes = {name: code for code, name in enumerate(dict.fromkeys(names))}
        self.names = [*self.codes, *([unreadable] if unreadable else [])]
        self.unreadable_code = len(self.codes) if unreadable else -1
        self.what = what

    def read(self, value: Any) -> Reading:
        if not isinstance(value, str):
            return self.unreadable_code, f"{shown(value)} is not a choice name"
        code = self.codes.get(value.strip())
        if code is None:
            return self.unreadable_code, f"unknown {self.what} {shown(value)}"
        return code, ""

    def finish(self, values: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(values, categories=self.names)


class _MaskColumn(_Column):
    """select_multiple: bit masks (bit i = choice i of the list; 0 missing)."""

    dtype, missing, unread = np.int32, 0, -1

    def __init__(self, field: str, list_name: str) -> None:
        super().__init__(field)
        self.bits = {name: 1 << index for index, name in enumerate(ind.CHOICES[list_name])}

    def read(self, value: Any) -> Reading:
        if not isinstance(value, str):
            return 0, f"{shown(value)} is not a space-separated list of choice names"
        mask, unknown = 0, []
        for token in value.split():
            if token in self.bits:
                mask |= self.bits[token]
            else:
                unknown.append(token)
        return mask, (f"unknown choice(s) {shown(' '.join(unknown))}" if unknown else "")

    def finish(self, values: np.ndarray) -> np.ndarray:
        return values.astype(np.uint16)


class _IntegerColumn(_Column):
    """integer: floats (NaN missing) within [low, high]; Kobo sends strings, Central numbers."""

    dtype, missing, unread = np.float64, np.nan, -np.inf

    def __init__(self, field: str, low: int, high: int) -> None:
        super().__init__(field)
        self.low, self.high = low, high

    def read(self, value: Any) -> Reading:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            number = int(value.strip())
        if number is None:
            return np.nan, f"{shown(value)} is not a whole number"
        if not self.low <= number <= self.high:
            return np.nan, f"{number} is outside {self.low}..{self.high}"
        return float(number), ""

    def finish(self, values: np.ndarray) -> np.ndarray:
        return values


class _DateColumn(_Column):
    """date: days since 1970-01-01 (NaT missing), read from ``YYYY-MM-DD``."""

    dtype, missing, unread = np.int64, NAT_DAYS, NAT_DAYS + 1
    epoch = dt.date(1970, 1, 1).toordinal()

    def read(self, value: Any) -> Reading:
        if isinstance(value, str) and _DATE.fullmatch(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip()).toordinal() - self.epoch, ""
            except ValueError:
                pass
        return NAT_DAYS, f"{shown(value)} is not a date written YYYY-MM-DD"

    def finish(self, values: np.ndarray) -> np.ndarray:
        return values.view("datetime64[D]").astype("datetime64[ns]")


def _columns(settings: Settings) -> dict[str, _Column]:
    countries = [country.alpha_2.lower() for country in pycountry.countries]
    levels = {level: [loc.code for loc in settings.form.locations if loc.level == level] for level in (1, 2)}
    columns: list[_Column] = [
        _DateColumn(ind.EVENT_DATE),
        _IntegerColumn(ind.AGE_YEARS, *AGE_RANGE),
        _IntegerColumn(ind.BIRTH_YEAR, *BIRTH_YEAR_RANGE),
        _ChoiceColumn(
            ind.STAKEHOLDER_ID,
            [*(member.id for member in settings.form.roster), ind.NOT_LISTED],
            "stakeholder id",
        ),
        _ChoiceColumn(ind.IDENTIFICATION_COUNTRY, countries, "country code"),
        _ChoiceColumn(ind.COUNTRY_ORIGIN, [*countries, *ind.COUNTRY_EXTRAS], "country code"),
        _ChoiceColumn(ind.LOCATION_ADMIN1, levels[1], "admin1 code", ind.UNKNOWN),
        _ChoiceColumn(ind.LOCATION_ADMIN2, levels[2], "admin2 code", ind.UNKNOWN),
        _ChoiceColumn(ind.ETHNICITY, settings.form.ethnicities, "ethnicity"),
        *(_MaskColumn(field, list_name) for field, list_name in MASK_FIELDS.items()),
    ]
    by_field = {column.field: column for column in columns}
    for field in READ_FIELDS:
        if field not in by_field:
            by_field[field] = _ChoiceColumn(field, ind.CHOICES[ind.FIELD_LIST[field]], f"{field} choice")
    return {field: by_field[field] for field in READ_FIELDS}


# --- building ----------------------------------------------------------------------------------


def _group_expected(group: str, found: Mapping[str, Any]) -> bool:
    """The person group is shown only with consent (spec section 2); the event group always."""
    return group != ind.GROUP_PERSON or found.get(ind.CONSENT) == "yes"


class _Builder:
    def __init__(self, settings: Settings, by_field: bool) -> None:
        self.columns = _columns(settings)
        self.by_field = by_field
        self.meta: dict[str, list[Any]] = {name: [] for name in META_COLUMNS}
        self.findings: list[Finding] = []

    def add_chunk(self, rows: list[StoredRow]) -> None:
        ids = [str(row.submission_id) for row in rows]
        for name in META_COLUMNS[1:]:
            self.meta[name].extend([getattr(row, name) for row in rows])
        self.meta["submission_id"].extend(ids)
        if self.by_field:  # {field: answer} already: keep the fields read, skip the walk
            answers = [{k: v for k, v in row.data.items() if k in _READ_SET} for row in rows]
        else:
            answers = [
                find_answers(row.data, _READ_SET) if isinstance(row.data, Mapping) else None for row in rows
            ]
        for index in [index for index, found in enumerate(answers) if not found]:
            data = rows[index].data
            readable = isinstance(data, Mapping)
            problem = "the submission has no answers" if readable else f"{shown(data)} is not an object"
            self.findings.append((ids[index], "malformed", "data", problem))
            answers[index] = {}
        for group, fields in GROUP_FIELDS.items():
            self.findings.extend(
                (sid, "malformed", group, f"group '{group}' is missing: no answers in it")
                for sid, found in zip(ids, answers, strict=True)
                if found and found.keys().isdisjoint(fields) and _group_expected(group, found)
            )
        self.findings.extend(
            (sid, "not_linkable", "person_key", str(row.key_reason or ""))
            for sid, row in zip(ids, rows, strict=True)
            if row.key_basis != "uic"
        )
        for column in self.columns.values():
            column.add(ids, answers, self.findings)

    def frame(self) -> pd.DataFrame:
        meta = self.meta
        ids = meta["submission_id"]
        id_series = pd.Series(ids, dtype=object)
        submitted = pd.to_datetime(
            pd.Series(meta["submitted_at"], dtype=object),
            format="%Y-%m-%dT%H:%M:%S",
            utc=True,
            errors="coerce",
        )
        for index in np.flatnonzero(submitted.isna().to_numpy()):
            raw = shown(meta["submitted_at"][index])
            self.findings.append((ids[index], "malformed", "submitted_at", f"{raw} is not a UTC time"))
        status_code = {name: code for code, name in enumerate(ind.REVIEW_STATUSES)}
        status_codes = np.array(
            [status_code.get(raw, -1) if type(raw) is str else -1 for raw in meta["review_status"]],
            dtype=np.int8,
        )
        status = pd.Categorical.from_codes(status_codes, categories=ind.REVIEW_STATUSES)
        for index in np.flatnonzero(status_codes == -1):
            raw = shown(meta["review_status"][index])
            self.findings.append((ids[index], "malformed", "review_status", f"unknown review status {raw}"))
        keys, key_names = pd.factorize(np.asarray(meta["person_key"], dtype=object))
        frame = pd.DataFrame(
            {
                "submission_id": id_series,
                "id_number": _id_numbers(ids),
                "submitted_at": submitted,
                "review_status": status.fillna("unreviewed"),
                "deleted": np.asarray([bool(flag) for flag in meta["deleted"]], dtype=bool),
                "person_key": pd.Categorical.from_codes(keys, categories=key_names),
                "key_basis": pd.Categorical(meta["key_basis"]),
            }
        )
        for field in READ_FIELDS:
            frame[field] = self.columns[field].column()
        action = frame.pop(ind.ACTION)
        frame["identified"] = (action & choice_bit("action", "identified")) != 0
        frame["referred"] = (action & choice_bit("action", "referred")) != 0
        frame["disability"] = disability_status(frame)
        return frame


def _id_numbers(ids: list[str]) -> np.ndarray:
    """Kobo's numeric ``_id`` as a number (NaN for other ids such as Central's ``uuid:...``)."""
    try:
        return np.array(ids, dtype=str).astype(np.float64)  # all numeric: the fast path
    except ValueError:
        return pd.to_numeric(pd.Series(ids, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def disability_status(frame: pd.DataFrame) -> pd.Categorical:
    """Washington Group status (spec section 4): not_asked under 5, yes, no or unknown."""
    hard = {"a_lot_of_difficulty", "cannot_do_at_all"}
    easy = {"no_difficulty", "some_difficulty"}
    answers = [frame[field] for field in ind.WG_FIELDS]
    any_hard = np.logical_or.reduce([answer.isin(hard).to_numpy() for answer in answers])
    all_easy = np.logical_and.reduce([answer.isin(easy).to_numpy() for answer in answers])
    under_five = (frame[ind.AGE_YEARS] < 5).to_numpy()
    status = np.select([under_five, any_hard, all_easy], [ind.NOT_ASKED, "yes", "no"], default=ind.UNKNOWN)
    return pd.Categorical(status, categories=["yes", "no", ind.NOT_ASKED, ind.UNKNOWN])


def build_cases(rows: Iterable[StoredRow], settings: Settings, *, by_field: bool = False) -> Cases:
    """One typed case record per stored submission, plus ``malformed`` and ``not_linkable`` findings.

    ``by_field``: each row's ``data`` is the flat ``{field: answer}`` the store keeps for counting
    (``Store.submissions(answers_only=True)``), not the submission as the server sent it.
    """
    builder = _Builder(settings, by_field)
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, CHUNK_ROWS)):
        builder.add_chunk(chunk)
    frame = builder.frame()
    findings = pd.DataFrame(builder.findings, columns=FINDING_COLUMNS, dtype=object)
    return Cases(frame=frame, findings=findings)
