"""Typed rows of the frames the report writers walk row by row.

pandas-stubs types each field of an ``itertuples()`` row as any pandas scalar. A writer that walks a
frame names the columns it reads, with what they hold, in a NamedTuple here, and reads the rows
through ``records``; the values are the ones ``itertuples()`` gives (Python scalars).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import starmap
from typing import Any, NamedTuple, TypeVar

import pandas as pd

RecordT = TypeVar("RecordT", bound=tuple[Any, ...])


def records(frame: pd.DataFrame, record: type[RecordT]) -> Iterator[RecordT]:
    """``frame``'s rows as ``record`` NamedTuples, each field read from the column of its name.

    The names come from the class's annotations: mypy types a NamedTuple's ``_fields`` on its
    instances only, and they are the same names in the same order."""
    return starmap(record, frame[list(record.__annotations__)].itertuples(index=False, name=None))


class PeriodRow(NamedTuple):
    """A period of a published counts table (``privacy.publish``); its bounds are dates or ISO text."""

    period: str
    period_kind: str
    period_start: dt.date | str
    period_end: dt.date | str


class ReferralRow(NamedTuple):
    """A receiving organisation of ``referrals.referral_table``."""

    organisation: str
    referrals: int
    consent_to_share: int


class PartnerRow(NamedTuple):
    """A row of ``partners.partner_counts`` (``PARTNER_COLUMNS``), without the period bounds."""

    organisation: str
    stakeholder_id: str
    stakeholder: str
    period: str
    new_persons: int
    identified: int
    referred: int


class LossRow(NamedTuple):
    """What suppression cost one release in one dimension (``privacy.information_loss``)."""

    audience: str
    dimension: str
    cells: int
    hidden_cells: int
    persons: int
    hidden_persons: int


class AsReportedTotal(NamedTuple):
    """An indicator's released quarter against today's event-basis total (``Reconciliation.totals``)."""

    indicator: str
    period: str
    released: int
    event_basis: int
    late_added: int
    reported_late: int
    removed: int
    edited: int


class RestatementRow(NamedTuple):
    """A published cell that changed since the audience's last release (``indicator.RESTATEMENT_COLUMNS``)."""

    indicator: str
    period: str
    dimension: str
    category: str
    old: str
    new: str
    reason: str
