"""How much of the store counting cannot read, and the hold it puts on outside reports.

A submission is unreadable for the counting when it has a ``malformed`` finding (an unknown choice,
a date that does not parse, a required group left empty...) or cannot be linked to its person for
another reason than a declined consent (name codes or birth year missing or unreadable): its person
is then counted wrongly, or not at all. An export read wrongly makes many such rows at once (issue
25: ``Yes`` for ``yes``). When more than ``[report] max_unreadable_percent`` of the submissions
held (deleted ones aside) are unreadable, no donor or public report is written until an officer
has looked: ``kobo-tip report --accept-unreadable`` releases anyway, and records the number of
unreadable rows it accepted; the hold comes back when more rows than that are unreadable.

A partner's report (``kobo-tip report --partner ORG``) is held the same way, on the share of that
partner's own submissions (the records its report counts), with its own acceptance.

Both facts live in the store's ``meta`` table (``UNREADABLE``, ``UNREADABLE_ACCEPTED``, and
``UNREADABLE_ACCEPTED`` followed by ``:`` and the organisation for a partner's), so ``kobo-tip status``
shows them without reading the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kobo_tip.config import Settings
from kobo_tip.errors import KoboTipError, StoreError
from kobo_tip.person_key import NO_CONSENT
from kobo_tip.store import Store, utc_stamp

if TYPE_CHECKING:  # status reads the record without loading the counting's libraries
    from kobo_tip.cases import Cases

log = logging.getLogger("kobo_tip")

UNREADABLE = "unreadable_for_counting"  # meta: the last check (JSON)
UNREADABLE_ACCEPTED = "unreadable_accepted"  # meta: what an officer released anyway (JSON)
ACCEPT_FLAG = "--accept-unreadable"
_REASONS_SHOWN = 3


class UnreadableHeld(KoboTipError):
    """Outside reports held back: too much of the store cannot be read for the counting.
    ``written``: the files written all the same (the internal report)."""

    def __init__(self, message: str, written: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.written = tuple(written)


@dataclass(frozen=True)
class Readability:
    """How many of the submissions held (deleted ones aside) counting cannot read, and why."""

    rows: int
    unreadable: int
    reasons: tuple[tuple[str, int], ...] = ()  # (field, rows), the commonest first

    @property
    def percent(self) -> float:
        return 100.0 * self.unreadable / self.rows if self.rows else 0.0

    def too_high(self, settings: Settings) -> bool:
        return self.unreadable > 0 and self.percent > settings.report.max_unreadable_percent

    def share(self) -> str:
        """``12 of 300 submissions (4.0%)``, with the fields most often unreadable when there are any."""
        why = ", ".join(f"{field}: {rows}" for field, rows in self.reasons)
        share = f"{self.unreadable} of {self.rows} submissions ({self.percent:.1f}%)"
        return share + (f" (most often {why})" if why else "")

    def text(self) -> str:
        """``12 of 300 submissions (4.0%) cannot be read for counting``, with the fields."""
        share, _, why = self.share().partition(" (most often ")
        return f"{share} cannot be read for counting" + (f" (most often {why}" if why else "")

    def to_json(self) -> str:
        return json.dumps(
            {"rows": self.rows, "unreadable": self.unreadable, "reasons": self.reasons, "at": utc_stamp()}
        )

    @classmethod
    def from_json(cls, text: str) -> Readability | None:
        try:
            value = json.loads(text)
            reasons = tuple((str(field), int(rows)) for field, rows in value.get("reasons", ()))
            return cls(int(value["rows"]), int(value["unreadable"]), reasons)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def assess(cases: Cases) -> Readability:
    """The readability of the submissions of ``cases`` that are not deleted (the fields most often
    unreadable first, fields as often in name order)."""
    frame, findings = cases.frame, cases.findings
    deleted = frame["deleted"].to_numpy(dtype=bool)
    rule = findings["rule"]
    # Deleted submissions are few: a finding is kept unless its submission is one of them (at
    # 100,000 rows 0.0035 s CPU, where sets of every id took 0.031 s).
    unreadable = findings.loc[
        ((rule == "malformed") | ((rule == "not_linkable") & (findings["detail"] != NO_CONSENT)))
        & ~findings["submission_id"].isin(frame["submission_id"][deleted]),
        ["field", "submission_id"],
    ]
    by_field = unreadable.drop_duplicates()["field"].value_counts()
    reasons = sorted(zip(by_field.index, by_field.tolist(), strict=True), key=lambda fr: (-fr[1], fr[0]))
    return Readability(
        rows=int((~deleted).sum()),
        unreadable=int(unreadable["submission_id"].nunique()),
        reasons=tuple((str(field), int(rows)) for field, rows in reasons[:_REASONS_SHOWN]),
    )


def recorded(store: Store) -> Readability | None:
    """The last check saved in the store, if any."""
    text = store.meta_value(UNREADABLE)
    return Readability.from_json(text) if text else None


def accepted(store: Store, partner: str = "") -> int | None:
    """How many unreadable rows an officer last released anyway, if ever (``partner``: of that
    organisation's own submissions, for its report)."""
    text = store.meta_value(_accepted_key(partner))
    try:
        return int(json.loads(text)["unreadable"]) if text else None
    except (ValueError, TypeError, KeyError):
        return None


def record(store: Store, readability: Readability) -> None:
    """Save the check for ``kobo-tip status``. A role that may not write ``meta`` (the reporting
    role of a shared PostgreSQL store) leaves the sync's record in place."""
    try:
        store.set_meta_value(UNREADABLE, readability.to_json())
    except StoreError:
        log.debug("the readability of the store could not be recorded (no write access to meta)")


def _accepted_key(partner: str) -> str:
    return f"{UNREADABLE_ACCEPTED}:{partner}" if partner else UNREADABLE_ACCEPTED


def hold_reason(
    store: Store, settings: Settings, readability: Readability, *, accept: bool, partner: str = ""
) -> str | None:
    """Why the outside reports are held back (one sentence), or None when they may be written.

    ``accept`` (``--accept-unreadable``): an officer has looked; the number accepted is recorded,
    and the hold stays off while no more rows than that are unreadable. ``partner``: the report of
    that organisation (as the roster names it), ``readability`` its own submissions'; what is
    accepted for it is recorded apart, and the store's own check is left as it is."""
    if not partner:
        record(store, readability)
    if not readability.too_high(settings):
        return None
    if accept:
        try:
            store.set_meta_value(
                _accepted_key(partner),
                json.dumps(
                    {"unreadable": readability.unreadable, "rows": readability.rows, "at": utc_stamp()}
                ),
            )
        except StoreError:
            log.warning(
                "%s accepted for this release only: this role cannot record it in the store.", ACCEPT_FLAG
            )
        return None
    earlier = accepted(store, partner)
    if earlier is not None and readability.unreadable <= earlier:
        return None
    whose, what = (f"{partner}: ", f"report for {partner}") if partner else ("", "donor or public report")
    again = f'--partner "{partner}" {ACCEPT_FLAG}' if partner else ACCEPT_FLAG
    allowed = settings.report.max_unreadable_percent
    return (
        f"{whose}{readability.text()}, more than the {allowed:g}% that [report] "
        f"max_unreadable_percent allows, so no {what} was written: look at the internal "
        f"report's data-quality list (an export with labels? export 'XML values and headers'), then sync "
        f"again, or release anyway with 'kobo-tip report {again}'."
    )


def check_store(store: Store, settings: Settings) -> Readability:
    """Read the whole store, assess it and record the result (a sync without a report)."""
    from kobo_tip.cases import cases_from_table  # pandas only when the store is read whole  # noqa: PLC0415

    readability = assess(cases_from_table(store.answer_table(), settings))
    record(store, readability)
    return readability
