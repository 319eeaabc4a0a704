"""Kobo sync against the fake server on loopback: full sync vs a bare requests+json loop, incremental sync.

Run by hand: ``.venv/bin/python benchmarks/bench_kobo_sync.py [N] [--page-latency S]`` (default
100,000 submissions). Each sync runs ``kobo-tip sync`` in its own process, which reports its wall
time and peak RSS, so the figures are the client's alone (the fake server lives in this process).
On loopback the fake server answers at once, so the comparison measures the client's CPU per
row. ``--page-latency`` then repeats the full sync and the bare loop with the server taking S
seconds over each data page, as a real server does, to show the sync keeping up with the network.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import _replace_sections  # noqa: E402
from fakes.kobo_server import FakeKobo  # noqa: E402
from kobo_tip.config import load_settings  # noqa: E402
from kobo_tip.sources.kobo import KoboSource  # noqa: E402

# Runs the command line in a child process and prints its own wall time and peak RSS. VmHWM, not
# ru_maxrss: Linux carries ru_maxrss over from the forking parent (this process, holding the data).
_CHILD = """
import re, sys, time
from pathlib import Path
from kobo_tip.cli import main
started = time.perf_counter()
code = main(sys.argv[1:])
seconds = time.perf_counter() - started
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]
print("BENCH", code, seconds, peak)
"""


class _Empty:
    """A SyncState of an empty store that wants no reconcile."""

    full = False
    reconcile_due = False

    def watermark(self, name: str) -> str | None:
        return None

    def known(self) -> dict[str, object]:
        return {}


def bare_loop(kobo: FakeKobo) -> tuple[int, float]:
    """The physical reference: keyset pages of 1000 with requests and json, nothing stored."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {kobo.token}"
    url = f"{kobo.url}/api/v2/assets/{kobo.asset_uid}/data/"
    started = time.perf_counter()
    last, rows = 0, 0
    while True:
        params = {"query": json.dumps({"_id": {"$gt": last}}), "sort": '{"_id":1}', "limit": "1000"}
        page = session.get(url, params=params, timeout=150).json()["results"]
        if not page:
            return rows, time.perf_counter() - started
        rows += len(page)
        last = page[-1]["_id"]


def sync(config: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB, summary line) of one ``kobo-tip sync`` in a child process."""
    command = [sys.executable, "-c", _CHILD, "sync", "-c", str(config), "--no-report"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    bench = next((line for line in done.stdout.splitlines() if line.startswith("BENCH")), None)
    if bench is None or bench.split()[1] != "0":
        raise SystemExit(f"sync failed:\n{done.stdout}\n{done.stderr}")
    _, _, seconds, rss_kib = bench.split()
    summary = next(line for line in done.stdout.splitlines() if line.startswith("Synced"))
    return float(seconds), int(rss_kib) // 1024, summary


def latency_run(kobo: FakeKobo, config: Path, env: dict[str, str], latency: float) -> None:
    """The bare loop and a full sync into a new store, the server taking ``latency`` s per data page."""
    kobo.before_data_request = lambda fake, number: time.sleep(latency)
    try:
        _, bare = bare_loop(kobo)
        store = load_settings(config).store_path
        for path in store.parent.glob(store.name + "*"):
            path.unlink()  # a new store: the sync fetches every row again
        seconds, rss, _ = sync(config, env)
    finally:
        kobo.before_data_request = None
    print(
        f"with {latency:.2f} s of server time a page: bare loop {bare:.2f} s, full sync {seconds:.2f} s "
        f"= {seconds / bare:.2f}x, peak RSS {rss} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=100_000)
    parser.add_argument("--page-latency", type=float, default=0.0, help="server seconds per data page")
    args = parser.parse_args()
    n = args.rows
    with FakeKobo() as kobo, tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        kobo.add_submissions(n)
        print(f"generated {n} submissions in {time.perf_counter() - started:.1f} s")
        bare_loop(kobo)  # warm the fake server's JSON cache so both runs pay the same server cost
        rows, bare = bare_loop(kobo)
        print(f"bare requests+json loop: {rows} rows in {bare:.2f} s ({rows / bare:,.0f} rows/s)")

        os.environ["KOBO_TOKEN"] = kobo.token
        started = time.perf_counter()
        rows = sum(len(batch.submissions) for batch in KoboSource(kobo.url, kobo.asset_uid).batches(_Empty()))
        alone = time.perf_counter() - started
        print(
            f"KoboSource alone (no store): {rows} rows in {alone:.2f} s = {alone / bare:.2f}x the bare loop"
        )

        root = Path(folder)
        (root / "forms").mkdir()
        for name in ("stakeholders.csv", "locations.csv"):
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
            "KOBO_TIP_SECRET": "benchmark-secret",
            "PYTHONPATH": str(REPO / "src"),
        }

        seconds, rss, summary = sync(config, env)
        print(f"full sync: {seconds:.2f} s = {seconds / bare:.2f}x the bare loop, peak RSS {rss} MiB")
        print(f"  {summary}")
        if args.page_latency:
            latency_run(kobo, config, env, args.page_latency)
        kobo.add_submissions(100)
        served = kobo.rows_served
        seconds, rss, summary = sync(config, env)
        print(
            f"incremental sync (100 new among {n}): {seconds:.2f} s, {kobo.rows_served - served} rows "
            f"served, peak RSS {rss} MiB"
        )
        print(f"  {summary}")


if __name__ == "__main__":
    main()
