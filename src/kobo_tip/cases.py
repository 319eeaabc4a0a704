"""Stored submissions -> typed case records, one row per submission, and data-quality findings.

Counting reads the store column by column (``Store.answer_table``): each field is a column of
answer codes plus the short list of distinct answers, so every distinct answer is typed once and
each column is typed with one numpy lookup. ``build_cases`` does the same for submissions held
in memory. Kobo sends every answer as a string and Central sends integers as numbers; both are
accepted. A value that cannot be read becomes missing and a ``malformed`` finding naming its field;
nothing here raises on data. Multiple-choice answers are bit masks: bit ``i`` is
``CHOICES[list][i]`` (see ``choice_bit``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pycountry

from kobo_tip import indicator as ind
from kobo_tip.answers import AnswerCodes, AnswerTable, SubmissionReader

if TYPE_CHECKING:
    from kobo_tip.config import Settings
    from kobo_tip.store.records import StoredSubmission

AGE_RANGE = (0, 120)
BIRTH_YEAR_RANGE = (1900, 2200)
# Fields read from the data: everything the counting rules and the dimensions use.
READ_FIELDS = ind.COUNTED_FIELDS
# A group is "missing" when none of these answers is present (contract section 2: required ones).
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
META_COLUMNS = (
    "submission_id",
    "review_status",
    "submitted_at",
    "form_version",
    "deleted",
    "person_key",
    "key_basis",
    "key_reason",
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INTEGER = re.compile(r"-?[0-9]+")
_DETAIL_VALUE_CHARS = 60


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
NAT_DAYS = np.iinfo(np.int64).min  # datetime64's NaT as an integer


class _Column:
    """One field: ``read`` turns one raw answer into a typed value; ``column`` types a coded column."""

    dtype: Any
    missing: Any

    def __init__(self, field: str) -> None:
        self.field = field

    def read(self, value: Any) -> Reading:
        raise NotImplementedError

    def finish(self, values: np.ndarray) -> Any:
        raise NotImplementedError

    def column(self, codes: np.ndarray, values: list[Any], findings: _Findings) -> Any:
        """Type each distinct answer once, then the column by lookup; unreadable ones become findings."""
        readings = [self.read(value) for value in values[1:]]  # code 0 is unanswered
        typed = np.array([self.missing, *(value for value, _ in readings)], dtype=self.dtype)
        problems = {code: problem for code, (_, problem) in enumerate(readings, start=1) if problem}
        if problems:
            for index in np.flatnonzero(np.isin(codes, list(problems))):
                findings.find(index, "malformed", self.field, problems[codes[index]])
        return self.finish(typed[codes])


class _ChoiceColumn(_Column):
    """select_one: category codes (-1 missing) of ``names``.

    ``unreadable``: a category for values that cannot be read, when they must stay apart from
    blanks (a malformed location is ``unknown``, a blank one falls back to the country).
    """

    dtype, missing = np.int32, -1

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

    def finish(self, values: np.ndarray) -> pd.Categorical[str]:
        return pd.Categorical.from_codes(values, categories=pd.Index(self.names))


class _MaskColumn(_Column):
    """select_multiple: bit masks (bit i = choice i of the list; 0 missing)."""

    dtype, missing = np.int32, 0

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

    dtype, missing = np.float64, np.nan

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


class _TextColumn(_Column):
    """text: the answer as written (control characters and all: outputs make it readable), '' missing."""

    dtype, missing = object, ""

    def read(self, value: Any) -> Reading:
        if isinstance(value, str):
            return value.strip(), ""
        return "", f"{shown(value)} is not text"

    def finish(self, values: np.ndarray) -> np.ndarray:
        return values


class _DateColumn(_Column):
    """date: days since 1970-01-01 (NaT missing), read from ``YYYY-MM-DD``."""

    dtype, missing = np.int64, NAT_DAYS
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
        _TextColumn(ind.STAKEHOLDER_OTHER_ORG),
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


class _Findings:
    """The findings of one build, each kept with the row it is about (they come out in row order)."""

    def __init__(self, ids: list[str], notes: Iterable[tuple[int, Finding]]) -> None:
        self.ids = ids
        self.found: list[tuple[int, Finding]] = list(notes)  # made earlier about whole submissions
        self.noted = np.zeros(len(ids), dtype=bool)  # rows with a finding about the whole submission
        self.noted[[index for index, _ in self.found]] = True

    def find(self, index: Any, rule: str, field: str, detail: str) -> None:
        index = int(index)
        self.found.append((index, (self.ids[index], rule, field, detail)))

    def find_each(self, where: np.ndarray, rule: str, field: str, detail: str) -> None:
        """The same finding for every row where ``where`` is true."""
        ids = self.ids
        self.found += [(index, (ids[index], rule, field, detail)) for index in np.flatnonzero(where).tolist()]

    def frame(self) -> pd.DataFrame:
        self.found.sort(key=lambda item: item[0])  # stable: a row's findings keep their order
        return pd.DataFrame([finding for _, finding in self.found], columns=FINDING_COLUMNS, dtype=object)


def _structure_findings(table: AnswerTable, findings: _Findings) -> None:
    """Submissions without answers, required groups left empty, and persons that cannot be linked.

    A row already found malformed as a whole (``findings.noted``) is not also said to have no answers.
    """
    answered = {field: table.codes[field] != 0 for field in READ_FIELDS}
    anything = np.logical_or.reduce([answered[field] for field in READ_FIELDS])
    consent_yes = _equals(table, ind.CONSENT, "yes")
    findings.find_each(~anything & ~findings.noted, "malformed", "data", "the submission has no answers")
    for group, fields in GROUP_FIELDS.items():
        missing = anything & ~np.logical_or.reduce([answered[field] for field in fields])
        expected = consent_yes if group == ind.GROUP_PERSON else True  # contract section 2
        detail = f"group '{group}' is missing: no answers in it"
        findings.find_each(missing & expected, "malformed", group, detail)
    for index in np.flatnonzero(np.asarray(table.key_basis, dtype=object) != "uic"):
        findings.find(index, "not_linkable", "person_key", table.key_reason[index])


def _equals(table: AnswerTable, field: str, answer: str) -> np.ndarray:
    matches = [code for code, value in enumerate(table.values[field]) if value == answer and code]
    return np.isin(table.codes[field], matches)


def cases_from_table(
    table: AnswerTable, settings: Settings, *, notes: Iterable[tuple[int, Finding]] = ()
) -> Cases:
    """One typed case record per row of ``table``, plus ``malformed`` and ``not_linkable`` findings.

    ``notes``: (row index, finding) already made about whole submissions, kept with their rows.
    """
    ids = table.submission_id
    findings = _Findings(ids, notes)
    _structure_findings(table, findings)
    submitted = pd.to_datetime(
        pd.Series(table.submitted_at, dtype=object), format="%Y-%m-%dT%H:%M:%S", utc=True, errors="coerce"
    )
    columns = _columns(settings)
    typed = {
        field: columns[field].column(table.codes[field], table.values[field], findings)
        for field in READ_FIELDS
    }
    for index in np.flatnonzero(submitted.isna().to_numpy()):
        raw = shown(table.submitted_at[index])
        findings.find(index, "malformed", "submitted_at", f"{raw} is not a UTC time")
    for index in np.flatnonzero(np.asarray(table.form_version, dtype=object) == ind.MISSHAPEN_METADATA):
        detail = "_uuid, form_version, __version__ or _submission_time not in its shape: not stored"
        findings.find(index, "malformed", "metadata", detail)
    status_code = {name: code for code, name in enumerate(ind.REVIEW_STATUSES)}
    status_codes = np.array([status_code.get(raw, -1) for raw in table.review_status], dtype=np.int8)
    status = pd.Categorical.from_codes(status_codes, categories=pd.Index(ind.REVIEW_STATUSES))
    for index in np.flatnonzero(status_codes == -1):
        raw = shown(table.review_status[index])
        findings.find(index, "malformed", "review_status", f"unknown review status {raw}")
    frame = pd.DataFrame(
        {
            "submission_id": pd.Series(ids, dtype=object),
            "id_number": _id_numbers(ids),
            "submitted_at": submitted,
            "review_status": status.fillna("unreviewed"),
            "deleted": np.asarray(table.deleted, dtype=bool),
            **key_columns(table),
        }
    )
    for field in READ_FIELDS:
        frame[field] = typed[field]
    action = frame.pop(ind.ACTION)
    frame["identified"] = (action & choice_bit("action", "identified")) != 0
    frame["referred"] = (action & choice_bit("action", "referred")) != 0
    frame["disability"] = disability_status(frame)
    return Cases(frame=frame, findings=findings.frame())


def key_columns(table: AnswerTable) -> dict[str, pd.Categorical]:
    """The case frame's ``person_key`` (categories in the order the keys first occur) and
    ``key_basis`` columns of ``table``."""
    keys, key_names = pd.factorize(np.asarray(table.person_key, dtype=object))
    return {
        "person_key": pd.Categorical.from_codes(keys, categories=pd.Index(key_names)),
        "key_basis": pd.Categorical(table.key_basis),
    }


def _id_numbers(ids: list[str]) -> np.ndarray:
    """Kobo's numeric ``_id`` as a number (NaN for other ids such as Central's ``uuid:...``)."""
    try:
        return np.array(ids, dtype=str).astype(np.float64)  # all numeric: the fast path
    except ValueError:
        return pd.to_numeric(pd.Series(ids, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def disability_status(frame: pd.DataFrame) -> pd.Categorical:
    """Washington Group status (contract section 4): not_asked under 5, yes, no or unknown."""
    hard = {"a_lot_of_difficulty", "cannot_do_at_all"}
    easy = {"no_difficulty", "some_difficulty"}
    answers = [frame[field] for field in ind.WG_FIELDS]
    any_hard = np.logical_or.reduce([answer.isin(hard).to_numpy() for answer in answers])
    all_easy = np.logical_and.reduce([answer.isin(easy).to_numpy() for answer in answers])
    under_five = (frame[ind.AGE_YEARS] < 5).to_numpy()
    status = np.select([under_five, any_hard, all_easy], [ind.NOT_ASKED, "yes", "no"], default=ind.UNKNOWN)
    return pd.Categorical(status, categories=["yes", "no", ind.NOT_ASKED, ind.UNKNOWN])


def answer_table(rows: Iterable[StoredSubmission]) -> tuple[AnswerTable, list[tuple[int, Finding]]]:
    """Submissions held in memory as the column table the store gives, and the findings about data
    that is not an object at all."""
    reader = SubmissionReader(AnswerCodes(READ_FIELDS))
    meta: dict[str, list[Any]] = {name: [] for name in META_COLUMNS}
    encoded: list[list[int]] = []
    notes: list[tuple[int, Finding]] = []
    for index, row in enumerate(rows):
        for name in META_COLUMNS:
            meta[name].append(getattr(row, name))
        data = row.data
        if not isinstance(data, Mapping):
            notes.append(
                (index, (str(row.submission_id), "malformed", "data", f"{shown(data)} is not an object"))
            )
            data = {}
        encoded.append(reader.read(data)[0])
    matrix = np.array(encoded, dtype=np.int32).reshape(len(encoded), len(READ_FIELDS))
    table = AnswerTable(
        submission_id=[str(sid) for sid in meta["submission_id"]],
        review_status=meta["review_status"],
        submitted_at=meta["submitted_at"],
        form_version=meta["form_version"],
        person_key=meta["person_key"],
        key_basis=meta["key_basis"],
        key_reason=[str(reason or "") for reason in meta["key_reason"]],
        deleted=np.array([bool(flag) for flag in meta["deleted"]], dtype=bool),
        codes={field: matrix[:, index] for index, field in enumerate(READ_FIELDS)},
        values=reader.codes.values,
    )
    return table, notes


def build_cases(rows: Iterable[StoredSubmission], settings: Settings) -> Cases:
    """One typed case record per submission held in memory (any key style), plus findings."""
    table, notes = answer_table(rows)
    return cases_from_table(table, settings, notes=notes)
