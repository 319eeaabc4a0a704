"""Render every audience's report folder from the store: cases -> counting -> privacy -> files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pycountry

import kobo_tip
from kobo_tip import cases, counting, indicator, ledger, periods, privacy, readability, referrals
from kobo_tip.answers import AnswerTable
from kobo_tip.config import AS_REPORTED, Settings
from kobo_tip.errors import StoreError, UsageError
from kobo_tip.indicator import INTERNAL
from kobo_tip.labels import load_labels
from kobo_tip.partners import PARTNER_COLUMNS
from kobo_tip.report import (
    as_reported,
    chart_files,
    cutoff,
    dhis2,
    document,
    files,
    iptt,
    iptt_workbook,
    restatements,
    workbook,
)
from kobo_tip.report.edition import Edition, Performance, Provenance
from kobo_tip.report.tables import KeyPeriods, PublishedCounts
from kobo_tip.report.texts import ReportWords
from kobo_tip.store import PROGRAMME_MEMBER, RunInfo, Store, StoredRelease, open_store, utc_stamp
from kobo_tip.store.records import LedgerRows
from kobo_tip.targets import Targets, check_targets, project_periods, read_targets

log = logging.getLogger(__name__)
HTML_FILE = "report.html"


@dataclass(frozen=True)
class Counted:
    """One count of the store, shared by every audience of a report run."""

    result: counting.CountResult
    provenance: Provenance
    readability: readability.Readability | None = None  # of a project's store (not a programme's)
    referrals: pd.DataFrame | None = None  # the internal referral table when kept outside the render


def render_reports(
    settings: Settings,
    *,
    audiences: Sequence[str] | None = None,
    as_of: dt.date | None = None,
    refuse_unreadable: bool = False,
    accept_unreadable: bool = False,
    count: Callable[[Store, Settings, dt.date], Counted] | None = None,
    html_first: bool = False,
    kept_ledger: ledger.KeptLedger | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<audience>/`` for each audience (default: ``[report] audiences``).

    Returns the paths written. Counts once (``count_store``), then publishes each audience
    (``write_audiences``). A store that was never synced is an error; from one that holds no
    submission only the internal report is written (an outside report of zeros would say that
    nothing happened, which nobody knows yet). A project of a programme that released it leaves its
    outside audiences to the programme (``kobo_tip.programme.release_together``).

    When too much of the store cannot be read for the counting (``kobo_tip.readability``), only the
    internal report is written: with a warning, or, with ``refuse_unreadable`` (an officer asked for
    an outside report), raising ``UnreadableHeld`` after it. ``accept_unreadable`` releases anyway.
    ``count`` replaces ``count_store`` (serve's render keeps its counts between renders);
    ``html_first``: the internal report.html is shown before its folder's other files are written
    (``publish``), as serve's renders do; ``kept_ledger``: the ledger the internal report reconciles
    with, kept between serve's renders (read from the store without it).
    """
    run_date = as_of or dt.date.today()
    wanted = list(audiences or settings.report.audiences)
    with open_store(settings, create=False) as store:
        if not any(run.finished and not run.error for run in store.runs(limit=50)):
            raise StoreError(
                f"Nothing has been synced into {store.path} yet: run 'kobo-tip sync' first; "
                "no report was written."
            )
        programme = store.meta_value(PROGRAMME_MEMBER)
        if programme and any(a != INTERNAL for a in wanted):
            message = (
                f"The outside reports of this project are released with its programme's, which audits "
                f"them together: run 'kobo-tip report --programme -c {programme}'"
            )
            wanted = [a for a in wanted if a == INTERNAL]
            if not wanted:
                raise UsageError(message + ".")
            log.warning("%s; only the internal report is written here.", message)
        # Counting the stored rows costs a second at 1,000,000: only when an outside report is due.
        if any(a != INTERNAL for a in wanted) and store.counts().submissions == 0:
            log.warning(
                "The store holds no submission yet: no outside report is written until one is synced."
            )
            wanted = [a for a in wanted if a == INTERNAL]
        counted = (count or count_store)(store, settings, run_date)
        assert counted.readability is not None
        held = None
        if any(a != INTERNAL for a in wanted):
            held = readability.hold_reason(store, settings, counted.readability, accept=accept_unreadable)
        else:
            readability.record(store, counted.readability)
        if held is not None:
            wanted = [a for a in wanted if a == INTERNAL]
            if not refuse_unreadable:
                log.warning("%s", held)
        written = (
            write_audiences(store, settings, counted, wanted, html_first=html_first, kept_ledger=kept_ledger)
            if wanted
            else []
        )
    if held is not None and refuse_unreadable:
        raise readability.UnreadableHeld(held, written)
    return written


def outside_due(settings: Settings, as_of: dt.date | None = None) -> bool:
    """True when an outside audience of ``[report] audiences`` holds no release through the last
    ended quarter: a quarter ended since (or nothing was released yet), so a new release is due."""
    headline = periods.headline_quarter(settings.project, as_of or dt.date.today())
    through = published_through(headline, settings).isoformat()
    with open_store(settings, create=False) as store:
        if store.meta_value(PROGRAMME_MEMBER):
            return False  # its programme releases it
        return any(
            [release.through for release in store.releases(audience, last=True)] != [through]
            for audience in settings.report.audiences
            if audience != INTERNAL
        )


def count_store(store: Store, settings: Settings, run_date: dt.date) -> Counted:
    """Read every stored submission, build the cases and count them through ``run_date``."""
    runs = store.runs(limit=50)  # before reading: a sync that starts meanwhile is the next report's
    table = store.answer_table()
    built = cases.cases_from_table(table, settings)
    result = counting.count_indicator(built, settings, run_date, persons=as_reported_basis(settings))
    return Counted(result, provenance_of(table, runs, run_date), readability.assess(built))


def as_reported_basis(settings: Settings) -> bool:
    """True when outside audiences count as reported (contract section 4), so the ledger is kept."""
    return settings.report.outside_basis == AS_REPORTED


def provenance_of(table: AnswerTable, runs: Sequence[RunInfo], run_date: dt.date) -> Provenance:
    """Footer facts of a count of the answer table ``table``; ``runs`` newest first."""
    versions = {version for version, gone in zip(table.form_version, table.deleted, strict=True) if not gone}
    return _provenance(runs, tuple(sorted(versions - {"", indicator.MISSHAPEN_METADATA})), run_date)


def write_audiences(
    store: Store,
    settings: Settings,
    counted: Counted,
    audiences: Sequence[str],
    *,
    html_first: bool = False,
    kept_ledger: ledger.KeptLedger | None = None,
) -> list[Path]:
    """Publish the counts to each audience, write its folder and save what it was shown.

    Outside ``internal`` only ended quarters are counted, so the running quarter stays internal
    and FY and LOP cover the published quarters only (derived from the one count, see ``cutoff``),
    and every outside audience's release is protected against the releases before it
    (``privacy.protect``). One render at a time holds the store's render lock, so two renders
    never make two releases unaware of each other. If the guarantee cannot be proven, no file of
    any outside audience is written and ``DisclosureError`` is raised after the internal report.
    ``html_first``: see ``publish``; ``kept_ledger``: see ``render_reports``.
    """
    run_date = counted.provenance.run_date
    result = counted.result
    headline = periods.headline_quarter(settings.project, run_date)
    wanted = list(dict.fromkeys(audiences))
    written: list[Path] = []
    through = published_through(headline, settings)
    table = cutoff.counts_through(result.counts, through)
    targets = load_targets(settings, result.counts)
    with store.lock_for_render():
        outcome: privacy.Outcome | None = None
        failure: privacy.DisclosureError | None = None
        reported: ledger.AsReported | None = None
        stamp = utc_stamp()
        if any(audience != INTERNAL for audience in wanted):
            ks = dict(settings.privacy.min_cell)  # every outside audience, so nesting holds for each
            history = {a: [stored_release(stored) for stored in store.releases(a)] for a in ks}
            outside = table
            if as_reported_basis(settings):
                reported = reported_table(store, result, table, history, stamp)
                outside = reported.table
            try:
                outcome = privacy.protect(outside, ks, history, through.isoformat())
                if targets is not None:
                    _prove_iptt(outcome, ks, history, targets, headline, settings=settings)
            except privacy.DisclosureError as exc:
                failure = exc
        runs = store.runs(restatements.RUNS_LOOKED_AT)
        # The internal report reconciles with the ledger as this run leaves it.
        after = reported.ledger if reported and outcome else None
        referral_rows = None
        if INTERNAL in wanted:
            referral_rows = (
                counted.referrals
                if counted.referrals is not None
                else _referral_rows(store, settings, result)
            )
        for audience in wanted:
            if audience == INTERNAL:
                release = privacy.Release(
                    INTERNAL,
                    0,
                    result.through.isoformat(),
                    result.counts.assign(published=result.counts["value"].astype(str)),
                )
            elif outcome is not None:
                release = outcome.releases[audience]
            else:
                continue
            previous = store.releases(audience, last=True)
            last = previous[0] if previous else None
            added = reported.added if reported else None

            def save(
                release: privacy.Release = release,
                last: StoredRelease | None = last,
                added: LedgerRows | None = added,
            ) -> None:
                if release.audience == INTERNAL or not release.same_cells(
                    stored_release(last) if last else None
                ):
                    save_release(
                        store,
                        release,
                        counted.provenance.last_run,
                        ledger=None if release.audience == INTERNAL else added,
                        released_at=stamp,
                    )

            reconciled = None
            # A programme's project: its outside releases, and their ledger, are the programme's.
            if (
                audience == INTERNAL
                and as_reported_basis(settings)
                and not store.meta_value(PROGRAMME_MEMBER)
            ):
                reconciled = as_reported.reconcile(
                    after or (kept_ledger(store) if kept_ledger else ledger.Ledger.of(store.ledger())),
                    result,
                    published_through(headline, settings),
                )
            written += publish(
                settings,
                counted,
                release,
                outcome,
                runs,
                last=last,
                targets=targets,
                save=save,
                reconciled=reconciled,
                referrals=referral_rows,
                html_first=html_first and audience == INTERNAL,
            )
    if failure is not None:
        raise failure
    return written


def save_release(
    store: Store,
    release: privacy.Release,
    last_run: int,
    extra: Mapping[str, list[Any]] | None = None,
    *,
    ledger: LedgerRows | None = None,
    released_at: str | None = None,
) -> None:
    """Record what ``release``'s audience was shown (``extra``: more columns of its cells), with
    what it adds to the as-reported ledger (``ledger``) in the same transaction."""
    cells = {c: release.table[c].tolist() for c in (*privacy.COLUMNS, "published")}
    store.save_release(
        release.audience,
        k=release.k,
        through=release.through,
        last_run=last_run,
        cells={**cells, **(extra or {})},
        released_at=released_at,
        ledger=ledger,
    )


def reported_table(
    store: Store,
    result: counting.CountResult,
    table: pd.DataFrame,
    history: Mapping[str, Sequence[privacy.Release]],
    stamp: str,
) -> ledger.AsReported:
    """The as-reported table of the ended-quarter counts ``table`` (contract section 4), from the
    store's ledger and the outside audiences' earlier releases (``history``)."""
    assert result.persons is not None, "count with persons=True on the as-reported basis"
    groups = ledger.merged_groups(result.rows)
    return ledger.as_reported(
        table,
        result.persons,
        dict.fromkeys(result.persons, groups),
        ledger.Ledger.of(store.ledger()),
        [release for releases in history.values() for release in releases],
        stamp=stamp,
    )


def publish(  # noqa: PLR0913 (each keyword an internal-only part of the one edition)
    settings: Settings,
    counted: Counted,
    release: privacy.Release,
    outcome: privacy.Outcome | None,
    runs: Sequence[RunInfo],
    *,
    last: StoredRelease | None,
    targets: Targets | None,
    save: Callable[[], None] | None = None,
    reconciled: as_reported.Reconciliation | None = None,
    referrals: pd.DataFrame | None = None,
    html_first: bool = False,
) -> list[Path]:
    """Write one audience's folder of ``release`` (``last``: what the audience was shown before,
    ``targets``: ``load_targets``'s); ``save`` records the release before the folder is swapped
    in, so no file is ever out without its release on record. ``reconciled``: the internal
    report's as-reported section (``as_reported.reconcile``); ``referrals``
    (``referral_table``'s) is shown to internal only. ``html_first``: report.html is swapped in
    alone first, beside the previous version's other files, then the whole folder (serve: the
    officer's page is current seconds before counts.xlsx and data_quality.csv are written again)."""
    audience = release.audience
    internal = audience == INTERNAL
    words = ReportWords.for_language(load_labels(settings.project.report_language), settings.form.locations)
    run_date = counted.provenance.run_date
    headline = periods.headline_quarter(settings.project, run_date)
    through = dt.date.fromisoformat(release.through)
    published = release.published
    counts = PublishedCounts(published)
    # The IPTT compares ended quarters only, in every audience: from the release outside
    # internal, from the same cut of the true counts inside.
    ended = (
        PublishedCounts(
            privacy.internal_view(
                cutoff.counts_through(counted.result.counts, published_through(headline, settings))
            )
        )
        if internal
        else counts
    )
    performance = _performance(ended, targets, headline, settings, words, k=None if internal else release.k)
    edition = Edition(
        audience=audience,
        k=None if internal else release.k,
        project_name=settings.project.name,
        counts=counts,
        key_periods=KeyPeriods.of(counts, headline.label if headline else None, counted.provenance.run_date),
        findings=counted.result.findings if internal else None,
        restatements=restatements.restatements(
            last, runs, published, through, settings.indicator.merges_path
        ),
        provenance=counted.provenance
        if internal
        else outside_provenance(counted.provenance, settings, words),
        words=words,
        disclosure=privacy.information_loss(outcome.releases.values()) if internal and outcome else None,
        held=list(outcome.held) if internal and outcome else [],
        left_out={} if internal else release.omitted(),
        stale_after_days=settings.report.stale_after_days,
        performance=performance,
        basis=settings.report.outside_basis,
        as_reported=reconciled if internal else None,
        referrals=referrals if internal else None,
        partners=counted.result.partners if internal else None,
    )
    group = settings.report.group if audience in settings.report.share_with_group else ""
    html = None
    if html_first and "html" in settings.report.formats:
        html = document.render_html(edition)
        with files.new_folder(settings.report.out_dir / audience, group=group, carry=True) as folder:
            files.write_text(folder / HTML_FILE, html)
            if save is not None:
                save()
        save = None  # recorded with the page, before it was shown
    with files.new_folder(settings.report.out_dir / audience, group=group) as folder:
        paths = write_edition(edition, settings, folder, html=html)
        if save is not None:
            save()
    final = settings.report.out_dir / audience
    return [final / path.name for path in paths]


def _referral_rows(store: Store, settings: Settings, result: counting.CountResult) -> pd.DataFrame:
    """The internal report's referrals by receiving organisation, of the submissions counting did
    not exclude."""
    findings = result.findings
    excluded = set(findings.loc[findings["rule"].isin(indicator.EXCLUSION_RULES), "submission_id"])
    return referrals.referral_table(
        store.submissions(include_deleted=False),
        settings.form.referral_directory,
        excluded,
        result.through,
        load_labels(settings.project.report_language),
    )


def _prove_iptt(
    outcome: privacy.Outcome,
    ks: Mapping[str, int],
    history: Mapping[str, Sequence[privacy.Release]],
    targets: Targets,
    headline: periods.Period | None,
    *,
    settings: Settings,
) -> None:
    """Audit each outside release with the IPTT's group and cumulative actuals beside it (contract
    section 6); raises ``DisclosureError`` when one of them would narrow a small cell."""
    margin = settings.targets.margin_percent if settings.targets else 0
    for audience, release in outcome.releases.items():
        counts = PublishedCounts(release.published)
        rows = iptt.iptt_rows(counts, targets, headline, margin, release.k)
        sums = iptt.audited_sums(rows, counts.periods)
        if sums:
            privacy.prove_with_sums(audience, ks, outcome, history, sums)


def load_targets(settings: Settings, counts: pd.DataFrame) -> Targets | None:
    """The checked targets of ``[targets]`` (None without one); their warnings are logged."""
    if settings.targets is None:
        return None
    categories: dict[str, set[str]] = {}
    for dimension, category in counts[["dimension", "category"]].drop_duplicates().itertuples(index=False):
        categories.setdefault(dimension, set()).add(category)
    # Targets may name a place or a country with no person counted yet.
    places = {loc.code for loc in settings.form.locations if loc.level == settings.indicator.location_level}
    countries = {c.alpha_2.lower() for c in pycountry.countries}
    categories.setdefault("location", set()).update(places | countries)
    categories.setdefault("country_of_origin", set()).update(countries)
    path = settings.targets.path
    found = check_targets(
        read_targets(path, settings.targets.sheet), settings, categories, f"Targets file {path}"
    )
    for warning in found.warnings:
        log.warning("%s", warning)
    return found


def _performance(
    counts: PublishedCounts,
    targets: Targets | None,
    headline: periods.Period | None,
    settings: Settings,
    words: ReportWords,
    *,
    k: int | None,
) -> Performance:
    """The IPTT and summary of ``counts``, a release of ``k`` (None: the true counts, internal)."""
    margin = settings.targets.margin_percent if settings.targets else 0
    rows = iptt.iptt_rows(counts, targets, headline, margin, k) if targets else []
    return Performance(rows, iptt.summary(counts, words, rows, indicator.HEADLINE_VARIANT), margin)


def stored_release(stored: StoredRelease) -> privacy.Release:
    """A release as the store saved it."""
    table = pd.DataFrame(stored.cells)
    return privacy.Release(stored.audience, stored.k, stored.through, table, stored.released_at)


def write_edition(
    edition: Edition, settings: Settings, folder: Path, *, html: str | None = None
) -> list[Path]:
    """Write ``edition``'s files into ``folder``, in the formats ``settings`` asks for (``html``:
    report.html's text when it is already rendered)."""
    formats = settings.report.formats
    written = [
        files.write_counts(folder / "counts.csv", edition.published),
        files.write_restatements(folder / "restatements.csv", edition.restatements),
    ]
    if edition.findings is not None:
        written.append(files.write_data_quality(folder / "data_quality.csv", edition.findings))
    if edition.as_reported is not None and not edition.as_reported.cells.empty:
        cells = edition.as_reported.cells
        written.append(files.write_table(folder / "as_reported.csv", cells, as_reported.AS_REPORTED_COLUMNS))
    if edition.referrals is not None:
        written.append(
            files.write_table(folder / "referrals.csv", edition.referrals, referrals.REFERRAL_COLUMNS)
        )
    if edition.partners is not None:
        written.append(files.write_table(folder / "partners.csv", edition.partners, PARTNER_COLUMNS))
    if settings.targets is not None:
        table = iptt.iptt_frame(edition.performance.rows)
        written.append(files.write_table(folder / "iptt.csv", table, iptt.IPTT_COLUMNS))
    if "html" in formats:
        text = document.render_html(edition) if html is None else html
        written.append(files.write_text(folder / HTML_FILE, text))
        written += chart_files.write_chart_files(folder, edition)
    if "md" in formats:
        written.append(files.write_text(folder / "report.md", document.render_markdown(edition)))
    if "xlsx" in formats:
        written.append(workbook.write_workbook(folder / "counts.xlsx", edition))
        if settings.targets is not None:
            iptt_path = folder / "iptt.xlsx"
            written.append(
                iptt_workbook.write_iptt_workbook(iptt_path, edition, project_periods(settings.project))
            )
    if settings.dhis2 is not None:
        path, left_out = dhis2.write_data_value_set(folder / "dhis2_datavalueset.json", edition, settings)
        if left_out:
            log.warning("%s: %d suppressed cell(s) left out of %s.", edition.audience, left_out, path.name)
        written.append(path)
    return written


def published_through(headline: periods.Period | None, settings: Settings) -> dt.date:
    """The last day counted outside ``internal``: the end of the headline quarter."""
    if headline is None:  # no quarter has ended yet: only empty periods can be published
        return settings.project.start_date - dt.timedelta(days=1)
    return headline.end


def outside_provenance(provenance: Provenance, settings: Settings, words: ReportWords) -> Provenance:
    """The footer facts an outside audience sees: the tool's and the config's words only, no text a
    submission or a local path carries (the kind of source, in the report language, not its
    address; no form versions)."""
    source = words.text(f"source.{settings.source.kind}")
    return dataclasses.replace(provenance, source=source, form_versions=())


def _provenance(runs: Sequence[RunInfo], form_versions: tuple[str, ...], run_date: dt.date) -> Provenance:
    """Footer facts; ``runs`` newest first."""
    last = next((run for run in runs if run.finished and not run.error), None)
    return Provenance(
        data_as_of=utc_stamp(last.finished) if last and last.finished else None,
        last_run=runs[0].id if runs else 0,
        source=last.source if last else "",
        form_versions=form_versions,
        tool_version=kobo_tip.__version__,
        run_date=run_date,
    )
