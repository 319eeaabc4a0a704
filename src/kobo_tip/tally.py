"""The count tables kept current one change at a time, so that a push does not recount the store.

A new, edited or deleted submission can change the index events (contract section 5) of the persons
it named before the change and names after it, and of no one else. ``Tally`` keeps, for each stored
row (a slot): its person, whether it counts for each variant (contract section 4), its place in its
person's event order, its quarter and its category in every dimension (contract section 7); for
each person and variant, the slot of the index event; for each variant and dimension, the persons
per (quarter, category). ``update`` takes the index events of the persons a batch of rows touches
out of the tables, writes the rows, chooses those persons' index events again from all their rows
and puts them back: the work grows with the batch and the persons it touches, not with the store.

``counting.count_indicator`` stays the truth: ``counts()`` is its ``counts`` table, row for row
(tests/test_tally.py checks it after random pushes, edits, deletions and review changes). What a
row counts for depends on the run date, so a tally counts as of one date (``as_of``): the next day
needs a new one. A merges file joins persons by decisions made outside the rows; with one, count
in full (``Tally.build`` refuses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kobo_tip import counting
from kobo_tip import indicator as ind
from kobo_tip.errors import UsageError
from kobo_tip.periods import QUARTER, last_counted_day, reporting_periods

if TYPE_CHECKING:
    from kobo_tip.config import Settings

_NEVER = np.iinfo(np.int64).max  # a missing date or time sorts last (as ``counting.event_order``)
_NAT = np.iinfo(np.int64).min
_KEYLESS = "\0"  # a row stored without a key is a person of its own, named by its submission id
_SERVICES = "services"  # the referred variant's dimension only


class Tally:
    """The counts table of ``counting.count_indicator`` for one run date, kept by ``update``."""

    def __init__(self, frame: pd.DataFrame, settings: Settings, as_of: dt.date) -> None:
        """Count the case frame ``frame`` (``cases.Cases.frame``, every stored row) in full."""
        if settings.indicator.merges_path:
            raise UsageError("A tally does not apply a merges file: count with count_indicator.")
        self.settings, self.as_of = settings, as_of
        self.periods = reporting_periods(settings.project, as_of, as_of)
        quarters = [period for period in self.periods if period.kind == QUARTER]
        self._first_quarter = quarters[0] if quarters else None
        self._quarters = len(quarters)
        self._last_day = pd.Timestamp(last_counted_day(settings.project, as_of, as_of))
        level = settings.indicator.location_level
        admin = frame[ind.LOCATION_ADMIN2 if level == 2 else ind.LOCATION_ADMIN1].cat.categories
        countries = frame[ind.IDENTIFICATION_COUNTRY].cat.categories
        self._preferred = [loc.code for loc in settings.form.locations if loc.level == level]
        # Every category a row can fall in; ``counts()`` lists those a person is counted in.
        self._locations = counting._seen_order({*admin, *countries}, self._preferred, (ind.UNKNOWN,))
        self._origins = counting._seen_order(
            set(frame[ind.COUNTRY_ORIGIN].cat.categories), [], (ind.UNKNOWN, ind.NOT_RECORDED)
        )
        self._slot: dict[str, int] = {}
        self._ids: list[str] = []  # by slot
        self._person_code: dict[str, int] = {}
        self._person_slots: list[list[int]] = []
        self._rows = 0
        self._columns: dict[str, np.ndarray] = {}
        self._categories: dict[str, tuple[str, ...]] = {}
        self._additive: dict[str, bool] = {}
        self._index = {variant: np.full(0, -1, dtype=np.int64) for variant in ind.VARIANTS}
        self._tables: dict[str, dict[str, np.ndarray]] = {variant: {} for variant in ind.VARIANTS}
        self._write(frame.reset_index(drop=True))
        persons = self._columns["person"][: self._rows]
        order = counting.event_order(frame.reset_index(drop=True), persons, counting.submission_rank(frame))
        for variant in ind.VARIANTS:
            chosen = counting.index_events(order, persons, self._columns[variant][: self._rows])
            self._index[variant][persons[chosen]] = chosen
            self._count(variant, chosen, 1)

    # --- changes ------------------------------------------------------------------------------

    def update(self, frame: pd.DataFrame) -> None:
        """Take in the rows of ``frame`` (``cases.Cases.frame`` of the submissions that changed, as
        the store now holds them: new, edited, deleted or with a new review status)."""
        frame = frame.reset_index(drop=True)
        touched = {self._person_code[name] for name in self._names(frame) if name in self._person_code}
        touched |= {
            int(self._columns["person"][self._slot[sid]])
            for sid in frame["submission_id"]
            if sid in self._slot
        }
        for variant in ind.VARIANTS:
            self._count(variant, self._index_slots(variant, touched), -1)
        touched |= set(self._write(frame).tolist())
        for variant in ind.VARIANTS:
            index = self._index[variant]
            for person in touched:
                index[person] = self._first_event(variant, person)
            self._count(variant, self._index_slots(variant, touched), 1)

    # --- the table ----------------------------------------------------------------------------

    def counts(self) -> pd.DataFrame:
        """``count_indicator(...).counts`` of the rows taken in so far."""
        locations = self._seen("location", self._locations, (ind.UNKNOWN,))
        origins = self._seen("country_of_origin", self._origins, (ind.UNKNOWN, ind.NOT_RECORDED))
        shown = {"location": locations, "country_of_origin": origins}
        to_periods = counting.period_matrix(self.periods)
        blocks = []
        for variant, tables in self._tables.items():
            for name, table in tables.items():
                categories = self._categories[name]
                chosen = shown.get(name, categories)
                position = {category: code for code, category in enumerate(categories)}
                columns = table[:, [position[category] for category in chosen]]
                blocks.append(
                    counting.count_block(
                        variant,
                        name,
                        chosen,
                        to_periods @ columns,
                        self.periods,
                        additive=self._additive[name],
                    )
                )
        return counting.count_table(blocks)

    def _seen(self, name: str, categories: Sequence[str], tail: tuple[str, ...]) -> tuple[str, ...]:
        total = sum(tables[name].sum(axis=0) for tables in self._tables.values())
        seen = {category for category, persons in zip(categories, total, strict=True) if persons}
        preferred = self._preferred if name == "location" else []
        return counting._seen_order(seen, preferred, tail)

    # --- rows ---------------------------------------------------------------------------------

    def _names(self, frame: pd.DataFrame) -> list[str]:
        keys = frame["person_key"].astype(object).to_numpy()
        ids = frame["submission_id"].to_numpy(dtype=object)
        return [
            key if isinstance(key, str) else _KEYLESS + str(sid) for key, sid in zip(keys, ids, strict=True)
        ]

    def _write(self, frame: pd.DataFrame) -> np.ndarray:
        """Store the rows of ``frame`` in their slots (new ones at the end); their person codes."""
        persons = np.asarray([self._person(name) for name in self._names(frame)], dtype=np.int64)
        ids = frame["submission_id"].tolist()
        slots = np.empty(len(ids), dtype=np.int64)
        for row, sid in enumerate(ids):
            slot = self._slot.get(sid)
            if slot is None:
                slot = self._slot[sid] = len(self._ids)
                self._ids.append(sid)
            else:
                self._person_slots[int(self._columns["person"][slot])].remove(slot)
            slots[row] = slot
        self._rows = len(self._ids)
        for column, values in self._row_columns(frame, persons).items():
            self._put(column, slots, values)
        for slot, person in zip(slots.tolist(), persons.tolist(), strict=True):
            self._person_slots[person].append(slot)
        return persons

    def _row_columns(self, frame: pd.DataFrame, persons: np.ndarray) -> dict[str, np.ndarray]:
        """What a slot keeps of a row: eligibility, event order, quarter and categories."""
        rules = counting.first_failed_rule(frame, self.settings, self.as_of)
        counted = (rules == "") & (frame["event_date"] <= self._last_day).to_numpy()
        action = {"identified": frame["identified"].to_numpy(), "referred": frame["referred"].to_numpy()}
        date = frame["event_date"].to_numpy().astype("datetime64[ns]").view(np.int64)
        submitted = frame["submitted_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        submitted = submitted.astype("datetime64[ns]").view(np.int64)
        columns = {
            "person": persons,
            "date": np.where(date == _NAT, _NEVER, date),
            "submitted": np.where(submitted == _NAT, _NEVER, submitted),
            "id_number": frame["id_number"].to_numpy(dtype=np.float64),
            # A row without a date is never counted: any quarter will do, as long as it is a number.
            "quarter": np.nan_to_num(
                counting.quarter_numbers(frame["event_date"], self._first_quarter), nan=-1
            ).astype(np.int64),
        }
        for variant, actions in ind.VARIANTS.items():
            columns[variant] = counted & np.logical_or.reduce([action[a] for a in actions])
        events = frame[list(counting.EVENT_COLUMNS)]
        for dimension in counting.dimensions(
            events, "referred", self.settings, self._locations, self._origins
        ):
            self._categories.setdefault(dimension.name, dimension.categories)
            self._additive[dimension.name] = dimension.additive
            columns["dimension:" + dimension.name] = dimension.codes
        return columns

    def _put(self, column: str, slots: np.ndarray, values: np.ndarray) -> None:
        stored = self._columns.get(column)
        if stored is None or len(stored) < self._rows:
            size = max(self._rows, 2 * (0 if stored is None else len(stored)), 1024)
            grown = np.zeros((size, *values.shape[1:]), dtype=values.dtype)
            if stored is not None:
                grown[: len(stored)] = stored
            stored = self._columns[column] = grown
        stored[slots] = values

    def _person(self, name: str) -> int:
        code = self._person_code.get(name)
        if code is None:
            code = self._person_code[name] = len(self._person_slots)
            self._person_slots.append([])
            for variant, index in self._index.items():
                if len(index) <= code:
                    self._index[variant] = np.concatenate([index, np.full(max(len(index), 1024), -1)])
        return code

    # --- index events and the tables ----------------------------------------------------------

    def _first_event(self, variant: str, person: int) -> int:
        """The slot of the person's first event counted for ``variant`` (-1 for none): by event
        date, submission time, then submission id (Kobo's number, others as text after)."""
        eligible = self._columns[variant]
        candidates = [slot for slot in self._person_slots[person] if eligible[slot]]
        if not candidates:
            return -1
        date, submitted, number = (self._columns[c] for c in ("date", "submitted", "id_number"))
        ids = self._ids

        def order(slot: int) -> tuple[int, int, bool, float, str]:
            text = bool(np.isnan(number[slot]))
            return (
                int(date[slot]),
                int(submitted[slot]),
                text,
                0.0 if text else float(number[slot]),
                ids[slot],
            )

        return min(candidates, key=order)

    def _index_slots(self, variant: str, persons: set[int]) -> np.ndarray:
        index = self._index[variant][np.fromiter(persons, dtype=np.int64, count=len(persons))]
        return index[index >= 0]

    def _count(self, variant: str, slots: np.ndarray, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) the persons whose index events are ``slots``."""
        quarter = self._columns["quarter"][slots]
        tables = self._tables[variant]
        for name, categories in self._categories.items():
            if name == _SERVICES and variant != "referred":
                continue
            table = tables.setdefault(name, np.zeros((self._quarters, len(categories)), dtype=np.int64))
            codes = self._columns["dimension:" + name][slots]
            if self._additive[name]:
                np.add.at(table, (quarter, codes), sign)
            else:
                rows, columns = np.nonzero(codes)
                np.add.at(table, (quarter[rows], columns), sign)
