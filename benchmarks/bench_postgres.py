"""The PostgreSQL store against SQLite: a full sync, then the report's read path (run by hand).

    .venv/bin/python benchmarks/bench_postgres.py [--rows 100000] [--read-rows 1000000] [--no-fsync]

Goal: PostgreSQL within 1.5x of SQLite, memory as flat. Both back ends get the same synthetic
submissions (kobo_tip.synthetic streamed through ``run_sync``, as bench_report does), and bench_report's
project. Each measure runs on SQLite then on PostgreSQL, each run in a process of its own that
imports only what it uses, so the peak RSS is that back end's:

1. a full sync of ``--rows`` submissions into a new SQLite file and a new PostgreSQL schema;
2. both grown to ``--read-rows`` by a full sync of that many (printed too), then
   ``store.answer_table()`` and ``render_reports(settings, audiences=("internal",))``.

PostgreSQL runs in a throwaway cluster of its own (``tests/pg_cluster.py``), on the unix socket,
with the server's defaults except the tests' speed settings: fsync, synchronous_commit and
full_page_writes are on here (``--no-fsync``: off, as in the tests). SQLite runs in WAL mode with
synchronous = NORMAL, which does not sync each commit: PostgreSQL is the stricter of the two.
The CPU time of PostgreSQL's server processes (backends, WAL writer, checkpointer...) is counted
with the client's; its memory is not (peak RSS is the client's, as for SQLite).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from generated import AS_OF, GeneratedSource

if TYPE_CHECKING:
    pass

REPO = Path(__file__).resolve().parents[1]
BACK_ENDS = ("sqlite", "postgresql")


class Run(NamedTuple):
    wall: float
    cpu: float  # the measured process's
    worker_cpu: float  # the sync's worker process, when there is one
    server_cpu: float  # PostgreSQL's server processes, 0 for SQLite
    rss: int  # MiB
    worker_rss: int
    rows: int

    @property
    def total_cpu(self) -> float:
        return self.cpu + self.worker_cpu + self.server_cpu


def child(what: str, config: Path, rows: int) -> None:
    """One measure in this process, after its imports; prints a CHILD line for the parent."""
    # Only what the measure uses is imported (a sync's worker is forked with it), psycopg included.
    import kobo_tip.store.postgres  # noqa: F401
    from kobo_tip.config import load_settings
    from kobo_tip.store import open_store

    settings = load_settings(config)
    if what == "sync":
        from kobo_tip.sync import run_sync
    elif what == "answer_table":
        import numpy  # noqa: F401  (both back ends import it on their first table)

        store = open_store(settings, create=False)
    else:
        from kobo_tip.report import render_reports
    started, cpu = time.perf_counter(), time.process_time()
    if what == "sync":
        rows = run_sync(settings, progress=False, source=GeneratedSource(settings, rows)).new
    elif what == "answer_table":
        rows = len(store.answer_table())
    else:
        render_reports(settings, audiences=("internal",), as_of=AS_OF)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
    peak = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())[1]  # type: ignore[index]
    worker = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("CHILD", wall, cpu, worker.ru_utime + worker.ru_stime, peak, worker.ru_maxrss, rows)


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the postmaster, its ended children (reaped: counted in its own) and live ones."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended meanwhile
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(value) for value in fields[11:15]) / tick  # utime stime cutime cstime
        elif ppid == postmaster:
            total += sum(int(value) for value in fields[11:13]) / tick
    return total


def measure(what: str, config: Path, rows: int, postmaster: int | None) -> Run:
    server = server_cpu(postmaster) if postmaster else 0.0
    command = [sys.executable, __file__, "--child", what, str(config), str(rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((line for line in done.stdout.splitlines() if line.startswith("CHILD")), None)
    if done.returncode or line is None:
        raise SystemExit(f"{what} on {config.parent.name} failed:\n{done.stdout}\n{done.stderr}")
    time.sleep(0.2)  # the backend's exit reaped, so its CPU time is the postmaster's
    server = server_cpu(postmaster) - server if postmaster else 0.0
    wall, cpu, worker_cpu, peak, worker_peak, count = line.split()[1:]
    return Run(
        float(wall),
        float(cpu),
        float(worker_cpu),
        server,
        int(peak) // 1024,
        int(worker_peak) // 1024,
        int(count),
    )


def ratio(postgres: float, sqlite: float) -> str:
    return f"{postgres / sqlite:.2f}x" if sqlite else "n/a"


def compare(what: str, configs: dict[str, Path], rows: int, postmaster: int) -> dict[str, Run]:
    """Run ``what`` on each back end, print each run and the line of ratios."""
    runs = {
        name: measure(what, configs[name], rows, postmaster if name == "postgresql" else None)
        for name in BACK_ENDS
    }
    for name, run in runs.items():
        counted = f"{run.rows:>9,} {'new' if what == 'sync' else 'rows'}"
        worker = f" + worker {run.worker_cpu:.2f}" if run.worker_cpu else ""
        server = f" + server {run.server_cpu:.2f}" if name == "postgresql" else ""
        worker_rss = f" (worker {run.worker_rss} MiB)" if run.worker_cpu else ""
        print(
            f"  {name:10s} {counted}  {run.wall:6.2f} s wall, cpu {run.cpu:.2f}{worker}{server} = "
            f"{run.total_cpu:.2f} s, peak RSS {run.rss} MiB{worker_rss}"
        )
    sqlite, postgres = runs["sqlite"], runs["postgresql"]
    print(
        f"{what:15s} {rows:>9,} rows  sqlite {sqlite.wall:.2f} s, postgresql {postgres.wall:.2f} s: "
        f"postgresql/sqlite {ratio(postgres.wall, sqlite.wall)} wall, "
        f"{ratio(postgres.total_cpu, sqlite.total_cpu)} cpu, {ratio(postgres.rss, sqlite.rss)} peak RSS "
        f"({sqlite.rss} vs {postgres.rss} MiB)"
    )
    return runs


def configs(folder: Path, url: str, schema: str) -> dict[str, Path]:
    """A project per back end under ``folder``: SQLite's file, or PostgreSQL's schema ``schema``."""
    from bench_report import project  # which imports the report modules: the parent only

    found = {}
    for name in BACK_ENDS:
        (folder / name).mkdir(parents=True)
        config = project(folder / name)
        if name == "postgresql":
            text = config.read_text(encoding="utf-8")
            store = f'url = "{url}"\nschema = "{schema}"'
            config.write_text(text.replace('path = "data/kobo-tip.sqlite"', store, 1), encoding="utf-8")
        found[name] = config
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="submissions of the full sync measured")
    parser.add_argument("--read-rows", type=int, default=1_000_000, help="submissions stored for the reads")
    parser.add_argument("--no-fsync", action="store_true", help="the tests' cluster settings: fsync off")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("KOBO_TIP_SECRET", "benchmark-secret-not-for-use")
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return

    sys.path.insert(0, str(REPO / "tests"))
    import pg_cluster

    durable = "off" if args.no_fsync else "on"
    # The cluster reads these when it starts; the tests' own stay as they are.
    pg_cluster.SETTINGS = {
        **pg_cluster.SETTINGS,
        **dict.fromkeys(("fsync", "synchronous_commit", "full_page_writes"), durable),
    }
    with pg_cluster.PostgresCluster() as cluster, tempfile.TemporaryDirectory() as temporary:
        url = cluster.create_database("bench")
        shown = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers")
        print("PostgreSQL " + ", ".join(f"{name} {cluster.execute(f'SHOW {name}')[0][0]}" for name in shown))
        folder = Path(temporary)
        compare("sync", configs(folder / "sync", url, "bench_sync"), args.rows, cluster.pid)
        reads = configs(folder / "read", url, "bench_read")
        compare("sync", reads, args.read_rows, cluster.pid)  # fills the stores the reads use
        compare("answer_table", reads, args.read_rows, cluster.pid)
        compare("render_reports", reads, args.read_rows, cluster.pid)


if __name__ == "__main__":
    main()
