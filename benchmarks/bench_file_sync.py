"""A file-source sync of a large Kobo JSON export against a bare json.load of the same file (run by hand).

    .venv/bin/python benchmarks/bench_file_sync.py [--rows 1000000] [--rounds 1] [--resync] [--keep DIR]

Writes a synthetic Kobo data-API export of ``--rows`` submissions (``kobo_tip.synthetic``, one
``{"count", "next", "previous", "results"}`` page, streamed to disk row by row), then measures, each
in a process of its own and timed after its imports:

(a) a bare ``json.load`` of the file: wall and CPU time, peak RSS;
(b) a full sync of it into a new store (``run_sync`` with ``[source] kind = "file"``): wall and CPU
    time of the sync and of its worker process, peak RSS of both; and the ratio sync / bare;
(c) a second sync of the unchanged file, which the file's fingerprint skips;
(d) with ``--resync``, a sync after the file is touched (same rows, new modification time): every
    row is read again and reconciled against the store's.

``--rounds`` repeats (a) and (b): the machine's speed drifts, so each ratio compares two runs made
moments apart. With ``--keep DIR`` the project, export and store stay in DIR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from measure import Timer, peak_mb

from kobo_tip import synthetic
from kobo_tip.config import load_settings

REPO = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2027, 11, 15)

# Each child prints one line: BENCH, wall and CPU seconds (its own; with the worker's for a sync),
# peak RSS (VmHWM: Linux carries ru_maxrss over from a forking parent) and, for a sync, the
# worker's CPU seconds and peak RSS (KiB) and the summary line.
_BARE = """
import json, re, sys
from pathlib import Path
from measure import Timer
with Timer() as timer, open(sys.argv[1], encoding="utf-8") as handle:
    document = json.load(handle)
rows = len(document["results"])
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]
print("BENCH", timer.wall, timer.cpu, peak, rows)
"""

_SYNC = """
import re, resource, sys
from pathlib import Path
from measure import Timer
from kobo_tip.config import load_settings
from kobo_tip.sync import few_collections, run_sync
import kobo_tip.sources.files, kobo_tip.worker
settings = load_settings(sys.argv[1])
with Timer() as timer, few_collections():  # as the sync command runs it
    summary = run_sync(settings, progress=False)
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]
worker = resource.getrusage(resource.RUSAGE_CHILDREN)
print("BENCH", timer.wall, timer.cpu, peak, worker.ru_utime + worker.ru_stime, worker.ru_maxrss)
print(summary.line())
"""


class Run(NamedTuple):
    wall: float
    cpu: float  # for a sync: both processes
    rss: int  # MiB
    worker_cpu: float = 0.0
    worker_rss: int = 0
    summary: str = ""


def child(code: str, *args: str) -> Run:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "benchmarks")]),
        "KOBO_TIP_SECRET": os.environ.get("KOBO_TIP_SECRET", "benchmark-secret-not-for-use"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    lines = done.stdout.splitlines()
    bench = next((line.split()[1:] for line in lines if line.startswith("BENCH")), None)
    if done.returncode != 0 or bench is None:
        raise SystemExit(f"a benchmark child failed:\n{done.stdout}\n{done.stderr}")
    summary = next((line for line in lines if line.startswith("Synced")), "")
    if code is _BARE:
        return Run(float(bench[0]), float(bench[1]), int(bench[2]) // 1024)
    return Run(
        float(bench[0]),
        float(bench[1]),
        int(bench[2]) // 1024,
        float(bench[3]),
        int(bench[4]) // 1024,
        summary,
    )


def project(folder: Path) -> Path:
    """A project whose source is the export file ``data/export.json``."""
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('kind = "kobo"', 'kind = "file"\npath = "data/export.json"')
    text = text.replace('"forms/', f'"{REPO}/forms/')
    config = folder / "kobo-tip.toml"
    config.write_text(text, encoding="utf-8")
    return config


def write_export(config: Path, rows: int) -> Path:
    """The Kobo page ``synthetic.write_export`` writes, streamed: no list of all the rows."""
    settings = load_settings(config)
    assert settings.source.path is not None
    path = settings.source.path
    path.parent.mkdir(parents=True, exist_ok=True)
    submissions = synthetic.Scenario(
        rows,
        seed=11,
        roster=settings.form.roster,
        locations=settings.form.locations,
        start_date=settings.project.start_date,
        end_date=settings.project.end_date,
        as_of=AS_OF,
    ).submissions()
    with path.open("w", encoding="utf-8") as handle:
        handle.write(f'{{"count": {rows}, "next": null, "previous": null, "results": [')
        for number, submission in enumerate(submissions):
            handle.write(", " if number else "")
            handle.write(json.dumps(submission, ensure_ascii=False))
        handle.write("]}")
    return path


def new_store(config: Path) -> None:
    store = load_settings(config).store.path
    for path in store.parent.glob(store.name + "*"):
        path.unlink()


def show_sync(label: str, run: Run) -> None:
    print(
        f"{label}: {run.wall:.2f} s wall, {run.cpu:.2f} s CPU (worker {run.worker_cpu:.2f} s); "
        f"peak RSS {run.rss} MiB, worker {run.worker_rss} MiB"
    )
    print(f"  {run.summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1, help="bare json.load + full sync pairs")
    parser.add_argument("--resync", action="store_true", help="also sync the touched file again")
    parser.add_argument("--keep", type=Path, help="folder for the project, export and store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        config = project(folder)
        with Timer() as writing:
            path = write_export(config, args.rows)
        print(
            f"export of {args.rows:,} submissions: {path.stat().st_size / 2**20:,.0f} MiB written in "
            f"{writing}; peak RSS {peak_mb():.0f} MB"
        )
        ratios = []
        for _ in range(args.rounds):
            bare = child(_BARE, str(path))
            print(f"bare json.load: {bare.wall:.2f} s wall, {bare.cpu:.2f} s CPU; peak RSS {bare.rss} MiB")
            new_store(config)
            full = child(_SYNC, str(config))
            show_sync("full sync", full)
            ratios.append(full.wall / bare.wall)
            print(f"  ratio sync / bare json.load: {ratios[-1]:.2f}x wall, {full.cpu / bare.cpu:.2f}x CPU")
        if len(ratios) > 1:
            print(f"ratios: {', '.join(f'{ratio:.2f}x' for ratio in ratios)}; best {min(ratios):.2f}x")
        show_sync("second sync, file unchanged", child(_SYNC, str(config)))
        if args.resync:
            os.utime(path)  # same content, new time: the size and time no longer match
            show_sync("sync of the touched file (every row read and reconciled)", child(_SYNC, str(config)))


if __name__ == "__main__":
    main()
