"""The internal table of referrals by receiving organisation, read from the stored answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kobo_tip import indicator as ind
from kobo_tip.config import Language, ReferralOrg
from kobo_tip.labels import load_labels
from kobo_tip.referrals import REFERRAL_COLUMNS, referral_table
from kobo_tip.store.records import StoredSubmission

DIRECTORY = (
    ReferralOrg("shelter", "Safe House", ("shelter",)),
    ReferralOrg("clinic", "Border Clinic", ("medical",)),
    ReferralOrg("legal", "Legal Aid", ("legal_aid",)),
)
ENGLISH = load_labels(Language(label="English (en)", name="English", code="en"))
FRENCH = load_labels(Language(label="French (fr)", name="French", code="fr"))
THROUGH = dt.date(2026, 6, 30)


def stored(sid: str, data: dict[str, Any], *, deleted: bool = False) -> StoredSubmission:
    return StoredSubmission(sid, "v1", "unreviewed", "2026-07-01", "1", "k", "uic", "", deleted, data)


def kobo(action: str, date: str, org: str | None = None, share: str | None = None) -> dict[str, Any]:
    """A Kobo data-API row: ``group/field`` keys, every answer a string."""
    data = {"event/action": action, "event/event_date": date}
    if org is not None:
        data["referral/referral_org"] = org
    if share is not None:
        data["referral/consent_to_share"] = share
    return data


def central(action: str, date: str, org: str, share: str) -> dict[str, Any]:
    """An ODK Central OData row: groups as nested objects."""
    return {
        "event": {"action": action, "event_date": date},
        "referral": {"referral_org": org, "consent_to_share": share},
    }


def table(subs: list[StoredSubmission], excluded: frozenset[str] = frozenset()) -> list[tuple[Any, ...]]:
    frame = referral_table(subs, DIRECTORY, excluded, THROUGH, ENGLISH)
    assert tuple(frame.columns) == REFERRAL_COLUMNS
    return [tuple(row) for row in frame.itertuples(index=False)]


def test_referrals_are_counted_by_organisation_with_consent_to_share() -> None:
    subs = [
        stored("1", kobo("referred", "2026-03-01", "shelter", "yes")),
        stored("2", kobo("identified referred", "2026-04-01", "shelter", "no")),
        stored("3", central("referred", "2026-05-01", "shelter", "yes")),
        stored("4", central("identified referred", "2026-05-02", "clinic", "yes")),
        stored("5", kobo("referred", "2026-05-03", ind.NOT_LISTED, "yes")),
        stored("6", kobo("referred", "2026-05-04", "closed_ngo", "no")),  # since removed from the directory
        stored("7", kobo("referred", "2026-05-05")),  # an older form: no organisation asked
    ]
    assert table(subs) == [
        ("shelter", "Safe House", 3, 2),
        ("clinic", "Border Clinic", 1, 1),
        ("legal", "Legal Aid", 0, 0),  # in the directory, never referred to: listed with zeros
        ("closed_ngo", "closed_ngo", 1, 0),
        ("not_listed", "Not in the referral directory", 1, 1),
        ("", "Not recorded", 1, 0),
    ]


def test_only_counted_referral_events_through_the_report_date() -> None:
    subs = [
        stored("1", kobo("referred", "2026-03-01", "clinic", "yes")),
        stored("2", kobo("identified", "2026-03-01", "clinic", "yes")),  # not a referral
        stored("3", kobo("referred", "2026-07-01", "clinic", "yes")),  # after the report date
        stored("4", kobo("referred", "2026-03-01", "clinic", "yes"), deleted=True),
        stored("5", kobo("referred", "2026-03-01", "clinic", "yes")),  # excluded by counting
        stored("6", {"event/action": ["referred"], "event/event_date": 20260301}),  # malformed answers
    ]
    assert table(subs, frozenset({"5"})) == [
        ("shelter", "Safe House", 0, 0),
        ("clinic", "Border Clinic", 1, 1),
        ("legal", "Legal Aid", 0, 0),
    ]


def test_the_texts_follow_the_report_language() -> None:
    subs = [
        stored("1", kobo("referred", "2026-03-01", ind.NOT_LISTED, "yes")),
        stored("2", kobo("referred", "2026-03-01")),
    ]
    frame = referral_table(subs, (), frozenset(), THROUGH, FRENCH)
    assert list(frame["organisation"]) == [
        FRENCH.choice("referral_org", ind.NOT_LISTED),
        FRENCH.report_text("referrals.not_recorded"),
    ]
    assert FRENCH.report_text("referrals.not_recorded") != ENGLISH.report_text("referrals.not_recorded")
