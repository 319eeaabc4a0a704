"""Time the store: a file-source sync into a fresh store, a re-sync, and a full read (run by hand).

    .venv/bin/python benchmarks/bench_store.py [--rows 100000] [--read-rows 1000000]

1. ``--rows`` generated submissions (kobo_tip.synthetic, Kobo data-API shape) are written to a
   JSON export and synced into a new store (person key, UIC stripped, answers coded, insert), then
   synced again unchanged (every row compared, none rewritten).
2. The store is grown to ``--read-rows`` rows by copying rows in SQL (new ids); then
   ``Store.submissions()`` streams them all (one JSON decode per row) and ``Store.answer_table()``
   reads what counting needs, column by column.

Each phase prints wall time and the process's CPU time (the fair figure on a shared machine).
Peak memory is the process's maximum resident set size (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import tempfile
from pathlib import Path

from measure import Timer, peak_mb

from kobo_tip.config import load_settings
from kobo_tip.store import open_store
from kobo_tip.sync import run_sync
from kobo_tip.synthetic import Scenario

REPO = Path(__file__).resolve().parents[1]


def _report(label: str, rows: int, timer: Timer) -> None:
    # CPU time next to wall time: on a shared machine the wall time also measures the neighbours.
    rate = rows / timer.cpu
    print(
        f"{label:15s} {rows:>9,} rows  wall {timer.wall:6.1f} s  cpu {timer.cpu:6.1f} s  "
        f"({rate:,.0f} rows per cpu-s)"
    )


def _project(folder: Path) -> Path:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('kind = "kobo"', 'kind = "file"\npath = "data/export.json"')
    text = text.replace('roster = "forms/', f'roster = "{REPO}/forms/')
    text = text.replace('locations = "forms/', f'locations = "{REPO}/forms/')
    text = text.replace('referral_directory = "forms/', f'referral_directory = "{REPO}/forms/')
    config = folder / "kobo-tip.toml"
    config.write_text(text, encoding="utf-8")
    return config


def _grow(path: Path, target: int) -> int:
    """Copy the synced rows under new ids until the store holds ``target`` submissions."""
    db = sqlite3.connect(path)
    columns = [column[1] for column in db.execute("PRAGMA table_info(submissions)")]
    base = db.execute("SELECT MAX(row_id) FROM submissions").fetchone()[0]
    have = db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    copy = 0
    while have < target:
        copy += 1
        offset = base * copy
        picked = {"row_id": f"row_id + {offset}", "submission_id": f"submission_id || '-{copy}'"}
        chosen = ", ".join(picked.get(name, "NULL" if name == "id_order" else name) for name in columns)
        limit = min(base, target - have)
        db.execute(f"INSERT INTO submissions SELECT {chosen} FROM submissions WHERE row_id <= ?", (limit,))
        db.execute(
            "INSERT INTO submission_data SELECT row_id + ?, data FROM submission_data WHERE row_id <= ?",
            (offset, limit),
        )
        db.commit()
        have = db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    db.close()
    return have


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="submissions synced from a JSON export")
    parser.add_argument("--read-rows", type=int, default=1_000_000, help="rows streamed by submissions()")
    args = parser.parse_args()
    os.environ.setdefault("KOBO_TIP_SECRET", "benchmark-secret-not-for-use")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_project(Path(tmp)))
        assert settings.source.path is not None
        settings.source.path.parent.mkdir(parents=True)
        rows = Scenario(
            args.rows,
            seed=3,
            roster=settings.form.roster,
            locations=settings.form.locations,
            start_date=settings.project.start_date,
            end_date=settings.project.end_date,
            as_of=dt.date(2026, 9, 30),
        ).submissions()
        settings.source.path.write_text(json.dumps(list(rows)), encoding="utf-8")
        size_mb = settings.source.path.stat().st_size / 1e6
        print(f"export: {args.rows:,} submissions, {size_mb:.0f} MB JSON")

        for label in ("first sync", "unchanged sync"):
            with Timer() as syncing:  # the sync's worker process included
                run_sync(settings, progress=False)
            _report(label, args.rows, syncing)
        print(f"store file: {settings.store.path.stat().st_size / 1e6:.0f} MB for {args.rows:,} rows")

        total = _grow(settings.store.path, args.read_rows)
        with open_store(settings) as store:
            with Timer() as reading:
                streamed = sum(1 for _ in store.submissions())
            _report("read whole", streamed, reading)
            with Timer() as reading:
                table = store.answer_table()
            _report("read counted", len(table), reading)
        assert streamed == len(table) == total
        print(f"peak memory (max RSS): {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
