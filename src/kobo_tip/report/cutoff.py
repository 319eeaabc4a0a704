"""Counts through an earlier day, derived from a count through a later one.

Outside ``internal`` only ended quarters are published (contract section 6). A person counts in
the quarter of their first eligible event, so a quarter that ended by ``through`` holds the
same value whether or not later events are counted; the fiscal years and LOP are then the
sums of the kept quarters, and location and country of origin keep the codes seen among the
persons counted by then (contract section 7). Deriving this from the internal count saves a second
pass of the counting engine over every case (tests check it equals
``count_indicator(..., through=...)``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kobo_tip.privacy.relations import FISCAL_YEAR, LOP, QUARTER, parent_periods
from kobo_tip.privacy.releases import summed


def counts_through(counts: pd.DataFrame, through: dt.date) -> pd.DataFrame:
    """The counts table as ``count_indicator(..., through=through)`` gives it, ``through`` being
    a quarter's last day on or before the last day ``counts`` covers."""
    kind = counts["period_kind"]
    ended = (kind == QUARTER) & (counts["period_end"].astype(str) <= through.isoformat())
    parent = parent_periods(counts)
    years = {parent[label] for label in counts.loc[ended, "period"].unique()}
    keep = ended | ((kind == FISCAL_YEAR) & counts["period"].isin(years)) | (kind == LOP)
    layout = counts[keep]
    return summed(layout[layout["period_kind"] == QUARTER], layout)
