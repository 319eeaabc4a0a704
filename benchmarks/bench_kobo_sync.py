"""Kobo sync against the fake server on loopback: full sync vs a bare requests+json loop, incremental sync.

Run by hand: ``.venv/bin/python benchmarks/bench_kobo_sync.py [N] [--rounds R] [--page-latency S]``
(default 100,000 submissions, 3 rounds). The bare loop and each sync run in their own process,
so both pay the same costs (the fake server lives in this process, on the other core) and each
reports its own wall time. A round runs the bare loop, then a full sync into a new store: this
machine's speed drifts by tens of percent from minute to minute, so each ratio compares two runs
made moments apart, and the median of the rounds is the figure. ``--page-latency`` then repeats one
round with the server taking S seconds over each data page, as a real server does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import _replace_sections  # noqa: E402
from fakes.kobo_server import FakeKobo  # noqa: E402
from kobo_tip.config import load_settings  # noqa: E402

# Runs the command line in a child process and prints its own wall time and peak RSS, and the
# sync worker's. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent. The
# modules a sync uses are imported before the clock starts, as the bare loop imports requests
# before its own: both clocks time the work, not Python loading libraries.
_CHILD = """
import re, resource, sys, time
from pathlib import Path
from kobo_tip.cli import main
import kobo_tip.sync, kobo_tip.rows, kobo_tip.sources.kobo
started, cpu = time.perf_counter(), time.process_time()
code = main(sys.argv[1:])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]
worker = resource.getrusage(resource.RUSAGE_CHILDREN)
print("BENCH", code, seconds, peak, worker.ru_maxrss, cpu, worker.ru_utime + worker.ru_stime)
"""

# The physical reference: keyset pages of 1000 with requests and json, nothing kept.
_BARE = """
import json, sys, time
import requests
url, token = sys.argv[1:]
session = requests.Session()
session.headers["Authorization"] = f"Token {token}"
started, cpu = time.perf_counter(), time.process_time()
last, rows = 0, 0
while True:
    params = {"query": json.dumps({"_id": {"$gt": last}}), "sort": '{"_id":1}', "limit": "1000"}
    page = session.get(url, params=params, timeout=150).json()["results"]
    if not page:
        break
    rows += len(page)
    last = page[-1]["_id"]
print("BARE", rows, time.perf_counter() - started, time.process_time() - cpu)
"""


class BareRun(NamedTuple):
    rows: int
    seconds: float
    cpu: float


class SyncRun(NamedTuple):
    seconds: float
    cpu: float  # the main process's, then the worker's
    worker_cpu: float
    rss: int  # MiB
    worker_rss: int
    summary: str


def bare_loop(kobo: FakeKobo) -> BareRun:
    """The bare loop over every page, in its own process."""
    url = f"{kobo.url}/api/v2/assets/{kobo.asset_uid}/data/"
    done = subprocess.run(
        [sys.executable, "-c", _BARE, url, kobo.token], check=False, capture_output=True, text=True
    )
    line = next((line for line in done.stdout.splitlines() if line.startswith("BARE")), None)
    if line is None:
        raise SystemExit(f"bare loop failed:\n{done.stderr}")
    _, rows, seconds, cpu = line.split()
    return BareRun(int(rows), float(seconds), float(cpu))


def sync(config: Path, env: dict[str, str]) -> SyncRun:
    """One ``kobo-tip sync`` in its own process."""
    command = [sys.executable, "-c", _CHILD, "sync", "-c", str(config), "--no-report"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    bench = next((line for line in done.stdout.splitlines() if line.startswith("BENCH")), None)
    if bench is None or bench.split()[1] != "0":
        raise SystemExit(f"sync failed:\n{done.stdout}\n{done.stderr}")
    _, _, seconds, rss_kib, worker_kib, cpu, worker_cpu = bench.split()
    summary = next(line for line in done.stdout.splitlines() if line.startswith("Synced"))
    return SyncRun(
        float(seconds), float(cpu), float(worker_cpu), int(rss_kib) // 1024, int(worker_kib) // 1024, summary
    )


def new_store(config: Path) -> None:
    store = load_settings(config).store.path
    for path in store.parent.glob(store.name + "*"):
        path.unlink()  # a new store: the next sync fetches every row again


def full_round(kobo: FakeKobo, config: Path, env: dict[str, str]) -> float:
    """The bare loop, then a full sync into a new store; prints both, returns their ratio.

    CPU times are printed too: on a shared machine they move less than wall times, and the sync's
    two processes need both cores, which a busy host does not always give.
    """
    bare = bare_loop(kobo)
    new_store(config)
    run = sync(config, env)
    new = run.summary.split(": ", 1)[1].split(",")[0]
    print(
        f"  bare loop {bare.rows} rows in {bare.seconds:.2f} s; full sync {run.seconds:.2f} s = "
        f"{run.seconds / bare.seconds:.2f}x ({new}); CPU {bare.cpu:.2f} s against "
        f"{run.cpu:.2f} + {run.worker_cpu:.2f} s (main + worker); peak RSS {run.rss} MiB "
        f"(worker {run.worker_rss} MiB)"
    )
    return run.seconds / bare.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="bare loop + full sync pairs")
    parser.add_argument("--page-latency", type=float, default=0.0, help="server seconds per data page")
    args = parser.parse_args()
    n = args.rows
    with FakeKobo() as kobo, tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        kobo.add_submissions(n)
        print(f"generated {n} submissions in {time.perf_counter() - started:.1f} s")
        bare_loop(kobo)  # warm the fake server's JSON cache so every run pays the same server cost

        root = Path(folder)
        (root / "forms").mkdir()
        for name in ("stakeholders.csv", "locations.csv", "referral_directory.csv"):
            (root / "forms" / name).write_bytes((REPO / "forms" / name).read_bytes())
        source = f'kind = "kobo"\nurl = "{kobo.url}"\nasset_uid = "{kobo.asset_uid}"'
        text = _replace_sections(
            (REPO / "config.example.toml").read_text(encoding="utf-8"), {"source": source}
        )
        config = root / "kobo-tip.toml"
        config.write_text(text, encoding="utf-8")
        env = {
            **os.environ,
            "KOBO_TOKEN": kobo.token,
            "KOBO_TIP_SECRET": "benchmark-secret-not-for-use",
            "PYTHONPATH": str(REPO / "src"),
        }

        print(f"full sync vs bare loop, {args.rounds} rounds:")
        ratios = [full_round(kobo, config, env) for _ in range(args.rounds)]
        print(
            f"full sync: median {statistics.median(ratios):.2f}x the bare loop (rounds: "
            f"{', '.join(f'{ratio:.2f}x' for ratio in ratios)})"
        )
        if args.page_latency:
            print(f"with {args.page_latency:.2f} s of server time a page:")
            kobo.before_data_request = lambda fake, number: time.sleep(args.page_latency)
            try:
                full_round(kobo, config, env)
            finally:
                kobo.before_data_request = None
        kobo.add_submissions(100)
        served = kobo.rows_served
        run = sync(config, env)
        print(
            f"incremental sync (100 new among {n}): {run.seconds:.2f} s, {kobo.rows_served - served} rows "
            f"served, peak RSS {run.rss} MiB"
        )
        print(f"  {run.summary}")


if __name__ == "__main__":
    main()
