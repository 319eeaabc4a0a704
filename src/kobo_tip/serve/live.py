"""The counts serve's render keeps from one render to the next, so that a push does not recount
the store.

The render child (``render_process``) keeps one ``LiveCounts``: the stored rows as counting reads
them (``answers.AnswerTable``), a ``tally.Tally`` of them, the mark of the last write it read
(``Store.answer_changes``) and each submission's referral (``referrals.referral_of``). Each render
reads only the rows written after the mark (new, edited, deleted, a new review status or key) and
takes them into all three; the report's counts table and referral table come from the tally and
the referrals, the rest of the count from the table kept in memory. A new tally is built from the
whole store on the first render, when the run date changes (what a row counts for depends on it)
and when the settings differ (the roster, the places and the counting options are in them; the
categories a row can fall in come from them too, so no stored answer can need a column the
tally lacks). With a merges file every render counts in full: a tally does not apply one.

What the rest of the internal report shows is still worked out from every row on each render,
from memory rather than from the store (``report.render.count_store``): the cases, the findings,
the persons of the as-reported section, the partner counts, readability and the form versions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from kobo_tip.answers import AnswerTable
from kobo_tip.cases import cases_from_table
from kobo_tip.config import Settings
from kobo_tip.referrals import Referral, referral_of
from kobo_tip.report.render import Counted, count_store, referral_rows
from kobo_tip.store import Store
from kobo_tip.store.schema import TABLE_TEXTS
from kobo_tip.tally import Tally


class LiveCounts:
    """``report.render.count_store`` for serve's renders: ``render_reports(..., count=live)``."""

    def __init__(self) -> None:
        self._tally: Tally | None = None
        self._table: AnswerTable | None = None
        self._rows: dict[str, int] = {}  # submission id -> its row in the table
        self._built_for: tuple[Settings, dt.date] | None = None
        self._mark = 0
        self._referrals: dict[str, Referral] = {}
        self.builds = 0  # tallies built from the whole store so far (the first, and each rebuild)

    def __call__(self, store: Store, settings: Settings, run_date: dt.date) -> Counted:
        if settings.indicator.merges_path:
            return count_store(store, settings, run_date)
        tally = self._current(store, settings, run_date)
        counted = count_store(store, settings, run_date, counts=tally.counts(), table=self._table)
        return dataclasses.replace(
            counted, referrals=referral_rows(self._referrals, settings, counted.result)
        )

    def _current(self, store: Store, settings: Settings, run_date: dt.date) -> Tally:
        """The tally with every write up to now taken in, built again when it cannot be kept."""
        if self._tally is not None and self._built_for == (settings, run_date):
            try:
                mark, changes = store.answer_changes(self._mark)
                self._tally.update(cases_from_table(changes, settings).frame)
                self._table = self._spliced(changes)
                self._read_referrals(store, self._mark)
            except BaseException:
                # Half taken in, the kept state would be neither the old nor the new: the next
                # render builds it again from the whole store.
                self._tally = None
                raise
            self._mark = mark
            return self._tally
        mark, table = store.answer_changes(None)
        self._tally = Tally(cases_from_table(table, settings).frame, settings, run_date)
        self._table, self._rows = table, {sid: row for row, sid in enumerate(table.submission_id)}
        self._built_for, self._mark = (settings, run_date), mark
        self._referrals = {}
        self._read_referrals(store, None)
        self.builds += 1
        return self._tally

    def _spliced(self, changes: AnswerTable) -> AnswerTable:
        """The kept table with ``changes`` in place: a changed row where it was, a new one at the
        end (a new row's id is above every stored one: the order stays the store's row order).
        The answer codes never change meaning, so ``changes.values``, read last, decodes all."""
        assert self._table is not None
        old = self._table
        texts = {name: getattr(old, name) for name in TABLE_TEXTS}
        deleted, codes = old.deleted, dict(old.codes)
        at = [self._rows.get(sid, -1) for sid in changes.submission_id]
        kept = np.asarray([row >= 0 for row in at], dtype=bool)
        rows = np.asarray([row for row in at if row >= 0], dtype=np.int64)
        for name, column in texts.items():
            for row, value in zip(at, getattr(changes, name), strict=True):
                if row >= 0:
                    column[row] = value
            column.extend(value for row, value in zip(at, getattr(changes, name), strict=True) if row < 0)
        deleted = np.concatenate([deleted, changes.deleted[~kept]])
        deleted[rows] = changes.deleted[kept]
        for field, column in codes.items():
            codes[field] = np.concatenate([column, changes.codes[field][~kept]])
            codes[field][rows] = changes.codes[field][kept]
        for sid in changes.submission_id:
            self._rows.setdefault(sid, len(self._rows))
        return AnswerTable(**texts, deleted=deleted, codes=codes, values=changes.values)

    def _read_referrals(self, store: Store, after: int | None) -> None:
        """Take in the referrals of the submissions written after the mark ``after`` (None: all).
        A submission written after the tally's mark too is read again next time: no harm."""
        for submission in store.submissions(changed_after=after):
            referral = referral_of(submission)
            if referral is None:
                self._referrals.pop(submission.submission_id, None)
            else:
                self._referrals[submission.submission_id] = referral
