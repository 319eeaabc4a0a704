"""Counts through an earlier day, derived from a count through a later one.

Outside ``internal`` only ended quarters are published (spec section 6). A person counts in
the quarter of their first eligible event, so a quarter that ended by ``through`` holds the
same value whether or not later events are counted; the fiscal years and LOP are then the
sums of the kept quarters, and location and country of origin keep the codes seen among the
persons counted by then (spec section 7). Deriving this from the internal count saves a second
pass of the counting engine over every case (tests check it equals
``count_indicator(..., through=...)``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kobo_tip import indicator
from kobo_tip.privacy import FISCAL_YEAR, LOP, QUARTER, parent_periods

SEEN_DIMENSIONS = ("location", "country_of_origin")  # categories: the codes seen among counted persons
ALWAYS_LISTED = (indicator.UNKNOWN, indicator.NOT_RECORDED)
CELL = ["indicator", "period", "dimension", "category"]


def counts_through(counts: pd.DataFrame, through: dt.date) -> pd.DataFrame:
    """The counts table as ``count_indicator(..., through=through)`` gives it, ``through`` being
    a quarter's last day on or before the last day ``counts`` covers."""
    kind = counts["period_kind"]
    ended = (kind == QUARTER) & (counts["period_end"].astype(str) <= through.isoformat())
    parent = parent_periods(counts)
    years = {parent[label] for label in counts.loc[ended, "period"].unique()}
    keep = ended | ((kind == FISCAL_YEAR) & counts["period"].isin(years)) | (kind == LOP)
    table = counts[keep].copy()
    quarters = table[table["period_kind"] == QUARTER]
    by_year = quarters.assign(period=quarters["period"].map(parent)).groupby(CELL)["value"].sum()
    over_all = quarters.groupby(["indicator", "dimension", "category"])["value"].sum()
    for period_kind, sums, key in ((FISCAL_YEAR, by_year, CELL), (LOP, over_all, CELL[:1] + CELL[2:])):
        rows = table["period_kind"] == period_kind
        wanted = pd.MultiIndex.from_frame(table.loc[rows, key])
        table.loc[rows, "value"] = sums.reindex(wanted, fill_value=0).to_numpy()
    lop = table[table["period_kind"] == LOP]
    seen = lop[lop["value"] > 0].groupby(["dimension", "category"]).size().index
    unseen = (
        table["dimension"].isin(SEEN_DIMENSIONS)
        & ~table["category"].isin(ALWAYS_LISTED)
        & ~pd.MultiIndex.from_frame(table[["dimension", "category"]]).isin(seen)
    )
    return table[~unseen].reset_index(drop=True)
