"""A partner organisation's own report (``kobo-tip report --partner ORG``, contract section 7).

The report counts the partner's events alone: the submissions of its stakeholders (the roster's
``organisation``), each person once, at the partner's own first event for them. Nothing is taken
from other partners' records, not even whether a person was seen elsewhere first, and merges that
join a partner's submission with another's are left out, so the report is what the partner's
own data say. A partner report travels further than the partner, so it is published under the
donor audience's protection (contract section 6: k of ``[privacy] min_cell.donor``, the LP audit,
the release rule against the partner's earlier reports, recorded in the store under the audience
name of its folder) and holds no submission id, stakeholder or free text. It counts on the event
basis (the as-reported ledger is the project's, and would carry other partners' persons). Like a
donor report it is held back when too much of what it counts (the partner's own submissions)
cannot be read for counting, until an officer releases it with ``--accept-unreadable``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from kobo_tip import cases, counting, indicator, periods, privacy, readability
from kobo_tip.config import EVENT_DATE, Settings
from kobo_tip.errors import StoreError
from kobo_tip.labels import load_labels
from kobo_tip.partners import find_organisation, folder_name
from kobo_tip.report import cutoff, files, restatements
from kobo_tip.report.edition import Edition
from kobo_tip.report.render import (
    outside_provenance,
    provenance_of,
    published_through,
    save_release,
    stored_release,
    write_edition,
)
from kobo_tip.report.tables import KeyPeriods, PublishedCounts
from kobo_tip.report.texts import ReportWords
from kobo_tip.store import open_store

# The edition's audience: its title and its protection are a donor report's, its words its own.
PARTNER = "partner"


def partner_cases(built: cases.Cases, stakeholders: set[str]) -> cases.Cases:
    """The cases of ``stakeholders``' submissions only, with their findings."""
    keep = built.frame["stakeholder_id"].astype(object).isin(stakeholders).to_numpy()
    frame = built.frame.loc[keep]
    findings = built.findings.loc[built.findings["submission_id"].isin(set(frame["submission_id"]))]
    return cases.Cases(frame=frame, findings=findings)


def render_partner_report(
    settings: Settings, organisation: str, *, as_of: dt.date | None = None, accept_unreadable: bool = False
) -> list[Path]:
    """Write ``<out_dir>/partner-<organisation>/`` for the roster's ``organisation`` (named as
    ``find_organisation`` accepts) and return the paths written. Raises ``DisclosureError`` (and
    writes nothing) when the release cannot be proven safe, and ``UnreadableHeld`` (writing nothing)
    when too much of the partner's own submissions cannot be read for counting, as an outside
    report is held (``kobo_tip.readability``), unless ``accept_unreadable``."""
    name = find_organisation(settings.form.roster, organisation)
    audience = folder_name(name)
    stakeholders = {member.id for member in settings.form.roster if member.organisation == name}
    run_date = as_of or dt.date.today()
    headline = periods.headline_quarter(settings.project, run_date)
    through = published_through(headline, settings)
    k = settings.privacy.min_cell.get("donor", indicator.DEFAULT_MIN_CELL["donor"])
    with open_store(settings, create=False) as store:
        runs = store.runs(limit=50)
        if not any(run.finished and not run.error for run in runs):
            raise StoreError(
                f"Nothing has been synced into {store.path} yet: run 'kobo-tip sync' first; "
                "no report was written."
            )
        table = store.answer_table()
        built = cases.cases_from_table(table, settings)
        own = partner_cases(built, stakeholders)
        held = readability.hold_reason(
            store, settings, readability.assess(own), accept=accept_unreadable, partner=name
        )
        if held is not None:
            raise readability.UnreadableHeld(held)
        merges_path = settings.indicator.merges_path
        merges = counting.read_merges(merges_path, built.frame["submission_id"]) if merges_path else []
        ids = set(own.frame["submission_id"])
        result = counting.count_indicator(
            own, settings, run_date, merges=[pair for pair in merges if set(pair) <= ids]
        )
        ended = cutoff.counts_through(result.counts, through)
        with store.lock_for_render():
            history = {audience: [stored_release(stored) for stored in store.releases(audience)]}
            release = privacy.protect(ended, {audience: k}, history, through.isoformat()).releases[audience]
            previous = store.releases(audience, last=True)
            last = previous[0] if previous else None
            words = ReportWords.for_language(
                load_labels(settings.project.report_language), settings.form.locations
            )
            counts = PublishedCounts(release.published)
            edition = Edition(
                audience=PARTNER,
                k=release.k,
                project_name=f"{settings.project.name}: {name}",
                counts=counts,
                key_periods=KeyPeriods.of(counts, headline.label if headline else None, run_date),
                findings=None,
                restatements=restatements.restatements(last, runs, release.published, through, None),
                provenance=outside_provenance(provenance_of(table, runs, run_date), settings, words),
                words=words,
                left_out=release.omitted(),
                stale_after_days=settings.report.stale_after_days,
                basis=EVENT_DATE,
            )
            # The partner's report has no targets (the M&E plan's are the project's) and no DHIS2 file.
            own_settings = dataclasses.replace(settings, targets=None, dhis2=None)
            with files.new_folder(settings.report.out_dir / audience) as folder:
                paths = write_edition(edition, own_settings, folder)
                if not release.same_cells(stored_release(last) if last else None):
                    save_release(store, release, runs[0].id if runs else 0)
    final = settings.report.out_dir / audience
    return [final / path.name for path in paths]
