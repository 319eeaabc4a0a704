"""The counts serve's render keeps from one render to the next, so that a push does not recount
the store.

The render child (``render_process``) keeps one ``LiveCounts``: the stored rows as counting reads
them (``answers.AnswerTable``), their cases (``cases.Cases``: the typed frame and the malformed and
not-linkable findings) and the first rule each row fails (``counting.first_failed_rule``), a
``tally.Tally`` of them, the mark of the last write it read (``Store.answer_changes``), each
submission's referral (``referrals.referral_of``) and the referrals counted by organisation
(``referrals.ReferralCounts``). Each render reads only the rows written after the mark (new,
edited, deleted, a new review status or key), types only them and takes them into all of these:
what a row's case, findings, rule and referral are depends on that row alone (and on the
settings and the run date). The report's counts table comes from the tally and its referral table
from the kept counts. Everything is built from the whole store on the first render, when the run
date changes (what a row counts for depends on it) and when the settings differ (the roster, the
places and the counting options are in them; the categories a row can fall in come from them too,
so no stored answer can need a column the tally lacks); also when a changed row's typed column has
categories the kept frame's lacks (the settings fix them: not seen in practice). With a merges
file every render counts in full: a tally does not apply one.

What is still worked out from every kept row on each render, from memory rather than from the
store (``counting.count_indicator`` given the tally's table and the kept rules): the findings'
order, the exclusion and possible-duplicate findings, the persons of the as-reported section, the
partner counts, readability and the form versions.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from kobo_tip import counting, readability
from kobo_tip.answers import AnswerTable
from kobo_tip.cases import Cases, cases_from_table, key_columns
from kobo_tip.config import Settings
from kobo_tip.labels import load_labels
from kobo_tip.referrals import Referral, ReferralCounts, referral_of
from kobo_tip.report.render import Counted, as_reported_basis, count_store, provenance_of
from kobo_tip.store import Store
from kobo_tip.store.schema import TABLE_TEXTS
from kobo_tip.tally import Tally


class LiveCounts:
    """``report.render.count_store`` for serve's renders: ``render_reports(..., count=live)``."""

    def __init__(self) -> None:
        self._tally: Tally | None = None
        self._table: AnswerTable | None = None
        self._cases: Cases | None = None
        self._rules = np.empty(0, dtype=str)  # each row's first failed rule ("" for none)
        self._rows: dict[str, int] = {}  # submission id -> its row in the table
        self._built_for: tuple[Settings, dt.date] | None = None
        self._mark = 0
        self._counted: dict[str, Referral] = {}  # the referrals ``_referral_counts`` holds
        self._referral_counts = ReferralCounts(dt.date.min)
        self.builds = 0  # the kept state built from the whole store so far (the first, and each rebuild)
        self.retyped = 0  # renders that typed every kept row again (``_spliced_cases``)

    def __call__(self, store: Store, settings: Settings, run_date: dt.date) -> Counted:
        if settings.indicator.merges_path:
            return count_store(store, settings, run_date)
        runs = store.runs(limit=50)  # before reading: a sync that starts meanwhile is the next report's
        tally = self._current(store, settings, run_date)
        assert self._cases is not None and self._table is not None
        result = counting.count_indicator(
            self._cases,
            settings,
            run_date,
            rules=self._rules,
            persons=as_reported_basis(settings),
            counts=tally.counts(),
        )
        labels = load_labels(settings.project.report_language)
        return Counted(
            result,
            provenance_of(self._table, runs, run_date),
            readability.assess(self._cases),
            referrals=self._referral_counts.table(settings.form.referral_directory, labels),
        )

    def _current(self, store: Store, settings: Settings, run_date: dt.date) -> Tally:
        """The tally with every write up to now taken in, built again when it cannot be kept."""
        if self._tally is not None and self._built_for == (settings, run_date):
            try:
                mark, changes = store.answer_changes(self._mark)
                changed = cases_from_table(changes, settings)
                self._tally.update(changed.frame)
                at = np.asarray([self._rows.get(sid, -1) for sid in changes.submission_id], dtype=np.int64)
                assert self._table is not None
                keys = self._table.person_key
                moved = any(
                    keys[row] != key
                    for row, key in zip(at.tolist(), changes.person_key, strict=True)
                    if row >= 0
                )
                self._table = self._spliced(changes, at)
                self._cases = self._spliced_cases(changed, at, settings, keys_moved=moved)
                self._rules = _spliced_array(
                    self._rules, counting.first_failed_rule(changed.frame, settings, run_date), at
                )
                self._read_referrals(store, self._mark)
            except BaseException:
                # Half taken in, the kept state would be neither the old nor the new: the next
                # render builds it again from the whole store.
                self._tally = None
                raise
            self._mark = mark
            return self._tally
        mark, table = store.answer_changes(None)
        self._cases = cases_from_table(table, settings)
        self._tally = Tally(self._cases.frame, settings, run_date)
        self._rules = counting.first_failed_rule(self._cases.frame, settings, run_date)
        self._table, self._rows = table, {sid: row for row, sid in enumerate(table.submission_id)}
        self._built_for, self._mark = (settings, run_date), mark
        self._counted = {}
        self._referral_counts = ReferralCounts(run_date)
        self._read_referrals(store, None)
        self.builds += 1
        return self._tally

    def _spliced(self, changes: AnswerTable, at: np.ndarray) -> AnswerTable:
        """The kept table with ``changes`` in place: a changed row where it was (``at``: its row,
        -1 for a new one), a new one at the end (a new row's id is above every stored one: the
        order stays the store's row order). The answer codes never change meaning, so
        ``changes.values``, read last, decodes all."""
        assert self._table is not None
        old = self._table
        texts = {name: getattr(old, name) for name in TABLE_TEXTS}
        for name, column in texts.items():
            for row, value in zip(at.tolist(), getattr(changes, name), strict=True):
                if row >= 0:
                    column[row] = value
            column.extend(value for row, value in zip(at, getattr(changes, name), strict=True) if row < 0)
        codes = {
            field: _spliced_array(column, changes.codes[field], at) for field, column in old.codes.items()
        }
        for sid in changes.submission_id:
            self._rows.setdefault(sid, len(self._rows))
        return AnswerTable(
            **texts,
            deleted=_spliced_array(old.deleted, changes.deleted, at),
            codes=codes,
            values=changes.values,
        )

    def _spliced_cases(
        self, changed: Cases, at: np.ndarray, settings: Settings, *, keys_moved: bool
    ) -> Cases:
        """The kept cases with ``changed`` (the changed rows' cases) in place, as ``_spliced``
        puts the rows: what ``cases_from_table`` of the kept table gives, frame and findings, but
        for the findings' order (``count_indicator`` sorts them). ``keys_moved``: a stored row
        changed its person key, so the keys are numbered again in the order they first occur (as
        ``cases_from_table`` numbers them); else a new key is numbered after the kept ones."""
        assert self._cases is not None and self._table is not None
        if not len(changed.frame):
            return self._cases  # nothing written since (an empty frame's times have another unit)
        old = self._cases.frame
        # Numbering the keys again costs 0.4 s at 1,000,000 rows; a push of new rows needs not.
        keys = (
            key_columns(self._table)
            if keys_moved
            else {
                "person_key": _new_keys(old, changed.frame, at),
                "key_basis": _basis_column(old["key_basis"], changed.frame["key_basis"], at),
            }
        )
        columns: dict[str, pd.Series | pd.Categorical] = {}
        for name in old.columns:
            column: pd.Series | pd.Categorical | None = keys.get(name)
            if column is None:
                column = _spliced_column(old[name], changed.frame[name], at)
            if column is None:  # a category the kept column lacks: type the kept table again
                self.retyped += 1
                return cases_from_table(self._table, settings)
            columns[name] = column
        findings = self._cases.findings
        findings = findings[~findings["submission_id"].isin(changed.frame["submission_id"])]
        return Cases(pd.DataFrame(columns), pd.concat([findings, changed.findings], ignore_index=True))

    def _read_referrals(self, store: Store, after: int | None) -> None:
        """Take in the referrals of the submissions written after the mark ``after`` (None: all),
        and count them by organisation unless their rows are excluded. A submission written after
        the table's mark too is read again next time, with its row: no harm."""
        for submission in store.submissions(changed_after=after):
            sid = submission.submission_id
            counted = self._counted.pop(sid, None)
            if counted is not None:
                self._referral_counts.add(counted, excluded=False, sign=-1)
            referral = referral_of(submission)
            row = self._rows.get(sid)
            if referral is not None and row is not None and self._rules[row] == "":
                self._referral_counts.add(referral, excluded=False)
                self._counted[sid] = referral


def _spliced_array(kept: np.ndarray, changed: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``kept`` with ``changed``'s values at the rows ``at`` (>= 0) and the rest appended."""
    new = at < 0
    spliced = np.concatenate([kept, changed[new]])
    spliced[at[~new]] = changed[~new]
    return spliced


def _new_keys(kept: pd.DataFrame, changed: pd.DataFrame, at: np.ndarray) -> pd.Series:
    """``person_key`` of the spliced frame when no stored row changed its key: the kept keys in
    their order, then the keys new rows bring first, in the order they occur."""
    categories = kept["person_key"].cat.categories
    names = changed["person_key"].astype(object)
    unseen = pd.unique(names[(at < 0) & ~names.isin(categories).to_numpy() & names.notna().to_numpy()])
    categories = categories.append(pd.Index(unseen, dtype=object))
    codes = categories.get_indexer(pd.Index(names))
    spliced = _spliced_array(kept["person_key"].cat.codes.to_numpy(), codes.astype(np.int64), at)
    return pd.Series(pd.Categorical.from_codes(spliced, categories=categories))


def _basis_column(kept: pd.Series, changed: pd.Series, at: np.ndarray) -> pd.Series:
    """``key_basis`` of the spliced frame: as ``pd.Categorical`` of every row's value would type it
    (the values present, sorted), from the codes."""
    categories = pd.Index(sorted({*kept.cat.categories, *changed.cat.categories}), dtype=object)
    codes = [
        np.append(categories.get_indexer(column.cat.categories), -1)[column.cat.codes.to_numpy()]
        for column in (kept, changed)
    ]  # -1 picks the appended -1: a missing value stays missing
    spliced = pd.Categorical.from_codes(_spliced_array(codes[0], codes[1], at), categories=categories)
    return pd.Series(spliced.remove_unused_categories())


def _spliced_column(kept: pd.Series, changed: pd.Series, at: np.ndarray) -> pd.Series | None:
    """``_spliced_array`` of a case frame's column; None when ``changed`` has categories ``kept``
    has not (the column must be typed again)."""
    if isinstance(kept.dtype, pd.CategoricalDtype):
        if not (kept.cat.categories.equals(changed.cat.categories) and kept.dtype == changed.dtype):
            return None
        codes = _spliced_array(kept.cat.codes.to_numpy(), changed.cat.codes.to_numpy(), at)
        return pd.Series(pd.Categorical.from_codes(codes, dtype=kept.dtype))
    if kept.dtype != changed.dtype and changed.isna().all():
        changed = changed.astype(kept.dtype)  # times none of which parses come in another unit
    if kept.dtype != changed.dtype:
        return None
    new = at < 0
    spliced = pd.concat([kept, changed[new]], ignore_index=True)
    spliced.iloc[at[~new]] = changed[~new].array
    return spliced
