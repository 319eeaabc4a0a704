"""Time a programme's joint donor and public release as its projects grow in number (by hand).

    .venv/bin/python benchmarks/bench_programme.py [--projects 2 4 8] [--rows 2000] [--timeout 600]

For each N of ``--projects``, in a process of its own (so its peak memory is its own, and a
run that passes ``--timeout`` seconds is stopped and said so): N projects like the demo's, each
``--rows`` synthetic submissions (kobo_tip.synthetic, another seed per project, so mostly other
people) with events over eight quarters (FY2026 Q1 to FY2027 Q4) and the 78 locations of
``forms/locations.csv``, synced into a store each; one programme of them all; then
``count_programme`` and one joint release of donor and public (``release_together``: the
suppression and audit of the programme's cells and every project's as one table, and the files).
It prints the time of each part, of ``privacy.protect`` within the release, and the peak memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_report import project
from generated import AS_OF, GeneratedSource
from measure import Timer, peak_mb

LAST_EVENT = dt.date(2027, 9, 30)  # eight quarters from the project's start (2025-10-01)
AUDIENCES = ("donor", "public")


def programme_folder(folder: Path, projects: int, rows: int) -> Path:
    """``projects`` synced projects under ``folder`` and a programme config naming them."""
    from kobo_tip.config import load_settings
    from kobo_tip.sync import run_sync

    names = []
    for number in range(projects):
        root = folder / f"project{number + 1}"
        root.mkdir(parents=True)
        settings = load_settings(project(root))
        run_sync(
            settings,
            progress=False,
            source=GeneratedSource(settings, rows, seed=100 + number, end_date=LAST_EVENT),
        )
        names.append(f'"{root.name}/kobo-tip.toml"')
    config = folder / "programme.toml"
    config.write_text(
        f'[programme]\nname = "Regional programme"\nprojects = [{", ".join(names)}]\n', encoding="utf-8"
    )
    return config


def run_one(projects: int, rows: int) -> None:
    """One programme of ``projects`` projects: build, count, release; print the figures."""
    from kobo_tip import privacy, programme
    from kobo_tip.store import open_store

    protecting: list[Timer] = []
    protect = privacy.protect

    def timed_protect(*args: Any, **kwargs: Any) -> privacy.Outcome:
        with Timer() as seconds:
            outcome = protect(*args, **kwargs)
        protecting.append(seconds)
        return outcome

    privacy.protect = timed_protect  # type: ignore[assignment]  # release_together calls it by module
    with tempfile.TemporaryDirectory() as temporary:
        with Timer() as building:
            config = programme_folder(Path(temporary), projects, rows)
        loaded = programme.load_programme(config)
        with Timer() as counting:
            count = programme.count_programme(loaded, AS_OF)
        cells = len(count.programme.result.counts) + sum(len(p.counted.result.counts) for p in count.projects)
        with open_store(loaded.settings) as store, Timer() as releasing:
            paths = programme.release_together(store, loaded, count, AUDIENCES)
        print(
            f"N={projects}: {projects} x {rows:,} submissions synced in {building}; "
            f"count_programme {counting}; {cells:,} count rows (all periods); "
            f"donor + public release {releasing} ({len(paths)} files), of which privacy.protect "
            f"{protecting[0] if protecting else '-'}; peak RSS {peak_mb():.0f} MB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--rows", type=int, default=2000, help="submissions per project")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for each N")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    os.environ.setdefault("KOBO_TIP_SECRET", "benchmark-secret-not-for-use")
    if args.one:
        run_one(args.projects[0], args.rows)
        return
    for projects in args.projects:
        command = [sys.executable, __file__, "--one", "--projects", str(projects), "--rows", str(args.rows)]
        try:
            subprocess.run(command, check=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"N={projects}: stopped after {args.timeout:.0f} s (the timeout)", flush=True)
        except subprocess.CalledProcessError as exc:
            print(f"N={projects}: failed (exit {exc.returncode})", flush=True)


if __name__ == "__main__":
    main()
