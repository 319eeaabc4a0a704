"""``kobo-tip demo``: the whole pipeline on generated data, with no server, network or setup.

Writes a project folder (config, roster, locations), builds the form, generates two exports of
realistic submissions (the second with edits, deletions, reviews and late entries), syncs each
one and renders every audience after each sync, so the restatement log has something to show.
The person-key secret is random, lives in this process's environment for the run only, and is
never written or printed.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kobo_tip import periods, synthetic
from kobo_tip.config import (
    DEFAULT_CONFIG_NAME,
    ProjectSettings,
    Settings,
    load_settings,
    write_locations,
    write_referral_directory,
    write_roster,
)
from kobo_tip.errors import KoboTipError, UsageError
from kobo_tip.form import build_form
from kobo_tip.init_project import (
    EXAMPLE_REFERRAL_DIRECTORY,
    LOCATIONS_NAME,
    REFERRAL_DIRECTORY_NAME,
    ROSTER_NAME,
    STARTER_CONFIG,
    subdivision_locations,
)
from kobo_tip.periods import FISCAL_YEAR, QUARTER
from kobo_tip.report import render_reports
from kobo_tip.sync import SyncSummary, run_sync
from kobo_tip.targets import COLUMNS as TARGET_COLUMNS
from kobo_tip.targets import project_periods

logger = logging.getLogger("kobo_tip")

DEFAULT_FOLDER = Path("kobo-tip-demo")
EXPORT_NAME = "data/export.json"
TARGETS_NAME = "forms/targets.csv"
COUNTRY = "th"
QUARTERS = 8
ROSTER_SIZE = 30
# Marks a folder as the demo's own, so a second run may replace its data and reports.
_MARKER = ".kobo-tip-demo"
_FIRST_EXPORT_SHARE = 0.92  # the rest arrives with the second export: new and late entries
_REPLACED = ("data", "reports", "forms", DEFAULT_CONFIG_NAME)


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put things, and what its two syncs did."""

    folder: Path
    config_path: Path
    internal_report: Path
    donor_report: Path
    public_report: Path
    files: tuple[Path, ...]  # every report file of the second rendering
    submissions: int  # in the final export
    syncs: tuple[SyncSummary, SyncSummary]
    form_validated: bool
    messages: tuple[str, ...]  # the form build's warnings, also logged


def run_demo(
    folder: Path | None = None, *, seed: int = 2026, n: int = 2000, as_of: dt.date | None = None
) -> DemoResult:
    """Write a demo project into ``folder`` (default ./kobo-tip-demo), run it, return the reports.

    The data cover eight quarters ending with the last quarter ended by ``as_of`` (default
    today). Raises UsageError when ``folder`` holds files that are not an earlier demo's.
    """
    root = Path(folder or DEFAULT_FOLDER).absolute()
    run_date = as_of or dt.date.today()
    if n < 100:
        raise UsageError(f"The demo needs at least 100 submissions to show anything; got {n}.")
    _prepare_folder(root)
    first, last = _demo_window(run_date)
    roster = synthetic.generate_roster(ROSTER_SIZE, seed=seed, project_start=first)
    locations = subdivision_locations(COUNTRY)
    write_roster(roster, root / ROSTER_NAME)
    write_locations(locations, root / LOCATIONS_NAME)
    write_referral_directory(EXAMPLE_REFERRAL_DIRECTORY, root / REFERRAL_DIRECTORY_NAME)
    settings = _write_config(root, start=first, end=_project_end(first))
    logger.info(
        "Demo project written in %s: %d stakeholders, %d locations.", root, len(roster), len(locations)
    )

    build = build_form(settings)
    for warning in build.warnings:  # without Java: the form was not checked by ODK Validate
        logger.warning(warning)

    submissions = synthetic.generate_submissions(
        n,
        seed=seed,
        roster=roster,
        locations=locations,
        start_date=first,
        end_date=last,
        as_of=run_date,
        country=COUNTRY,
        disability=settings.form.disability,
        ethnicities=settings.form.ethnicities,
        referral_orgs=[org.id for org in settings.form.referral_directory],
    )
    cut = round(len(submissions) * _FIRST_EXPORT_SHARE)
    # The first report is the one published when the first export was taken.
    first_as_of = dt.date.fromisoformat(submissions[cut - 1]["_submission_time"][:10]) + dt.timedelta(days=1)
    revision = synthetic.revise_submissions(submissions[:cut], seed=seed)
    final = revision.submissions + submissions[cut:]
    logger.info(
        "Generated %d submissions with events from %s to %s; the second export edits %d, deletes %d, "
        "reviews %d and adds %d.",
        n,
        first,
        last,
        len(revision.edited),
        len(revision.deleted),
        len(revision.reviewed),
        n - cut,
    )
    export = settings.source.path
    assert export is not None  # the demo config names it

    with _secret_for_this_run(settings.privacy.secret_env):
        synthetic.write_export(submissions[:cut], export)
        first_sync = run_sync(settings, progress=False)
        logger.info(first_sync.line())
        render_reports(settings, as_of=min(first_as_of, run_date))
        synthetic.write_export(final, export)
        second_sync = run_sync(settings, progress=False)
        logger.info(second_sync.line())
        files = render_reports(settings, as_of=run_date)

    out = settings.report.out_dir
    return DemoResult(
        folder=root,
        config_path=settings.path,
        internal_report=out / "internal" / "report.html",
        donor_report=out / "donor" / "report.html",
        public_report=out / "public" / "report.html",
        files=tuple(files),
        submissions=len(final),
        syncs=(first_sync, second_sync),
        form_validated=build.validated,
        messages=tuple(build.warnings),
    )


def _prepare_folder(root: Path) -> None:
    """Create ``root``, or empty an earlier demo's data there; never touch anyone else's files."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file: give the demo a folder path.")
    if root.is_dir() and any(root.iterdir()) and not (root / _MARKER).exists():
        raise UsageError(f"{root} is not empty and is not a kobo-tip demo: choose a new or empty folder.")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name in _REPLACED:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        (root / _MARKER).write_text(
            "Written by 'kobo-tip demo'; running it again replaces this folder's data.\n"
        )
    except OSError as exc:
        raise UsageError(f"Cannot write the demo into {root}: {exc.strerror}.") from None


def _demo_window(as_of: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the eight quarters that end with the last one ended by ``as_of``."""
    month = _starter_fiscal_month()
    quarter = periods.quarter_of(as_of, month)
    if quarter.end > as_of:
        quarter = periods.quarter_of(quarter.start - dt.timedelta(days=1), month)
    last = quarter.end
    for _ in range(QUARTERS - 1):
        quarter = periods.quarter_of(quarter.start - dt.timedelta(days=1), month)
    return quarter.start, last


def _project_end(start: dt.date) -> dt.date:
    """A three-year project: the demo's eight quarters are its first two years."""
    return start.replace(year=start.year + 3) - dt.timedelta(days=1)


def _starter_fiscal_month() -> int:
    match = re.search(r"^fiscal_year_start_month = (\d+)", STARTER_CONFIG.read_text("utf-8"), re.MULTILINE)
    return int(match.group(1)) if match else 10


def _write_config(root: Path, *, start: dt.date, end: dt.date) -> Settings:
    """The starter config with the demo's dates, a file source and all three audiences."""
    text = STARTER_CONFIG.read_text(encoding="utf-8")
    edits = (
        (r'^name = ".*"$', 'name = "Safe Migration Project (demo data)"'),
        (r'^country = "[a-z]{2}"$', f'country = "{COUNTRY}"'),
        (r"^start_date = .*$", f"start_date = {start.isoformat()}"),
        (r"^end_date = .*$", f"end_date = {end.isoformat()}"),
        (
            r'^kind = "kobo"$',
            "# The demo reads a Kobo data-API export written by the generator: no server.\n"
            f'kind = "file"\npath = "{EXPORT_NAME}"',
        ),
        (r"^audiences = \[.*\]$", 'audiences = ["internal", "donor", "public"]'),
    )
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
        if count != 1:
            raise KoboTipError(f"The starter config {STARTER_CONFIG} has no line matching {pattern}.")
    config = root / DEFAULT_CONFIG_NAME
    config.write_text(text, encoding="utf-8")
    _write_targets(root / TARGETS_NAME, load_settings(config).project)
    config.write_text(text + f'\n[targets]\npath = "{TARGETS_NAME}"\nmargin_percent = 10\n', encoding="utf-8")
    return load_settings(config)


# The demo's M&E plan: per quarter, fiscal year and LOP, for the three indicators, and a LOP
# target for women and girls (about what the generator produces, so some periods are flagged).
_QUARTER_TARGETS = {"identified_or_referred": 150, "identified": 130, "referred": 110}


def _write_targets(path: Path, project: ProjectSettings) -> None:
    rows = []
    for name, per_quarter in _QUARTER_TARGETS.items():
        quarters = 0
        for period in project_periods(project):
            if period.kind == QUARTER:
                quarters += 1
                rows.append((name, period.label, "total", "all", per_quarter, ""))
            elif period.kind == FISCAL_YEAR:
                rows.append((name, period.label, "total", "all", 4 * per_quarter, "M&E plan, revision 2"))
            else:
                rows.append(
                    (name, period.label, "total", "all", quarters * per_quarter, "M&E plan, revision 2")
                )
    rows.append(("identified_or_referred", "LOP", "gender", "female", 900, "donor priority: women and girls"))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TARGET_COLUMNS)
        writer.writerows(rows)


@contextmanager
def _secret_for_this_run(env_name: str) -> Iterator[None]:
    """A random person-key secret in this process's environment, restored afterwards."""
    before = os.environ.get(env_name)
    os.environ[env_name] = secrets.token_hex(32)
    try:
        yield
    finally:
        if before is None:
            del os.environ[env_name]
        else:
            os.environ[env_name] = before
