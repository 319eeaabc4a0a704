"""Programme reports: the projects of one award counted together, each person once, at their
first qualifying event in any project.

A programme config names its projects' configs and the rules the programme counts by; a project
that counts by other rules is refused, naming the key, and so is a store keyed with another
secret (the same person would then have two keys and count twice). Each project's store is read
as its own report reads it; the cases are counted as one project whose roster and locations are
all of theirs. The programme's own store keeps what its reports were shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

import kobo_tip
from kobo_tip import cases as cases_module
from kobo_tip import counting
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import ConfigError, StoreError
from kobo_tip.report.render import Counted, Provenance, write_audiences
from kobo_tip.store import RunInfo, open_store, utc_stamp
from kobo_tip.sync import FINGERPRINT, secret_fingerprint

# What every project must count by as the programme does: config key -> how a Settings holds it.
RULES: dict[str, Callable[[Settings], Any]] = {
    "fiscal_year_start_month": lambda s: s.project.fiscal_year_start_month,
    "age_bands": lambda s: list(s.indicator.age_bands),
    "person_categories": lambda s: list(s.indicator.person_categories),
    "require_approved": lambda s: s.indicator.require_approved,
    "require_event_after_training": lambda s: s.indicator.require_event_after_training,
    "location_level": lambda s: s.indicator.location_level,
}
KEYS = ("name", "projects", "store", "out_dir", "secret_env", *RULES)


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
        store_path=config.parent / str(table.get("store", "data/programme.sqlite")),
        store_url="",
        privacy=dataclasses.replace(
            first.privacy, secret_env=str(table.get("secret_env", first.privacy.secret_env))
        ),
        report=dataclasses.replace(
            first.report,
            out_dir=config.parent / str(table.get("out_dir", "reports")),
            audiences=("internal",),
        ),
        targets=None,
        dhis2=None,
    )


def count_programme(programme: Programme, as_of: dt.date) -> Counted:
    """Every project's cases counted as one: a person (one key) once, at the first qualifying event
    of any project. Submission ids are prefixed with the project's folder name."""
    secret = programme.settings.secret()
    fingerprint = secret_fingerprint(secret)
    frames, findings, runs = [], [], []
    for project in programme.projects:
        with open_store(project, create=False) as store:
            if store.meta_value(FINGERPRINT) != fingerprint:
                raise StoreError(
                    f"The store of {project.path} was not keyed with the programme's secret "
                    f"({programme.settings.privacy.secret_env}): its people would count again. Every project "
                    "of a programme keys with the same secret; sync it anew with that one."
                )
            table = store.answer_table()
            runs += store.runs(1)
        cases = cases_module.cases_from_table(table, project)
        label = project.path.parent.name + ":"
        frame = cases.frame.assign(submission_id=label + cases.frame["submission_id"].astype(str))
        frames.append(frame)
        findings.append(
            cases.findings.assign(submission_id=label + cases.findings["submission_id"].astype(str))
        )
    frame = pd.concat(frames, ignore_index=True)
    for column in frames[0].columns:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype):
            frame[column] = pd.api.types.union_categoricals([f[column] for f in frames])
    joined = cases_module.Cases(frame=frame, findings=pd.concat(findings, ignore_index=True))
    result = counting.count_indicator(joined, programme.settings, as_of)
    return Counted(result, _provenance(programme, runs, as_of))


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


def render_programme(programme: Programme, as_of: dt.date | None = None) -> list[Path]:
    """The programme's internal report. Outside audiences are not released yet: their cells relate
    to every project's releases, and the joint audit is not built."""
    counted = count_programme(programme, as_of or dt.date.today())
    with open_store(programme.settings) as store:
        return write_audiences(store, programme.settings, counted, ["internal"])
