"""Audiences and small-cell protection (contract section 6).

``internal`` sees every count. An outside audience (``donor``, ``public``) sees a release: counts
of 1..k-1 hidden as ``<k``, and more cells hidden (``<k`` for a zero, ``x`` for k or more) until
an intruder who holds that release, every earlier one of the audience and those of every
audience with a larger k, and who solves all the relations among them as a linear program, is
left with at least ceil(k/2) possible values for every small count (``suppression``, ``audit``).
Revisions of quarters already released obey the release rule (``releases``).
"""

from __future__ import annotations

import pandas as pd

from kobo_tip.privacy.relations import (
    CROSS_TAB,
    CROSS_TAB_SEPARATOR,
    FISCAL_YEAR,
    LOP,
    QUARTER,
    TOTAL_CATEGORY,
    TOTAL_DIMENSION,
    parent_periods,
)
from kobo_tip.privacy.releases import (
    COLUMNS,
    HeldRevision,
    Outcome,
    PublishedSum,
    Release,
    information_loss,
    protect,
    prove_with_sums,
    summed,
)
from kobo_tip.privacy.suppression import DisclosureError, need_of
from kobo_tip.privacy.system import HIDDEN, OMITTED

__all__ = [
    "COLUMNS",
    "CROSS_TAB",
    "CROSS_TAB_SEPARATOR",
    "FISCAL_YEAR",
    "HIDDEN",
    "LOP",
    "OMITTED",
    "QUARTER",
    "TOTAL_CATEGORY",
    "TOTAL_DIMENSION",
    "DisclosureError",
    "HeldRevision",
    "Outcome",
    "PublishedSum",
    "Release",
    "information_loss",
    "internal_view",
    "need_of",
    "parent_periods",
    "protect",
    "prove_with_sums",
    "summed",
]


def internal_view(counts: pd.DataFrame) -> pd.DataFrame:
    """The counts as ``internal`` sees them: every value, as text."""
    return counts.assign(value=counts["value"].astype(int).astype(str))
