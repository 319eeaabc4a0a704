"""Time the synthetic generator (run by hand; not a test).

    .venv/bin/python benchmarks/bench_synthetic.py [--rows 1000000] [--json]

Streams ``--rows`` submissions from ``kobo_tip.synthetic.Scenario`` over eight quarters
with the example roster and locations, and reports wall time, CPU time and peak memory (the
process's maximum resident set size). ``--json`` also serialises every record, as writing an
export file would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from measure import peak_mb

from kobo_tip.config import load_locations
from kobo_tip.synthetic import Scenario, generate_roster

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="also json.dumps every record")
    args = parser.parse_args()
    start = dt.date(2024, 10, 1)
    roster = generate_roster(30, seed=1, project_start=start)
    locations = load_locations(REPO / "forms" / "locations.csv")
    wall, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for record in Scenario(
        args.rows,
        seed=1,
        roster=roster,
        locations=locations,
        start_date=start,
        end_date=dt.date(2026, 9, 30),
        as_of=dt.date(2026, 11, 28),
    ).submissions():
        rows += 1
        if args.json:
            json.dumps(record, ensure_ascii=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = peak_mb()
    print(
        f"{rows:,} submissions in {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"({rows / cpu:,.0f} per CPU second); peak memory {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
