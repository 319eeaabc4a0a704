"""The counting engine (contract sections 3, 4, 5 and 7): eligibility, index events, count tables.

Everything is vectorised over the case frame of ``kobo_tip.cases``: rules are boolean masks taken
in the contract's order, index events come from one sort and ``duplicated``, and every table is a
``bincount`` of (quarter, category) codes, turned into fiscal-year and LOP rows by one matrix
product, so quarters always add up to years and to the LOP.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kobo_tip import indicator as ind
from kobo_tip import partners
from kobo_tip.cases import FINDING_COLUMNS, Cases, choice_bit
from kobo_tip.errors import ConfigError
from kobo_tip.periods import QUARTER, Period, last_counted_day, reporting_periods

if TYPE_CHECKING:
    from kobo_tip.config import Settings

MERGE_COLUMNS = ("keep_submission_id", "merge_submission_id", "decided_by", "decided_on")
DUPLICATE_WINDOW_DAYS = 30
RULE_FIELDS = {
    "deleted": "",
    "rejected": "review_status",
    "not_approved": "review_status",
    "date_missing": ind.EVENT_DATE,
    "date_out_of_range": ind.EVENT_DATE,
    "date_in_future": ind.EVENT_DATE,
    "action_missing": ind.ACTION,
    "stakeholder_not_on_roster": ind.STAKEHOLDER_ID,
    "event_before_training": ind.EVENT_DATE,
    "category_not_counted": ind.PERSON_CATEGORY,
}
# The columns dimensions and duplicate checks read from the index events.
EVENT_COLUMNS = (
    "submission_id",
    "event_date",
    ind.CONSENT,
    ind.AGE_YEARS,
    ind.BIRTH_YEAR,
    ind.GENDER,
    ind.COUNTRY_ORIGIN,
    ind.ETHNICITY,
    "disability",
    ind.STAKEHOLDER_TYPE,
    ind.IDENTIFICATION_COUNTRY,
    ind.LOCATION_ADMIN1,
    ind.LOCATION_ADMIN2,
    ind.PERSON_CATEGORY,
    ind.EXPLOITATION_TYPE,
    ind.GBV_TYPE,
    ind.SERVICES,
)
RULE_ORDER = {rule: rank for rank, rule in enumerate(ind.EXCLUSION_RULES + ind.FINDING_RULES)}
COUNT_COLUMNS = [*ind.COUNTS_COLUMNS, "additive", "period_kind"]
ALL = "all"
PERSON_COLUMNS = ["person_key", "submission_id", "submitted_at", "quarter"]
ROW_COLUMNS = ["submission_id", "own_key", "person_key", "rule"]


@dataclass(frozen=True)
class CountResult:
    """The indicator's tables for one run (see docs/modules.md)."""

    counts: pd.DataFrame
    findings: pd.DataFrame
    periods: list[Period]
    as_of: dt.date
    through: dt.date
    # With ``persons=True`` (what the as-reported ledger reads, ``kobo_tip.ledger``): per variant,
    # each counted person (``PERSON_COLUMNS``, then one column per dimension holding the category,
    # or for a multi-response one the tuple of categories); and per stored row, its own key, its
    # person's key after merges and the first rule it fails (``ROW_COLUMNS``).
    persons: dict[str, pd.DataFrame] | None = None
    rows: pd.DataFrame | None = None
    # With organisations on the roster: counts by partner organisation and stakeholder
    # (``kobo_tip.partners``, internal only).
    partners: pd.DataFrame | None = None


@dataclass(frozen=True)
class Dimension:
    """One breakdown: its categories in output order; ``codes`` per person (additive) or a mask matrix."""

    name: str
    categories: tuple[str, ...]
    additive: bool
    codes: np.ndarray  # additive: (persons,) category codes; else (persons, categories) booleans


# --- merges ------------------------------------------------------------------------------------


def read_merges(path: Path, submission_ids: pd.Series) -> list[tuple[str, str]]:
    """(keep, merge) submission id pairs of a reviewed merges file; a bad row is a ConfigError."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in MERGE_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(
                    f"Merges file {path} lacks the column(s) {', '.join(missing)}; "
                    f"expected {','.join(MERGE_COLUMNS)}."
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Merges file {path} cannot be read as UTF-8 CSV ({exc}).") from None
    known = set(submission_ids)
    pairs = []
    for line, row in enumerate(rows, start=2):
        where = f"Merges file {path} line {line}"
        keep, merge = (str(row.get(name) or "").strip() for name in MERGE_COLUMNS[:2])
        if not keep or not merge or keep == merge:
            raise ConfigError(
                f"{where}: keep_submission_id and merge_submission_id must be two different ids."
            )
        for sid in (keep, merge):
            if sid not in known:
                raise ConfigError(f"{where}: submission '{sid}' is not in the store; correct the id.")
        if not str(row.get("decided_by") or "").strip():
            raise ConfigError(f"{where}: decided_by is empty; name who reviewed the merge.")
        try:
            dt.date.fromisoformat(str(row.get("decided_on") or "").strip())
        except ValueError:
            raise ConfigError(f"{where}: decided_on must be a date written YYYY-MM-DD.") from None
        pairs.append((keep, merge))
    return pairs


def person_codes(frame: pd.DataFrame, merges: Sequence[tuple[str, str]]) -> np.ndarray:
    """One integer per row naming its person, after the merges (the merged person joins the kept one)."""
    codes = frame["person_key"].cat.codes.to_numpy().astype(np.int64)
    keyless = np.flatnonzero(codes < 0)  # no key stored: each such row is a person of its own
    codes[keyless] = len(frame["person_key"].cat.categories) + np.arange(len(keyless))
    if not merges:
        return codes
    row_of = pd.Series(np.arange(len(frame)), index=frame["submission_id"].to_numpy())
    parent = np.arange(codes.max() + 1)

    def root(code: int) -> int:
        while parent[code] != code:
            code = parent[code]
        return code

    for keep, merge in merges:
        keep_root, merge_root = root(codes[row_of[keep]]), root(codes[row_of[merge]])
        if keep_root != merge_root:
            parent[merge_root] = keep_root
    while not np.array_equal(parent[parent], parent):  # pointer jumping: every code to its root
        parent = parent[parent]
    return parent[codes]


# --- eligibility -------------------------------------------------------------------------------


def first_failed_rule(frame: pd.DataFrame, settings: Settings, as_of: dt.date) -> np.ndarray:
    """Per row, the first rule of contract section 4 it fails, or "" when it is eligible for some variant."""
    project, options = settings.project, settings.indicator
    status = frame["review_status"].astype(object).to_numpy()
    date = frame["event_date"]
    roster = {member.id: member.trained_on for member in settings.form.roster}
    stakeholder = frame["stakeholder_id"].astype(object)
    trained_on = pd.to_datetime(stakeholder.map(roster), errors="coerce")
    counted = np.uint16(sum(choice_bit("person_category", name) for name in options.person_categories))
    failures = [
        ("deleted", frame["deleted"].to_numpy()),
        ("rejected", status == "rejected"),
        ("not_approved", options.require_approved & (status != "approved")),
        ("date_missing", date.isna().to_numpy()),
        (
            "date_out_of_range",
            ((date < pd.Timestamp(project.start_date)) | (date > pd.Timestamp(project.end_date))).to_numpy(),
        ),
        ("date_in_future", (date > pd.Timestamp(as_of)).to_numpy()),
        ("action_missing", ~(frame["identified"] | frame["referred"]).to_numpy()),
        ("stakeholder_not_on_roster", ~stakeholder.isin(list(roster)).to_numpy()),
        (
            "event_before_training",
            options.require_event_after_training & (date < trained_on).to_numpy(),
        ),
        ("category_not_counted", (frame[ind.PERSON_CATEGORY].to_numpy() & counted) == 0),
    ]
    return np.select([mask for _, mask in failures], [rule for rule, _ in failures], default="")


def _exclusion_findings(
    frame: pd.DataFrame, rules: np.ndarray, settings: Settings, as_of: dt.date
) -> tuple[pd.DataFrame, np.ndarray]:
    failed = rules != ""
    rows = frame.loc[failed]
    rule = pd.Series(rules[failed], index=rows.index)
    date = rows["event_date"].dt.strftime("%Y-%m-%d").fillna("")
    stakeholder = rows["stakeholder_id"].astype(object).fillna("")
    other_org = rows[ind.STAKEHOLDER_OTHER_ORG].astype(object).fillna("")
    roster = {member.id: str(member.trained_on) for member in settings.form.roster}
    trained_on = stakeholder.map(roster).fillna("")
    project = settings.project
    details = {
        "deleted": pd.Series("deleted on the server", index=rows.index),
        "rejected": pd.Series("review status is rejected", index=rows.index),
        "not_approved": "review status is "
        + rows["review_status"].astype(str)
        + "; [indicator] require_approved is on",
        "date_missing": pd.Series("no readable event date", index=rows.index),
        "date_out_of_range": date
        + f" is outside the project ({project.start_date.isoformat()} .. {project.end_date.isoformat()})",
        "date_in_future": date + f" is after the run date {as_of.isoformat()}",
        "action_missing": pd.Series("neither identified nor referred", index=rows.index),
        "stakeholder_not_on_roster": pd.Series(
            np.select(
                [stakeholder == "", (stakeholder == ind.NOT_LISTED) & (other_org != "")],
                [
                    "stakeholder_id missing or not an id of the roster",
                    "not on the roster: '" + other_org + "' (add it to the roster if the project trained it)",
                ],
                "stakeholder '" + stakeholder + "' is not on the roster",
            ),
            index=rows.index,
        ),
        "event_before_training": date + " is before '" + stakeholder + "' was trained on " + trained_on,
        "category_not_counted": pd.Series(
            "no person category among [indicator] person_categories", index=rows.index
        ),
    }
    detail = pd.Series("", index=rows.index, dtype=object)
    for name, text in details.items():
        chosen = (rule == name).to_numpy()
        detail[chosen] = text[chosen]
    findings = pd.DataFrame(
        {
            "submission_id": rows["submission_id"].to_numpy(),
            "rule": rule.to_numpy(),
            "field": rule.map(RULE_FIELDS).to_numpy(),
            "detail": detail.to_numpy(),
        }
    )
    return findings, np.flatnonzero(failed)


# --- index events ------------------------------------------------------------------------------


def submission_rank(frame: pd.DataFrame) -> np.ndarray:
    """Each row's place in submission id order: Kobo ``_id`` as a number, other ids as text after."""
    numbers = frame["id_number"].to_numpy()
    text = np.isnan(numbers)
    text_rank = np.zeros(len(frame), dtype=np.int64)
    if text.any():  # Central ids: compare as text (only those rows pay for a string sort)
        text_rank[text] = np.argsort(np.argsort(frame["submission_id"].to_numpy()[text], kind="stable"))
    order = np.lexsort((text_rank, np.where(text, np.inf, numbers)))
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order] = np.arange(len(frame))
    return rank


def event_order(frame: pd.DataFrame, persons: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Row positions sorted by person, event date, submission time (UTC), then submission id."""
    never = np.iinfo(np.int64).max  # a missing time sorts last
    date = frame["event_date"].to_numpy().astype("datetime64[ns]").view(np.int64)
    submitted = frame["submitted_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    submitted = submitted.astype("datetime64[ns]").view(np.int64)
    nat = np.iinfo(np.int64).min
    return np.lexsort(
        (rank, np.where(submitted == nat, never, submitted), np.where(date == nat, never, date), persons)
    )


def index_events(order: np.ndarray, persons: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Row positions of each person's first eligible event (``order`` from ``event_order``)."""
    candidates = order[eligible[order]]
    first = ~pd.Series(persons[candidates]).duplicated().to_numpy()
    return candidates[first]


# --- dimensions --------------------------------------------------------------------------------


def recode(values: pd.Series, categories: Sequence[str], missing: int) -> np.ndarray:
    """Codes into ``categories`` of a categorical column; missing or unlisted values get ``missing``."""
    position = {name: code for code, name in enumerate(categories)}
    lookup = [position.get(name, missing) for name in values.cat.categories]
    return np.asarray([*lookup, missing], dtype=np.int64)[values.cat.codes.to_numpy()]  # -1 picks the last


def _present(values: pd.Series, rows: np.ndarray | None = None) -> set[str]:
    """Category names a categorical column holds (in ``rows`` when given)."""
    codes = values.cat.codes.to_numpy()
    codes = codes if rows is None else codes[rows]
    return set(values.cat.categories[np.unique(codes[codes >= 0])])


def location_codes(events: pd.DataFrame, level: int, categories: Sequence[str]) -> np.ndarray:
    """admin1 (or admin2) code, else the identification country, else ``unknown`` (contract section 4)."""
    admin = recode(events[_admin_field(level)], categories, -1)
    country = recode(events[ind.IDENTIFICATION_COUNTRY], categories, categories.index(ind.UNKNOWN))
    return np.where(admin >= 0, admin, country)


def location_names(events: pd.DataFrame, level: int) -> set[str]:
    """The location codes ``location_codes`` can give for ``events``."""
    admin = events[_admin_field(level)]
    return _present(admin) | _present(events[ind.IDENTIFICATION_COUNTRY], admin.isna().to_numpy())


def _admin_field(level: int) -> str:
    return ind.LOCATION_ADMIN2 if level == 2 else ind.LOCATION_ADMIN1


def _seen_order(seen: set[str], preferred: Sequence[str], tail: Sequence[str]) -> tuple[str, ...]:
    first = [code for code in preferred if code in seen]
    rest = sorted(seen - set(first) - set(tail), key=lambda code: (len(code), code))  # alpha-2 first
    return (*first, *rest, *tail)


def _mask_matrix(masks: np.ndarray, list_name: str) -> tuple[tuple[str, ...], np.ndarray]:
    names = ind.CHOICES[list_name]
    selected = np.column_stack([(masks & choice_bit(list_name, name)) != 0 for name in names])
    unknown = ~selected.any(axis=1)
    return (*names, ind.UNKNOWN), np.column_stack([selected, unknown])


def _single(name: str, values: pd.Series, choices: Sequence[str]) -> Dimension:
    """A select_one dimension: the choices plus ``unknown``."""
    categories = (*choices, ind.UNKNOWN)
    return Dimension(name, categories, True, recode(values, categories, len(choices)))


def _personal(name: str, values: pd.Series, choices: Sequence[str], consented: np.ndarray) -> Dimension:
    """A personal dimension: the choices, ``unknown``, and ``not_recorded`` without consent."""
    categories = tuple(dict.fromkeys((*choices, ind.UNKNOWN, ind.NOT_RECORDED)))
    codes = recode(values, categories, categories.index(ind.UNKNOWN))
    return Dimension(name, categories, True, np.where(consented, codes, categories.index(ind.NOT_RECORDED)))


def dimensions(
    events: pd.DataFrame, variant: str, settings: Settings, locations: Sequence[str], origins: Sequence[str]
) -> list[Dimension]:
    """Every dimension of contract section 7 for the index events ``events`` of one variant."""
    consented = (events[ind.CONSENT] == "yes").to_numpy()
    bounds = np.asarray(settings.indicator.age_bands, dtype=np.float64)
    bands = (*ind.age_band_labels(settings.indicator.age_bands), ind.UNKNOWN)
    age = events[ind.AGE_YEARS].to_numpy()
    band = np.where(np.isnan(age), len(bounds), np.searchsorted(bounds, age, side="right") - 1)
    genders = ind.CHOICES["gender"]
    gender = _personal("gender", events[ind.GENDER], genders, consented)
    cross = (*(f"{b}|{g}" for b in bands for g in genders), f"{ind.NOT_RECORDED}|{ind.NOT_RECORDED}")
    result = [
        Dimension("total", (ALL,), True, np.zeros(len(events), dtype=np.int64)),
        Dimension("age_band", (*bands, ind.NOT_RECORDED), True, np.where(consented, band, len(bands))),
        gender,
        Dimension(
            "location",
            tuple(locations),
            True,
            location_codes(events, settings.indicator.location_level, locations),
        ),
        _personal("country_of_origin", events[ind.COUNTRY_ORIGIN], origins, consented),
        _single("stakeholder_type", events[ind.STAKEHOLDER_TYPE], ind.CHOICES["stakeholder_type"]),
    ]
    if settings.form.disability:
        result.append(_personal("disability", events["disability"], ind.DISABILITY_CATEGORIES, consented))
    if settings.form.ethnicities:
        result.append(_personal("ethnicity", events[ind.ETHNICITY], settings.form.ethnicities, consented))
    result.append(
        Dimension(
            "age_band_x_gender",
            cross,
            True,
            np.where(consented, band * len(genders) + gender.codes, len(cross) - 1),
        )
    )
    for field, list_name in (
        (ind.PERSON_CATEGORY, "person_category"),
        (ind.EXPLOITATION_TYPE, "exploitation_type"),
    ):
        names, matrix = _mask_matrix(events[field].to_numpy(), list_name)
        result.append(Dimension(list_name, names, False, matrix))
    # gbv_type is a select_one: every person is in one of its categories (``unknown`` when not asked).
    result.append(_single("gbv_type", events[ind.GBV_TYPE], ind.CHOICES["gbv_type"]))
    if variant == "referred":
        names, matrix = _mask_matrix(events[ind.SERVICES].to_numpy(), "service")
        result.append(Dimension("services", names, False, matrix))
    return result


# --- tables ------------------------------------------------------------------------------------


def quarter_numbers(dates: pd.Series, first_quarter: Period | None) -> np.ndarray:
    if first_quarter is None:
        return np.zeros(len(dates), dtype=np.int64)
    months = dates.dt.year.to_numpy() * 12 + dates.dt.month.to_numpy() - 1
    first = first_quarter.start.year * 12 + first_quarter.start.month - 1
    return (months - first) // 3


def period_matrix(periods: Sequence[Period]) -> np.ndarray:
    """Rows: periods; columns: quarters; 1 where the period holds the quarter."""
    quarters = [period for period in periods if period.kind == QUARTER]
    return np.array(
        [
            [period.start <= quarter.start and quarter.end <= period.end for quarter in quarters]
            for period in periods
        ],
        dtype=np.int64,
    ).reshape(len(periods), len(quarters))


def _table(dimension: Dimension, quarter: np.ndarray, n_quarters: int) -> np.ndarray:
    """Counts per (quarter, category)."""
    n = len(dimension.categories)
    if dimension.additive:
        flat = np.bincount(quarter * n + dimension.codes, minlength=n_quarters * n)
        return flat.reshape(n_quarters, n)
    return np.column_stack(
        [np.bincount(quarter[dimension.codes[:, c]], minlength=n_quarters) for c in range(n)]
    ).reshape(n_quarters, n)


def _counts(
    events: pd.DataFrame,
    index_rows: dict[str, np.ndarray],
    periods: list[Period],
    settings: Settings,
    locations: Sequence[str],
    *,
    origins: Sequence[str],
) -> pd.DataFrame:
    """The counts table: variants, then periods, then dimensions and their categories, in order."""
    quarters = [period for period in periods if period.kind == QUARTER]
    to_periods = period_matrix(periods)
    blocks = []
    for variant, rows in index_rows.items():
        persons = events.iloc[rows]
        quarter = quarter_numbers(persons["event_date"], quarters[0] if quarters else None)
        for dimension in dimensions(persons, variant, settings, locations, origins):
            values = to_periods @ _table(dimension, quarter, len(quarters))  # (periods, categories)
            blocks.append(
                count_block(
                    variant,
                    dimension.name,
                    dimension.categories,
                    values,
                    periods,
                    additive=dimension.additive,
                )
            )
    return count_table(blocks)


def count_block(
    variant: str,
    dimension: str,
    categories: Sequence[str],
    values: np.ndarray,
    periods: Sequence[Period],
    *,
    additive: bool,
) -> dict[str, np.ndarray]:
    """The counts table's columns of one variant and dimension; ``values``: (periods, categories)."""
    n = len(categories)
    size = n * len(periods)
    return {
        "indicator": np.full(size, variant, dtype=object),
        "period": np.repeat(np.asarray([period.label for period in periods], dtype=object), n),
        "period_start": np.repeat(np.asarray([p.start.isoformat() for p in periods], dtype=object), n),
        "period_end": np.repeat(np.asarray([p.end.isoformat() for p in periods], dtype=object), n),
        "dimension": np.full(size, dimension, dtype=object),
        "category": np.tile(np.asarray(categories, dtype=object), len(periods)),
        "value": values.reshape(-1).astype(np.int64),
        "additive": np.full(size, additive, dtype=bool),
        "period_kind": np.repeat(np.asarray([period.kind for period in periods], dtype=object), n),
    }


def count_table(blocks: Sequence[dict[str, np.ndarray]]) -> pd.DataFrame:
    """The counts table of ``count_block``s, in their order (one frame built once: a frame a block
    cost more than the counting itself)."""
    return pd.DataFrame(
        {column: np.concatenate([block[column] for block in blocks]) for column in COUNT_COLUMNS}
    )


def person_names(frame: pd.DataFrame) -> np.ndarray:
    """The key naming each code ``person_codes`` can give: the stored key, or for a row stored
    without one (a person of its own, numbered after the keys) its submission id."""
    keys = np.asarray(frame["person_key"].cat.categories, dtype=object)
    keyless = frame["person_key"].cat.codes.to_numpy() < 0
    return np.concatenate([keys, frame["submission_id"].to_numpy(dtype=object)[keyless]])


def _persons(
    events: pd.DataFrame,
    index_rows: dict[str, np.ndarray],
    names: np.ndarray,
    persons: np.ndarray,
    periods: list[Period],
    *,
    settings: Settings,
    locations: Sequence[str],
    origins: Sequence[str],
) -> dict[str, pd.DataFrame]:
    """Each variant's counted persons: key, index submission, its time, quarter and categories."""
    quarters = [period for period in periods if period.kind == QUARTER]
    labels = np.asarray([period.label for period in quarters] or [""], dtype=object)
    out = {}
    for variant, rows in index_rows.items():
        chosen = events.iloc[rows]
        quarter = quarter_numbers(chosen["event_date"], quarters[0] if quarters else None)
        # Only the index events' times are written out: not every stored row's.
        submitted = chosen["submitted_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        table = {
            "person_key": names[persons[rows]],
            "submission_id": chosen["submission_id"].to_numpy(),
            "submitted_at": submitted.fillna("").to_numpy(dtype=object),
            "quarter": labels[quarter] if len(quarter) else np.asarray([], dtype=object),
        }
        for dimension in dimensions(chosen, variant, settings, locations, origins):
            categories = np.asarray(dimension.categories, dtype=object)
            if dimension.additive:
                table[dimension.name] = categories[dimension.codes]
            else:
                table[dimension.name] = _category_tuples(categories, dimension.codes)
        out[variant] = pd.DataFrame(table)
    return out


def _category_tuples(categories: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per row of the mask matrix ``codes``, the tuple of the ``categories`` it holds. A tuple is
    made once per distinct row, not once per person (persons share a few hundred): count_indicator
    with persons of 100,000 rows 0.40 s CPU instead of 0.65 to 0.73 s with one tuple per person."""
    width = codes.shape[1]
    packed = np.ascontiguousarray(np.packbits(codes, axis=1))  # a row's masks as bytes: one sort key
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
    distinct, inverse = np.unique(keys, return_inverse=True)
    patterns = np.unpackbits(
        distinct.view(np.uint8).reshape(len(distinct), packed.shape[1]), axis=1, count=width
    )
    made = np.empty(len(distinct), dtype=object)
    for number, pattern in enumerate(patterns.astype(bool)):
        made[number] = tuple(categories[pattern])
    return made[inverse.reshape(-1)]


def _rows_of(frame: pd.DataFrame, submission_ids: pd.Series) -> np.ndarray:
    return pd.Index(frame["submission_id"]).get_indexer(submission_ids.to_numpy())


# --- possible duplicates -----------------------------------------------------------------------


def possible_duplicates(
    events: pd.DataFrame, persons: np.ndarray, rows: np.ndarray, rank: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """Events (among ``rows``) dated within 30 days after an event of another person with the same
    birth year, gender, origin and admin1: a finding on the later event naming the earlier one."""
    group = np.nan_to_num(events[ind.BIRTH_YEAR].to_numpy()[rows], nan=-1).astype(np.int64)
    known = group >= 0
    for field in (ind.GENDER, ind.COUNTRY_ORIGIN, ind.LOCATION_ADMIN1):
        codes = events[field].cat.codes.to_numpy()[rows]
        known &= codes >= 0
        group = group * (len(events[field].cat.categories) + 1) + codes
    rows = rows[known]
    group = group[known]
    day = events["event_date"].to_numpy()[rows].astype("datetime64[D]").astype(np.int64)
    order = np.lexsort((rank[rows], day, group))
    rows, group, day, person = rows[order], group[order], day[order], persons[rows][order]
    # Each event is paired with the nearest earlier event of another person, so the list stays
    # one row per event however dense a group is (a reviewer follows the chain).
    partner = np.full(len(rows), -1, dtype=np.int64)
    shift = 1
    while shift < len(rows):
        near = (group[shift:] == group[:-shift]) & (day[shift:] - day[:-shift] <= DUPLICATE_WINDOW_DAYS)
        near &= partner[shift:] < 0
        if not near.any():
            break  # sorted by day within a group: no pair further apart can be near either
        pair = np.flatnonzero(near & (person[shift:] != person[:-shift]))
        partner[pair + shift] = pair
        shift += 1
    flagged = np.flatnonzero(partner >= 0)
    later_rows, earlier_rows = rows[flagged], rows[partner[flagged]]
    in_id_order = np.argsort(rank[later_rows], kind="stable")
    later_rows, earlier_rows = later_rows[in_id_order], earlier_rows[in_id_order]
    ids = events["submission_id"].to_numpy()
    findings = pd.DataFrame(
        {
            "submission_id": ids[later_rows],
            "rule": "possible_duplicate",
            "field": "person_key",
            "detail": ids[earlier_rows],
        },
        columns=FINDING_COLUMNS,
    )
    return findings, later_rows


def _sorted_findings(parts: list[pd.DataFrame], rows: list[np.ndarray], rank: np.ndarray) -> pd.DataFrame:
    """All findings in submission id order, then the contract's rule order (``rows``: each part's rows)."""
    findings = pd.concat([part.astype(object) for part in parts], ignore_index=True)
    place = rank[np.concatenate(rows)] if rows else np.array([], dtype=np.int64)
    rule = findings["rule"].map(RULE_ORDER).to_numpy()
    return findings.iloc[np.lexsort((rule, place))].reset_index(drop=True)


# --- the engine --------------------------------------------------------------------------------


def count_indicator(
    cases: Cases,
    settings: Settings,
    as_of: dt.date,
    *,
    through: dt.date | None = None,
    rules: np.ndarray | None = None,
    merges: Sequence[tuple[str, str]] | None = None,
    persons: bool = False,
    counts: pd.DataFrame | None = None,
) -> CountResult:
    """Apply the counting rules and build every table of contract section 7 (see docs/modules.md).

    ``rules`` (each row's ``first_failed_rule``) and ``merges`` (submission id pairs) replace the
    ones ``settings`` gives, for a programme that holds each row to its own project's. ``persons``:
    also give each counted person and each row's keys (``CountResult.persons`` and ``.rows``).
    ``counts``: the counts table as a ``tally.Tally`` of the same rows keeps it (what this would
    count, as tests/test_serve.py checks), so it is not counted again."""
    through = through or as_of
    frame = cases.frame.reset_index(drop=True)
    if merges is None:
        merges_path = settings.indicator.merges_path
        merges = read_merges(merges_path, frame["submission_id"]) if merges_path else []
    person = person_codes(frame, merges)
    if rules is None:
        rules = first_failed_rule(frame, settings, as_of)
    last_day = pd.Timestamp(last_counted_day(settings.project, as_of, through))
    counted = (rules == "") & (frame["event_date"] <= last_day).to_numpy()
    rank = submission_rank(frame)
    order = event_order(frame, person, rank)
    action = {"identified": frame["identified"].to_numpy(), "referred": frame["referred"].to_numpy()}
    index_rows = {
        variant: index_events(order, person, counted & np.logical_or.reduce([action[a] for a in actions]))
        for variant, actions in ind.VARIANTS.items()
    }
    events = frame[list(EVENT_COLUMNS)]
    all_index = events.iloc[np.concatenate(list(index_rows.values()))]
    level = settings.indicator.location_level
    locations = _seen_order(
        location_names(all_index, level),
        [loc.code for loc in settings.form.locations if loc.level == level],
        (ind.UNKNOWN,),
    )
    origins = _seen_order(
        _present(all_index[ind.COUNTRY_ORIGIN], (all_index[ind.CONSENT] == "yes").to_numpy()),
        [],
        (ind.UNKNOWN, ind.NOT_RECORDED),
    )
    periods = reporting_periods(settings.project, as_of, through)
    if counts is None:
        counts = _counts(events, index_rows, periods, settings, locations, origins=origins)
    excluded, excluded_rows = _exclusion_findings(frame, rules, settings, as_of)
    duplicates, duplicate_rows = possible_duplicates(
        events, person, np.flatnonzero(counted & (action["identified"] | action["referred"])), rank
    )
    findings = _sorted_findings(
        [cases.findings, excluded, duplicates],
        [_rows_of(frame, cases.findings["submission_id"]), excluded_rows, duplicate_rows],
        rank,
    )
    by_partner = None
    if partners.organisations(settings.form.roster):
        by_partner = partners.partner_counts(
            frame,
            order=order,
            persons=person,
            counted=counted,
            action=action,
            periods=periods,
            roster=settings.form.roster,
        )
    result = CountResult(
        counts=counts, findings=findings, periods=periods, as_of=as_of, through=through, partners=by_partner
    )
    if not persons:
        return result
    names = person_names(frame)
    row_keys = pd.DataFrame(
        {
            "submission_id": frame["submission_id"].to_numpy(dtype=object),
            "own_key": names[person_codes(frame, [])],
            "person_key": names[person],
            "rule": rules,
        }
    )
    table = _persons(
        frame, index_rows, names, person, periods, settings=settings, locations=locations, origins=origins
    )
    return dataclasses.replace(result, persons=table, rows=row_keys)
