"""`kobo-tip serve` under Kobo's pushes: from a push to the updated internal report, and sustained pushes.

Run by hand: ``.venv/bin/python benchmarks/bench_serve.py [--rows 100000] [--rounds 5]
[--steady 20] [--pushes 5000] [--clients 16]``.

The fake Kobo server of the tests (in this process) holds ``--rows`` submissions; ``kobo-tip serve``
runs in a process of its own (``[serve]`` defaults, but no second poll), syncs them at start and
renders the internal report. Then:

1. ``--rounds`` times, one new submission pushed and timed until ``reports/internal/report.html``
   is replaced (the folder swap points the link elsewhere): the push's HTTP round trip, the render
   (the ``ms`` of the service's ``rendered`` log line) and the rest, the wait (render_delay_seconds,
   then the render thread waking up). Goal: under 5 s with 100,000 stored, the delay included.
2. For ``--steady`` seconds, one new submission pushed every 50 ms by one client (a render runs
   every few seconds meanwhile): the latency of the pushes answered while a render ran (a render's
   span is taken from its ``rendered`` line: seen by a thread polling the log, less its ``ms``).
   Goal: none over 50 ms (the render runs in a child process; it used to hold the service's GIL).
3. ``--pushes`` distinct new submissions pushed by ``--clients`` threads, each retrying a 503 as
   Kobo does: pushes/s, latency from first attempt to answer, and each one stored exactly once.

The clients and the fake server share this process, and the machine's cores, with the service.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import write_project  # noqa: E402
from fakes.kobo_server import FakeKobo  # noqa: E402
from kobo_tip.config import load_settings  # noqa: E402
from kobo_tip.store import open_store  # noqa: E402

HOOK_USER, HOOK_PASSWORD = "kobo-hook", "benchmark-hook-password-0123"
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def events(log: Path) -> list[dict[str, Any]]:
    """The service's JSON log lines so far (a line still being written is left for later)."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("\n")]


def wait_for_event(log: Path, name: str, after: int, seconds: float) -> tuple[dict[str, Any], int]:
    """The first ``name`` event after the first ``after`` log events, and its position."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [(n, e) for n, e in enumerate(events(log)) if n >= after and e["event"] == name]
        if found:
            return found[0][1], found[0][0] + 1
        time.sleep(0.02)
    raise SystemExit(f"no {name} event within {seconds:.0f} s:\n{log.read_text(encoding='utf-8')[-3000:]}")


def report_version(path: Path) -> tuple[str, int, int] | None:
    """Where the report's link points, its inode and mtime: any change means a new report."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return os.path.realpath(path), info.st_ino, info.st_mtime_ns


def fresh(kobo: FakeKobo, n: int) -> list[bytes]:
    """``n`` new submissions on the fake server, as its REST Service would push them (JSON)."""
    return [json.dumps(copy.deepcopy(kobo.docs[sid])).encode() for sid in kobo.add_submissions(n)]


def proc_status(pid: int, field: str) -> int:
    """A ``kB`` figure of /proc/<pid>/status (VmHWM: the peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push_until_answered(session: requests.Session, hook: str, body: bytes) -> tuple[int, float, int]:
    """Push as Kobo's REST Service does, again after a 503 or a lost connection.

    Returns the last status, the seconds from the first attempt to the answer and the retries."""
    started = time.perf_counter()
    for retries in range(100):
        try:
            answer = session.post(hook, data=body, headers=JSON, auth=(HOOK_USER, HOOK_PASSWORD), timeout=60)
        except requests.ConnectionError:
            time.sleep(0.2)
            continue
        if answer.status_code != 503:
            return answer.status_code, time.perf_counter() - started, retries
        time.sleep(0.2)
    return 0, time.perf_counter() - started, 100


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def rounds_to_report(kobo: FakeKobo, hook: str, log: Path, report: Path, rounds: int) -> None:
    """Part 1: one push at a time, timed until the internal report is replaced."""
    session = requests.Session()
    delay = load_settings(report.parents[2] / "kobo-tip.toml").serve.render_delay_seconds
    totals, answers, renders, waits, cpus = [], [], [], [], []
    for _ in range(rounds):
        (body,) = fresh(kobo, 1)
        before, seen = report_version(report), len(events(log))
        started = time.perf_counter()
        answer = session.post(hook, data=body, headers=JSON, auth=(HOOK_USER, HOOK_PASSWORD), timeout=60)
        answered = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"push answered {answer.status_code}: {answer.text}")
        while report_version(report) == before:
            if time.perf_counter() - started > 600:
                raise SystemExit("the internal report was not replaced within 600 s")
            time.sleep(0.01)
        total = time.perf_counter() - started
        rendered, _ = wait_for_event(log, "rendered", seen, 60)
        totals.append(total)
        answers.append(answered)
        renders.append(rendered["ms"] / 1000)
        cpus.append(rendered.get("cpu_ms", 0) / 1000)
        waits.append(total - answered - rendered["ms"] / 1000)
        print(
            f"  round: {total:.2f} s = push answered {ms(answered)} + wait {ms(waits[-1])} "
            f"+ render {ms(renders[-1])} ({', '.join(rendered['audiences'])}; CPU {ms(cpus[-1])})"
        )
    print(
        f"push to updated internal report: median {statistics.median(totals):.2f} s, max {max(totals):.2f} s "
        f"over {rounds} rounds (push answered median {ms(statistics.median(answers))}, wait "
        f"{ms(statistics.median(waits))} with render_delay_seconds = {delay:g}, render "
        f"{ms(statistics.median(renders))}, its CPU {ms(statistics.median(cpus))}); goal < 5 s"
    )


def during_renders(kobo: FakeKobo, hook: str, log: Path, seconds: float, every: float = 0.05) -> None:
    """Part 2: one push every ``every`` seconds for ``seconds``; the latency of those that overlapped
    a render."""
    bodies = fresh(kobo, int(seconds / every))
    session = requests.Session()
    renders: list[tuple[float, float]] = []  # (start, end) on this process's clock
    done = threading.Event()

    def watch() -> None:
        seen = len(events(log))
        while not done.is_set():
            later = events(log)
            for event in later[seen:]:
                if event["event"] == "rendered":
                    end = time.perf_counter()
                    renders.append((end - event["ms"] / 1000, end))
            seen = len(later)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    spans = []
    started = time.perf_counter()
    for number, body in enumerate(bodies):
        time.sleep(max(0.0, started + number * every - time.perf_counter()))
        sent = time.perf_counter()
        answer = session.post(hook, data=body, headers=JSON, auth=(HOOK_USER, HOOK_PASSWORD), timeout=60)
        if answer.status_code != 200:
            raise SystemExit(f"push answered {answer.status_code}: {answer.text}")
        spans.append((sent, time.perf_counter()))
    # A render that began during the pushes is measured when it ends: its span is known then.
    rendering = time.perf_counter()
    while len(renders) == 0 and time.perf_counter() - rendering < 600:
        time.sleep(0.1)
    time.sleep(0.2)
    done.set()
    watcher.join()
    during = sorted(end - sent for sent, end in spans if any(sent < b and a < end for a, b in renders))
    every_latency = sorted(end - sent for sent, end in spans)
    if not during:
        print(
            f"pushes during renders: no render overlapped the {len(spans)} pushes (p50 "
            f"{ms(statistics.median(every_latency))}, max {ms(every_latency[-1])})"
        )
        return
    slow = sum(1 for latency in during if latency > 0.05)
    print(
        f"pushes during renders: {len(during)} of {len(spans)} pushes (one every {ms(every)}) overlapped "
        f"{len(renders)} renders ({', '.join(f'{ms(b - a)}' for a, b in renders)}): latency p50 "
        f"{ms(statistics.median(during))}, max {ms(during[-1])}, {slow} over 50 ms; all pushes p50 "
        f"{ms(statistics.median(every_latency))}, max {ms(every_latency[-1])}; goal none over 50 ms"
    )


def sustained(kobo: FakeKobo, hook: str, log: Path, pid: int, pushes: int, clients: int) -> list[str]:
    """Part 3: ``pushes`` distinct submissions from ``clients`` threads; returns their ids."""
    docs = fresh(kobo, pushes)
    ids = [str(json.loads(body)["_id"]) for body in docs]
    local = threading.local()

    def push(body: bytes) -> tuple[int, float, int]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return push_until_answered(local.session, hook, body)

    seen = len(events(log))
    cpu, here = cpu_seconds(pid), time.process_time()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        started = time.perf_counter()
        results = list(pool.map(push, docs))
        seconds = time.perf_counter() - started
    cpu, here = cpu_seconds(pid) - cpu, time.process_time() - here
    codes = collections.Counter(code for code, _, _ in results)
    latencies = sorted(latency for _, latency, _ in results)
    retried = sum(1 for _, _, retries in results if retries)
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(
        f"sustained: {pushes} pushes by {clients} clients in {seconds:.2f} s: "
        f"{pushes / seconds:.0f} pushes/s, "
        f"latency p50 {ms(statistics.median(latencies))}, p95 {ms(p95)}, max {ms(latencies[-1])}; "
        f"answers {dict(codes)}, {retried} pushes retried"
    )
    later = events(log)[seen:]
    groups = [e for e in later if e["event"] == "pushes_stored"]
    renders = [e["ms"] for e in later if e["event"] == "rendered"]
    if groups:
        print(
            f"  {len(groups)} commits of {statistics.mean(e['pushes'] for e in groups):.1f} pushes on "
            f"average (largest {max(e['pushes'] for e in groups)}), commit median "
            f"{statistics.median(e['ms'] for e in groups):.0f} ms, max {max(e['ms'] for e in groups)} ms; "
            f"{len(renders)} renders meanwhile ({', '.join(f'{r} ms' for r in renders)})"
        )
    print(f"  CPU: service {cpu:.1f} s, this process (clients, fake Kobo) {here:.1f} s, in {seconds:.1f} s")
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="submissions stored before the pushes")
    parser.add_argument("--rounds", type=int, default=5, help="single pushes timed to the new report")
    parser.add_argument("--steady", type=float, default=20, help="seconds of one push every 50 ms")
    parser.add_argument("--pushes", type=int, default=5000, help="distinct submissions pushed at once")
    parser.add_argument("--clients", type=int, default=16, help="concurrent pushing clients")
    args = parser.parse_args()
    with FakeKobo() as kobo, tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        kobo.add_submissions(args.rows)
        print(f"fake Kobo: {args.rows} submissions generated in {time.perf_counter() - started:.1f} s")
        config = write_project(
            Path(folder) / "project",
            source=f'kind = "kobo"\nurl = "{kobo.url}"\nasset_uid = "{kobo.asset_uid}"',
            serve="poll_minutes = 600",  # the poll at start only: nothing else competes with the pushes
        )
        settings = load_settings(config)
        report = settings.report.out_dir / "internal" / "report.html"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src"),
            "KOBO_TOKEN": kobo.token,
            "KOBO_TIP_SECRET": "benchmark-secret-not-for-use",
            "KOBO_TIP_HOOK_USERNAME": HOOK_USER,
            "KOBO_TIP_HOOK_PASSWORD": HOOK_PASSWORD,
            "KOBO_TIP_STATUS_TOKEN": "benchmark-status-token-0123",
        }
        port, log = free_port(), Path(folder) / "serve.log"
        hook = f"http://127.0.0.1:{port}/hooks/kobo/{kobo.asset_uid}"
        command = [sys.executable, "-m", "kobo_tip", "serve", "-c", str(config), "--port", str(port)]
        with log.open("wb") as output:
            started = time.perf_counter()
            process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        try:
            synced, after = wait_for_event(log, "synced", 0, 1800)
            rendered, after = wait_for_event(log, "rendered", after, 600)
            if not (report.parent / "counts.csv").exists():
                raise SystemExit("rendered, but no internal counts.csv")
            startup_peak = proc_status(process.pid, "VmHWM") // 1024
            health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
            print(
                f"startup: synced {synced['new']} new in {synced['ms'] / 1000:.1f} s, first render "
                f"{rendered['ms'] / 1000:.1f} s ({', '.join(rendered['audiences'])}), ready after "
                f"{time.perf_counter() - started:.1f} s, peak RSS {startup_peak} MiB so far; healthz {health}"
            )
            rounds_to_report(kobo, hook, log, report, args.rounds)
            during_renders(kobo, hook, log, args.steady)
            ids = sustained(kobo, hook, log, process.pid, args.pushes, args.clients)
            last_commit = max(n for n, e in enumerate(events(log)) if e["event"] == "pushes_stored")
            wait_for_event(log, "rendered", last_commit, 600)  # the render after the burst
            peak = proc_status(process.pid, "VmHWM") // 1024
        finally:
            stopping = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=120)
            stopping = time.perf_counter() - stopping
        lines = events(log)
        print(
            f"peak RSS of the service: {peak} MiB; SIGTERM: exit {code} after {stopping:.1f} s, "
            f"last event {lines[-1]['event']!r}"
        )
        with open_store(settings) as store:
            stored = collections.Counter(s.submission_id for s in store.submissions())
            total = store.counts().submissions
        once = sum(1 for sid in ids if stored[sid] == 1)
        expected = args.rows + args.rounds + int(args.steady / 0.05) + args.pushes
        print(
            f"stored exactly once: {once} of {len(ids)} pushed; {total} stored in all ({expected} expected)"
        )
        kinds = collections.Counter(e["event"] for e in lines)
        others = [
            line for line in log.read_text(encoding="utf-8").splitlines() if line and not line.startswith("{")
        ]
        print(f"service log: {dict(kinds)}; {len(others)} other lines")
        for line in others[:20]:
            print(f"  | {line}")


if __name__ == "__main__":
    main()
