"""Render every audience's report folder from the store: cases -> counting -> privacy -> files."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import kobo_tip
from kobo_tip import cases, counting, periods, privacy
from kobo_tip.config import Settings
from kobo_tip.labels import load_labels
from kobo_tip.report import cutoff, dhis2, document, files, restatements, workbook
from kobo_tip.report.tables import KeyPeriods, PublishedCounts
from kobo_tip.report.texts import ReportWords
from kobo_tip.store import RunInfo, Store, utc_stamp

log = logging.getLogger(__name__)

INTERNAL = "internal"


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from, for the report's footer."""

    data_as_of: str | None  # end of the last successful sync (UTC), None if never synced
    last_run: int  # id of the newest sync run in the store (0: none)
    source: str
    form_versions: tuple[str, ...]
    tool_version: str
    run_date: dt.date


@dataclass(frozen=True)
class Edition:
    """Everything one audience's report shows."""

    audience: str
    k: int | None  # None for internal
    project_name: str
    counts: PublishedCounts
    key_periods: KeyPeriods
    findings: pd.DataFrame | None  # internal only
    restatements: pd.DataFrame
    provenance: Provenance
    words: ReportWords

    @property
    def published(self) -> pd.DataFrame:
        return self.counts.frame


@dataclass(frozen=True)
class Counted:
    """One count of the store, shared by every audience of a report run."""

    result: counting.CountResult
    provenance: Provenance


def render_reports(
    settings: Settings,
    *,
    audiences: Sequence[str] | None = None,
    as_of: dt.date | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<audience>/`` for each audience (default: ``[report] audiences``).

    Returns the paths written. Counts once (``count_store``), then publishes each audience
    (``write_audiences``).
    """
    run_date = as_of or dt.date.today()
    with Store.open(settings.store_path) as store:
        counted = count_store(store, settings, run_date)
        return write_audiences(store, settings, counted, audiences or settings.report.audiences)


def count_store(store: Store, settings: Settings, run_date: dt.date) -> Counted:
    """Read every stored submission, build the cases and count them through ``run_date``."""
    runs = store.runs(limit=50)  # before reading: a sync that starts meanwhile is the next report's
    table = store.answer_table()
    built = cases.cases_from_table(table, settings)
    versions = {version for version, gone in zip(table.form_version, table.deleted, strict=True) if not gone}
    provenance = _provenance(runs, tuple(sorted(versions - {""})), run_date)
    return Counted(counting.count_indicator(built, settings, run_date), provenance)


def write_audiences(
    store: Store, settings: Settings, counted: Counted, audiences: Sequence[str]
) -> list[Path]:
    """Publish the counts to each audience, write its folder and save what it was shown.

    Outside ``internal`` only ended quarters are counted, so the running quarter stays internal
    and FY and LOP cover the published quarters only (derived from the one count, see ``cutoff``).
    What each audience was shown is saved for the next report's restatement log.
    """
    run_date = counted.provenance.run_date
    result = counted.result
    words = ReportWords.for_language(load_labels(settings.project.report_language), settings.form.locations)
    headline = periods.headline_quarter(settings.project, run_date)
    written: list[Path] = []
    for audience in dict.fromkeys(audiences):
        if audience == INTERNAL:
            counts_table, through = result.counts, result.through
        else:
            through = _published_through(headline, settings)
            counts_table = cutoff.counts_through(result.counts, through)
        k = None if audience == INTERNAL else settings.privacy.min_cell[audience]
        published = privacy.publish(counts_table, audience, k)
        counts = PublishedCounts(published)
        edition = Edition(
            audience=audience,
            k=k,
            project_name=settings.project.name,
            counts=counts,
            key_periods=KeyPeriods.of(counts, headline.label if headline else None, run_date),
            findings=result.findings if audience == INTERNAL else None,
            restatements=restatements.restatements(
                store, audience, published, through, settings.indicator.merges_path
            ),
            provenance=counted.provenance,
            words=words,
        )
        written += _write(edition, settings, settings.report.out_dir / audience)
        cells = restatements.publication_cells(published, through, counted.provenance.last_run)
        store.save_publication(audience, cells)
    return written


def _write(edition: Edition, settings: Settings, folder: Path) -> list[Path]:
    formats = settings.report.formats
    written = [
        files.write_counts(folder / "counts.csv", edition.published),
        files.write_restatements(folder / "restatements.csv", edition.restatements),
    ]
    if edition.findings is not None:
        written.append(files.write_data_quality(folder / "data_quality.csv", edition.findings))
    if "html" in formats:
        written.append(files.write_text(folder / "report.html", document.render_html(edition)))
    if "md" in formats:
        written.append(files.write_text(folder / "report.md", document.render_markdown(edition)))
    if "xlsx" in formats:
        written.append(workbook.write_workbook(folder / "counts.xlsx", edition))
    if settings.dhis2 is not None:
        path, left_out = dhis2.write_data_value_set(folder / "dhis2_datavalueset.json", edition, settings)
        if left_out:
            log.warning("%s: %d suppressed cell(s) left out of %s.", edition.audience, left_out, path.name)
        written.append(path)
    return written


def _published_through(headline: periods.Period | None, settings: Settings) -> dt.date:
    """The last day counted outside ``internal``: the end of the headline quarter."""
    if headline is None:  # no quarter has ended yet: only empty periods can be published
        return settings.project.start_date - dt.timedelta(days=1)
    return headline.end


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
