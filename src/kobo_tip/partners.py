"""Partner organisations (contract section 7): counts by organisation and by stakeholder.

The roster's optional ``organisation`` column groups stakeholders into the partner organisations
the project works through. Inside the M&E team, each organisation's figures count a person once
per organisation, in the quarter of that organisation's first eligible event for them, and give
that person to the stakeholder of that event, so an organisation's stakeholders add up to it. A
person reached by two organisations counts in both: the organisations do not add up to the
project. A partner's own report counts that partner's events alone (``kobo_tip.report.partner``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kobo_tip import indicator as ind
from kobo_tip.config import Stakeholder
from kobo_tip.errors import UsageError
from kobo_tip.periods import QUARTER, Period

# The stakeholder_id of an organisation's own row, the sum of its stakeholders' rows.
ALL_STAKEHOLDERS = "all"
# Each variant's column: the persons it counts, once per organisation.
VARIANT_COLUMNS = {
    "identified_or_referred": "new_persons",
    "identified": "identified",
    "referred": "referred",
}
PARTNER_COLUMNS = (
    "organisation",
    "stakeholder_id",
    "stakeholder",
    "period",
    "period_start",
    "period_end",
    *VARIANT_COLUMNS.values(),
)


def organisations(roster: Sequence[Stakeholder]) -> tuple[str, ...]:
    """The partner organisations the roster names, in the order it first names them."""
    return tuple(dict.fromkeys(member.organisation for member in roster if member.organisation))


def folder_name(organisation: str) -> str:
    """The name of a partner's report folder: ``partner-`` and the organisation's name in lower-case
    letters and digits joined by ``-`` (``Mekong Migrant Aid`` -> ``partner-mekong-migrant-aid``)."""
    slug = "-".join(re.findall(r"[^\W_]+", organisation.casefold()))
    return f"partner-{slug or 'organisation'}"


def find_organisation(roster: Sequence[Stakeholder], wanted: str) -> str:
    """The roster's organisation that ``wanted`` names: its name (any case) or its folder name."""
    names = organisations(roster)
    for name in names:
        if wanted.strip().casefold() in (name.casefold(), folder_name(name), folder_name(name)[8:]):
            return name
    if not names:
        raise UsageError(
            "The roster has no organisation column, so there is no partner report: add the column "
            "'organisation' to the roster, naming each stakeholder's partner organisation."
        )
    raise UsageError(
        f"No stakeholder of the roster belongs to the organisation '{wanted}'; choose one of: "
        + "; ".join(names)
        + "."
    )


def partner_counts(
    frame: pd.DataFrame,
    *,
    order: np.ndarray,
    persons: np.ndarray,
    counted: np.ndarray,
    action: Mapping[str, np.ndarray],
    periods: Sequence[Period],
    roster: Sequence[Stakeholder],
) -> pd.DataFrame:
    """The table of ``PARTNER_COLUMNS``: per organisation (stakeholders without one under ``""``,
    last) its own row, then one per stakeholder, each for every period.

    ``order`` (rows by person, then event order), ``persons`` (each row's person), ``counted`` (rows
    eligible and inside the count) and ``action`` (rows per action) are the counting engine's
    (``kobo_tip.counting``); a person counts once per organisation and variant, at the organisation's
    first event of that variant."""
    # Imported here: the counting engine calls this function, and these are its own helpers.
    from kobo_tip.counting import (  # noqa: PLC0415
        index_events,
        period_matrix,
        quarter_numbers,
    )

    names = [*organisations(roster), ""]
    members = [member for name in names for member in roster if member.organisation == name]
    position = {member.id: place for place, member in enumerate(members)}
    organisation_of = np.asarray([names.index(member.organisation) for member in members], dtype=np.int64)
    stakeholder = frame["stakeholder_id"].astype(object).map(position).fillna(-1).to_numpy(np.int64)
    on_roster = stakeholder >= 0
    # One key per (person, organisation): each person's first event with each organisation.
    per_organisation = persons * len(names) + np.where(on_roster, organisation_of[stakeholder], 0)
    quarters = [period for period in periods if period.kind == QUARTER]
    to_periods = period_matrix(periods)
    values = {}
    for variant, actions in ind.VARIANTS.items():
        eligible = counted & on_roster & np.logical_or.reduce([action[a] for a in sorted(actions)])
        rows = index_events(order, per_organisation, eligible)
        quarter = quarter_numbers(frame["event_date"].iloc[rows], quarters[0] if quarters else None)
        table = np.bincount(
            quarter * len(members) + stakeholder[rows], minlength=len(quarters) * len(members)
        ).reshape(len(quarters), len(members))
        values[VARIANT_COLUMNS[variant]] = to_periods @ table  # (periods, stakeholders)
    out = []
    for code, name in enumerate(names):
        mine = np.flatnonzero(organisation_of == code)
        if not len(mine):
            continue
        lines: list[tuple[str, str, np.ndarray]] = [
            (ALL_STAKEHOLDERS, "", mine),
            *((members[i].id, members[i].name, np.asarray([i])) for i in mine),
        ]
        for sid, label, columns in lines:
            for place, period in enumerate(periods):
                sums = [int(values[column][place, columns].sum()) for column in VARIANT_COLUMNS.values()]
                out.append(
                    (name, sid, label, period.label, period.start.isoformat(), period.end.isoformat(), *sums)
                )
    return pd.DataFrame(out, columns=list(PARTNER_COLUMNS))
