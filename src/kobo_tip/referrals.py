"""Referrals by receiving organisation, and how many had the person's consent to share: a table of
the internal report only (contract section 2: the referral group's answers never leave internal).

The store keeps these answers in each submission's JSON, not column by column (counting does not
read them), so ``referral_table`` reads the stored submissions once: one JSON decode a row on every
``kobo-tip report``. ``serve``'s render keeps each submission's ``Referral`` between renders and
decodes only the submissions that changed, keeping the counts by organisation (``ReferralCounts``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Set
from typing import NamedTuple

import pandas as pd

from kobo_tip import indicator as ind
from kobo_tip.answers import find_values
from kobo_tip.config import ReferralOrg
from kobo_tip.labels import Labels
from kobo_tip.store.records import StoredSubmission

REFERRAL_COLUMNS = ("referral_org", "organisation", "referrals", "consent_to_share")
_READ = (ind.ACTION, ind.EVENT_DATE, ind.REFERRAL_ORG, ind.CONSENT_TO_SHARE)
_REFERRED = ind.CHOICES["action"][1]
_YES = ind.CHOICES["yes_no"][0]
_NOT_RECORDED = ""  # no organisation answered: a form without a directory, or left blank


class Referral(NamedTuple):
    """What the table reads of one stored referral: its event date (as answered), the receiving
    organisation's id (``_NOT_RECORDED`` for none) and whether the person consented to share."""

    event_date: str
    organisation: str
    shared: bool


def referral_of(submission: StoredSubmission) -> Referral | None:
    """The referral a stored submission records; None when it is deleted or records none."""
    if submission.deleted:
        return None
    action, event_date, org, share = find_values(submission.data, _READ)
    if not isinstance(action, str) or _REFERRED not in action.split() or not isinstance(event_date, str):
        return None
    return Referral(event_date[:10], org if isinstance(org, str) else _NOT_RECORDED, share == _YES)


def referral_table(
    submissions: Iterable[StoredSubmission],
    directory: Iterable[ReferralOrg],
    excluded: Set[str],
    through: dt.date,
    labels: Labels,
) -> pd.DataFrame:
    """One row per receiving organisation: the referral events on or before ``through`` of the
    submissions that counting did not exclude (``excluded``: their ids), and how many of them had
    consent to share. Every organisation of the directory is listed, in its order, then those not
    in it, then the referrals whose organisation was not recorded."""
    found = ((submission.submission_id, referral_of(submission)) for submission in submissions)
    return table_of_referrals(
        {sid: referral for sid, referral in found if referral is not None},
        directory,
        excluded,
        through,
        labels,
    )


def table_of_referrals(
    referrals: Mapping[str, Referral],
    directory: Iterable[ReferralOrg],
    excluded: Set[str],
    through: dt.date,
    labels: Labels,
) -> pd.DataFrame:
    """``referral_table`` of the referrals already read (``referral_of``), by submission id."""
    counts = ReferralCounts(through)
    for sid, referral in referrals.items():
        counts.add(referral, excluded=sid in excluded)
    return counts.table(directory, labels)


class ReferralCounts:
    """The referrals counted by receiving organisation, and how many of them shared, through the
    day ``through``: ``table_of_referrals`` counts them all at once; serve's render keeps one
    between renders and adds or takes away the referrals of the submissions that changed."""

    def __init__(self, through: dt.date) -> None:
        self.last_day = through.isoformat()
        self.counted: Counter[str] = Counter()
        self.shared: Counter[str] = Counter()

    def add(self, referral: Referral, *, excluded: bool, sign: int = 1) -> None:
        """Count ``referral`` (``sign`` -1: take it away again), unless counting excluded its
        submission or its event is after ``through``."""
        if referral.event_date > self.last_day or excluded:
            return
        self.counted[referral.organisation] += sign
        self.shared[referral.organisation] += sign * referral.shared

    def table(self, directory: Iterable[ReferralOrg], labels: Labels) -> pd.DataFrame:
        """One row per receiving organisation (``referral_table``)."""
        counted = +self.counted  # an organisation whose referrals were all taken away is not listed
        names = {org.id: org.name for org in directory}
        order = [*names, *sorted(set(counted) - set(names) - {_NOT_RECORDED})]
        if counted[_NOT_RECORDED]:
            order.append(_NOT_RECORDED)
        rows = [(key, _name(key, names, labels), counted[key], self.shared[key]) for key in order]
        return pd.DataFrame(rows, columns=list(REFERRAL_COLUMNS))


def _name(key: str, names: dict[str, str], labels: Labels) -> str:
    if key == _NOT_RECORDED:
        return labels.report_text("referrals.not_recorded")
    if key == ind.NOT_LISTED:
        return labels.choice("referral_org", key)
    return names.get(key, key)  # an organisation since removed from the directory: its id
