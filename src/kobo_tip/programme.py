"""Programme reports: the projects of one award counted together, each person once, at their
first qualifying event in any project.

A programme config names its projects' configs and the rules the programme counts by; a project
that counts by other rules is refused, naming the key, and so is a store keyed with another
secret (the same person would then have two keys and count twice). Each project's store is read
as its own report reads it; the cases are counted as one project whose roster and locations are
all of theirs, each row held to its own project's rules and merges. Outside audiences see the
programme and its projects released together, suppressed and audited as one table
(``release_together``). The programme's own store keeps what its reports were shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import kobo_tip
from kobo_tip import cases as cases_module
from kobo_tip import counting, ledger, periods, privacy
from kobo_tip.config import Settings, StoreSettings, load_settings
from kobo_tip.errors import ConfigError, StoreError
from kobo_tip.indicator import INTERNAL
from kobo_tip.person_key import FINGERPRINT, secret_fingerprint
from kobo_tip.privacy.relations import PROGRAMME_SCOPE, scope_of, scoped
from kobo_tip.report import cutoff
from kobo_tip.report.render import (
    Counted,
    Provenance,
    as_reported_basis,
    load_targets,
    provenance_of,
    publish,
    published_through,
    save_release,
    stored_release,
    write_audiences,
)
from kobo_tip.store import PROGRAMME_MEMBER, RunInfo, Store, StoredRelease, open_store, utc_stamp
from kobo_tip.store.records import LedgerRows

# What every project must count by as the programme does: config key -> how a Settings holds it.
RULES: dict[str, Callable[[Settings], Any]] = {
    "fiscal_year_start_month": lambda s: s.project.fiscal_year_start_month,
    "age_bands": lambda s: list(s.indicator.age_bands),
    "person_categories": lambda s: list(s.indicator.person_categories),
    "require_approved": lambda s: s.indicator.require_approved,
    "require_event_after_training": lambda s: s.indicator.require_event_after_training,
    "location_level": lambda s: s.indicator.location_level,
    "min_cell": lambda s: dict(s.privacy.min_cell),
    "outside_basis": lambda s: s.report.outside_basis,
}
KEYS = ("name", "projects", "store", "out_dir", "secret_env", *RULES)
LAST_RUN = "last_run"  # a joint release's column: the last run of the cell's project when released


@dataclasses.dataclass(frozen=True)
class Programme:
    path: Path
    projects: tuple[Settings, ...]
    settings: Settings  # what the programme counts and reports by


def load_programme(path: str | Path) -> Programme:
    """Read a programme config (``[programme]``: name, projects, store, out_dir, secret_env and the
    rules of ``RULES``); every project config is loaded and held to the rules."""
    config = Path(path).absolute()
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Programme config {config} not found.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Programme config {config} is not valid TOML: {exc}.") from None
    table = raw.get("programme")
    if set(raw) != {"programme"} or not isinstance(table, dict):
        raise ConfigError(f"{config} must hold one [programme] table (name, projects, and the rules).")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"Unknown key '{unknown[0]}' in [programme] of {config}; the keys are {', '.join(KEYS)}."
        )
    names = table.get("projects")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"[programme] projects of {config} must list the projects' config files.")
    projects = tuple(load_settings(config.parent / name) for name in names)
    scopes = [scope_of_project(project) for project in projects]
    if len(set(scopes)) < len(scopes):
        raise ConfigError(
            f"[programme] projects of {config} must each live in a folder of its own name: the folder "
            "names the project in the programme's releases."
        )
    for key, read in RULES.items():
        expected = table.get(key, read(projects[0]))
        for project in projects:
            if read(project) != expected:
                raise ConfigError(
                    f"{project.path} counts by {key} = {read(project)!r}, the programme {config} by "
                    f"{expected!r}: a programme counts every project by the same rules; make them equal."
                )
    return Programme(config, projects, _programme_settings(config, table, projects))


def _programme_settings(config: Path, table: dict[str, Any], projects: tuple[Settings, ...]) -> Settings:
    first = projects[0]
    roster: dict[str, Any] = {}
    for project in projects:
        for member in project.form.roster:
            seen = roster.setdefault(member.id, member)
            if seen.trained_on != member.trained_on:
                raise ConfigError(
                    f"Stakeholder {member.id} is trained on {seen.trained_on} in one project's roster and on "
                    f"{member.trained_on} in {project.path}'s: give it one date, or another id."
                )
    locations = {(loc.level, loc.code): loc for project in projects for loc in project.form.locations}
    return dataclasses.replace(
        first,
        path=config,
        project=dataclasses.replace(
            first.project,
            name=str(table.get("name", "Programme")),
            start_date=min(p.project.start_date for p in projects),
            end_date=max(p.project.end_date for p in projects),
        ),
        form=dataclasses.replace(
            first.form, roster=tuple(roster.values()), locations=tuple(locations.values())
        ),
        # Merges are reviewed within a project: across projects the person key alone links.
        indicator=dataclasses.replace(first.indicator, merges_path=None),
        store=StoreSettings(path=config.parent / str(table.get("store", "data/programme.sqlite"))),
        privacy=dataclasses.replace(
            first.privacy, secret_env=str(table.get("secret_env", first.privacy.secret_env))
        ),
        report=dataclasses.replace(
            first.report,
            out_dir=config.parent / str(table.get("out_dir", "reports")),
            audiences=(INTERNAL,),
        ),
        targets=None,
        dhis2=None,
    )


@dataclasses.dataclass(frozen=True)
class ProjectCount:
    """One project of a programme as its own report counts it, with what it was shown before."""

    settings: Settings
    scope: str  # its indicators' prefix in the programme's releases (its config's folder name)
    counted: Counted
    runs: list[RunInfo]  # newest first
    releases: dict[str, list[StoredRelease]]  # what each outside audience was shown on its own
    ledger: LedgerRows  # its own as-reported ledger, kept while it released on its own


@dataclasses.dataclass(frozen=True)
class ProgrammeCount:
    programme: Counted
    projects: list[ProjectCount]


def count_programme(programme: Programme, as_of: dt.date) -> ProgrammeCount:
    """Every project's cases counted as one: a person (one key) once, at the first qualifying event
    of any project; each row held to its own project's rules and merges, so a programme person's
    index event is one of a project's. Submission ids are prefixed with the project's folder name.
    Each project is counted on its own too, from the same reading of its store."""
    secret = programme.settings.secret()
    fingerprint = secret_fingerprint(secret)
    frames, findings, runs, rules, merges, projects = [], [], [], [], [], []
    for project in programme.projects:
        with open_store(project, create=False) as store:
            if store.meta_value(FINGERPRINT) != fingerprint:
                raise StoreError(
                    f"The store of {project.path} was not keyed with the programme's secret "
                    f"({programme.settings.privacy.secret_env}): its people would count again. Every project "
                    "of a programme keys with the same secret; sync it anew with that one."
                )
            project_runs = store.runs(50)
            table = store.answer_table()
            releases = {audience: store.releases(audience) for audience in project.privacy.min_cell}
            own_ledger = store.ledger()
        cases = cases_module.cases_from_table(table, project)
        label = scope_of_project(project)
        persons = as_reported_basis(programme.settings)
        counted = Counted(
            counting.count_indicator(cases, project, as_of, persons=persons),
            provenance_of(table, project_runs, as_of),
        )
        projects.append(ProjectCount(project, label, counted, project_runs, releases, own_ledger))
        rules.append(counting.first_failed_rule(cases.frame.reset_index(drop=True), project, as_of))
        path = project.indicator.merges_path
        pairs = counting.read_merges(path, cases.frame["submission_id"]) if path else []
        merges += [(f"{label}:{keep}", f"{label}:{merge}") for keep, merge in pairs]
        frame = cases.frame.assign(submission_id=f"{label}:" + cases.frame["submission_id"].astype(str))
        frames.append(frame)
        findings.append(
            cases.findings.assign(submission_id=f"{label}:" + cases.findings["submission_id"].astype(str))
        )
        runs += project_runs[:1]
    frame = pd.concat(frames, ignore_index=True)
    for column in frames[0].columns:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype):
            frame[column] = pd.api.types.union_categoricals([f[column] for f in frames])
    joined = cases_module.Cases(frame=frame, findings=pd.concat(findings, ignore_index=True))
    result = counting.count_indicator(
        joined,
        programme.settings,
        as_of,
        rules=np.concatenate(rules),
        merges=merges,
        persons=as_reported_basis(programme.settings),
    )
    return ProgrammeCount(Counted(result, _provenance(programme, runs, as_of)), projects)


def scope_of_project(project: Settings) -> str:
    """A project's name inside its programme: its config's folder."""
    return project.path.parent.name


def _provenance(programme: Programme, runs: list[RunInfo], as_of: dt.date) -> Provenance:
    finished = [run.finished for run in runs if run.finished and not run.error]
    return Provenance(
        data_as_of=utc_stamp(min(finished)) if len(finished) == len(programme.projects) else None,
        last_run=0,
        source=f"programme of {len(programme.projects)} projects",
        form_versions=(),
        tool_version=kobo_tip.__version__,
        run_date=as_of,
    )


def render_programme(
    programme: Programme, audiences: Sequence[str] = (INTERNAL,), as_of: dt.date | None = None
) -> list[Path]:
    """The programme's reports for ``audiences``. An outside audience is released together with
    every project's release of it (``release_together``)."""
    count = count_programme(programme, as_of or dt.date.today())
    wanted = list(dict.fromkeys(audiences))
    with open_store(programme.settings) as store:
        outside = [a for a in wanted if a != INTERNAL]
        internal = [a for a in wanted if a == INTERNAL]
        written = write_audiences(store, programme.settings, count.programme, internal)
        if outside:
            written += release_together(store, programme, count, outside)
    return written


def release_together(
    store: Store, programme: Programme, count: ProgrammeCount, audiences: Sequence[str]
) -> list[Path]:
    """Protect the programme's cells and every project's in one table, so an intruder holding all
    their releases (and solving the relations between them) narrows no small cell of any; write
    the programme's folder and each project's, and record the release in the programme's store.

    From then on each project's store names the programme, and the project's own renders write
    its internal report only: its outside releases are audited with the programme's, here."""
    settings = programme.settings
    headline = periods.headline_quarter(settings.project, count.programme.provenance.run_date)
    through = published_through(headline, settings)
    tables = [cutoff.counts_through(count.programme.result.counts, through)]
    for project in count.projects:
        table = cutoff.counts_through(project.counted.result.counts, through)
        tables.append(table.assign(indicator=table["indicator"].map(lambda n, s=project.scope: scoped(s, n))))
    joint = pd.concat(tables, ignore_index=True)
    for project in count.projects:
        with open_store(project.settings, create=False) as member:
            member.set_meta_value(PROGRAMME_MEMBER, str(programme.path))
    ks = dict(settings.privacy.min_cell)
    project_targets = [load_targets(p.settings, p.counted.result.counts) for p in count.projects]
    written: list[Path] = []
    stamp = utc_stamp()
    with store.lock_for_render():
        history = {audience: _history(store, count.projects, audience) for audience in ks}
        reported = None
        if as_reported_basis(settings):
            reported = _as_reported(store, count, joint, history, stamp)
            joint = reported.table
        outcome = privacy.protect(joint, ks, history, through.isoformat())
        for audience in audiences:
            release = outcome.releases[audience]
            stored = store.releases(audience, last=True)
            last = stored[0] if stored else None
            if not release.same_cells(stored_release(last) if last else None):
                last_runs = {p.scope: p.counted.provenance.last_run for p in count.projects}
                last_runs[PROGRAMME_SCOPE] = 0
                scopes = release.table["indicator"].map(lambda n: scope_of(n)[0])
                save_release(
                    store,
                    release,
                    0,
                    {LAST_RUN: scopes.map(last_runs).tolist()},
                    ledger=reported.added if reported else None,
                    released_at=stamp,
                )
            own = _slice(release, PROGRAMME_SCOPE)
            before = _last_slice(last, PROGRAMME_SCOPE)
            written += publish(settings, count.programme, own, None, [], last=before, targets=None)
            for project, targets in zip(count.projects, project_targets, strict=True):
                alone = project.releases.get(audience)
                before = _last_slice(last, project.scope) or (alone[-1] if alone else None)
                mine = _slice(release, project.scope)
                written += publish(
                    project.settings, project.counted, mine, None, project.runs, last=before, targets=targets
                )
    return written


def _as_reported(
    store: Store,
    count: ProgrammeCount,
    joint: pd.DataFrame,
    history: dict[str, list[privacy.Release]],
    stamp: str,
) -> ledger.AsReported:
    """The joint table as reported (contract section 4): the programme's quarters and each project's
    freeze the same way, in the programme store's ledger. A project that kept a ledger of its own
    while it released alone brings it in, under its scoped names, the first time."""
    programme = count.programme.result
    assert programme.persons is not None, "counted with persons=True on the as-reported basis"
    persons = dict(programme.persons)
    groups = {name: ledger.merged_groups(programme.rows) for name in programme.persons}
    rows = store.ledger()
    held = {quarter[0] for quarter in rows.quarters}
    imported = LedgerRows()
    for project in count.projects:
        result = project.counted.result
        assert result.persons is not None
        project_groups = ledger.merged_groups(result.rows)
        for name, frame in result.persons.items():
            persons[scoped(project.scope, name)] = frame
            groups[scoped(project.scope, name)] = project_groups
        if not any(scoped(project.scope, name) in held for name in result.persons):
            _import_ledger(imported, project.ledger, project.scope)
    book = ledger.Ledger.of(
        LedgerRows(
            rows.quarters + imported.quarters, rows.cells + imported.cells, rows.persons + imported.persons
        )
    )
    releases = [release for found in history.values() for release in found]
    reported = ledger.as_reported(joint, persons, groups, book, releases, stamp=stamp)
    added = reported.added
    return dataclasses.replace(
        reported,
        added=LedgerRows(
            imported.quarters + added.quarters, imported.cells + added.cells, imported.persons + added.persons
        ),
    )


def _import_ledger(into: LedgerRows, own: LedgerRows, scope: str) -> None:
    """Add ``own`` (a project's ledger) to ``into`` under the project's scoped indicator names."""
    into.quarters.extend((scoped(scope, i), q, at, seeded) for i, q, at, seeded in own.quarters)
    into.cells.extend((scoped(scope, i), q, d, c, v) for i, q, d, c, v in own.cells)
    into.persons.extend((scoped(scope, i), key, q, sid, at, cats) for i, key, q, sid, at, cats in own.persons)


def _history(store: Store, projects: Sequence[ProjectCount], audience: str) -> list[privacy.Release]:
    """What ``audience`` was shown, oldest first: the programme's joint releases, and what each
    project released on its own (its indicators scoped) before it joined."""
    found = [stored_release(r) for r in store.releases(audience)]
    for project in projects:
        for release in map(stored_release, project.releases.get(audience, [])):
            table = release.table.assign(
                indicator=release.table["indicator"].map(lambda n, s=project.scope: scoped(s, n))
            )
            found.append(dataclasses.replace(release, table=table))
    return sorted(found, key=lambda release: release.released_at)


def _slice(release: privacy.Release, scope: str) -> privacy.Release:
    """The cells of one scope of a joint release, under their bare indicator names."""
    scopes = release.table["indicator"].map(lambda n: scope_of(n)[0])
    table = release.table[(scopes == scope).to_numpy()]
    table = table.assign(indicator=table["indicator"].map(lambda n: scope_of(n)[1])).reset_index(drop=True)
    return dataclasses.replace(release, table=table)


def _last_slice(last: StoredRelease | None, scope: str) -> StoredRelease | None:
    """One scope of the last joint release, as if saved on its own (its project's last run then)."""
    if last is None:
        return None
    sliced = _slice(stored_release(last), scope)
    if sliced.table.empty:
        return None
    cells = {c: sliced.table[c].tolist() for c in (*privacy.COLUMNS, "published")}
    last_run = int(sliced.table[LAST_RUN].iloc[0]) if LAST_RUN in sliced.table else 0
    return dataclasses.replace(last, last_run=last_run, cells=cells)
