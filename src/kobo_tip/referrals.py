"""Referrals by receiving organisation, and how many had the person's consent to share: a table of
the internal report only (contract section 2: the referral group's answers never leave internal).

The store keeps these answers in each submission's JSON, not column by column (counting does not
read them), so the table reads the stored submissions once: one JSON decode a row on every render
of the internal report. That cost grows with the store (and lands on `serve`'s renders); keeping
these two answers column by column, as counting's are, is the way to drop it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Set

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
    last_day = through.isoformat()
    referrals: Counter[str] = Counter()
    shared: Counter[str] = Counter()
    for submission in submissions:
        if submission.deleted or submission.submission_id in excluded:
            continue
        action, event_date, org, share = find_values(submission.data, _READ)
        if not isinstance(action, str) or _REFERRED not in action.split():
            continue
        if not isinstance(event_date, str) or event_date[:10] > last_day:
            continue
        key = org if isinstance(org, str) else _NOT_RECORDED
        referrals[key] += 1
        shared[key] += share == _YES
    names = {org.id: org.name for org in directory}
    order = [*names, *sorted(set(referrals) - set(names) - {_NOT_RECORDED})]
    if referrals[_NOT_RECORDED]:
        order.append(_NOT_RECORDED)
    rows = [(key, _name(key, names, labels), referrals[key], shared[key]) for key in order]
    return pd.DataFrame(rows, columns=list(REFERRAL_COLUMNS))


def _name(key: str, names: dict[str, str], labels: Labels) -> str:
    if key == _NOT_RECORDED:
        return labels.report_text("referrals.not_recorded")
    if key == ind.NOT_LISTED:
        return labels.choice("referral_org", key)
    return names.get(key, key)  # an organisation since removed from the directory: its id
