"""What one audience's report shows: the published counts and everything said beside them.

The writers (``document``, ``workbook``, ``dhis2``, ``files``) read an ``Edition``; ``render`` makes
one per audience and calls them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from kobo_tip import privacy
from kobo_tip.config import AS_REPORTED
from kobo_tip.report.as_reported import Reconciliation
from kobo_tip.report.iptt import IpttRow
from kobo_tip.report.tables import KeyPeriods, PublishedCounts
from kobo_tip.report.texts import ReportWords


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from, for the report's footer."""

    data_as_of: str | None  # end of the last successful sync (UTC), None if never synced
    last_run: int  # id of the newest sync run in the store (0: none)
    source: str
    form_versions: tuple[str, ...]
    tool_version: str
    run_date: dt.date


@dataclass(frozen=True)
class Performance:
    """Targets against actuals (``iptt``) and the summary paragraph of the report."""

    rows: list[IpttRow]
    summary: str
    margin: int  # percent off target that is flagged


@dataclass(frozen=True)
class Edition:
    """Everything one audience's report shows."""

    audience: str
    k: int | None  # None for internal
    project_name: str
    counts: PublishedCounts
    key_periods: KeyPeriods
    findings: pd.DataFrame | None  # internal only
    restatements: pd.DataFrame
    provenance: Provenance
    words: ReportWords
    disclosure: pd.DataFrame | None = None  # internal only: information loss of each outside release
    held: list[privacy.HeldRevision] = field(default_factory=list)  # internal only
    # Breakdowns published by fiscal year and LOP only ("quarters") or not at all ("all").
    left_out: dict[tuple[str, str], str] = field(default_factory=dict)
    stale_after_days: int = 7
    performance: Performance = field(default_factory=lambda: Performance([], "", 0))
    basis: str = AS_REPORTED  # how outside audiences count ([report] outside_basis)
    as_reported: Reconciliation | None = None  # internal only, on the as-reported basis
    referrals: pd.DataFrame | None = None  # internal only: referrals by receiving organisation
    partners: pd.DataFrame | None = None  # internal only: counts by partner organisation (kobo_tip.partners)

    @property
    def published(self) -> pd.DataFrame:
        return self.counts.frame
