"""The benchmark scripts still run, on a few rows: they are run by hand, so nothing else would notice
an API change that breaks one. Nothing here is timed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        (
            "bench_counting.py",
            ["--rows", "300", "--pushes", "6", "--renders", "2"],
            r"after a push: full count and referral table .*; kept counts .* CPU\nafter a push(.*\n)*"
            r"identified_or_referred\s+\d+(.*\n)*.*its table equals count_indicator.s: True(.*\n)*"
            r"6 changes taken in one at a time(.*\n)*.*equals a full recount: True",
        ),
        ("bench_store.py", ["--rows", "300", "--read-rows", "600"], r"read counted\s+600 rows"),
        ("bench_report.py", ["--rows", "300"], r"render_reports end to end"),
        ("bench_kobo_sync.py", ["2000", "--rounds", "1"], r"full sync .* \(2000 new\).*\n.*median"),
        ("bench_synthetic.py", ["--rows", "300"], r"300 submissions in"),
        (
            "bench_postgres.py",
            ["--rows", "300", "--read-rows", "600"],
            r"sync\s+300 rows .* postgresql/sqlite [\d.]+x wall(.*\n)*"
            r"answer_table\s+600 rows .* postgresql/sqlite [\d.]+x wall(.*\n)*"
            r"render_reports\s+600 rows .* postgresql/sqlite [\d.]+x wall",
        ),
        (
            "bench_file_sync.py",
            ["--rows", "300"],
            r"300 new.*\n.*ratio sync / bare json(.*\n)*second sync, file unchanged.*\n.*\(0 rows fetched",
        ),
        (
            "bench_disclosure.py",
            ["--rows", "300"],
            r"300 submissions, 78 locations, .* cells: a first release, protected in .*\n"
            r"  donor \(k=5\): persons hidden \d+\.\d%, x cells \d+ \(20\+: \d+, 50\+: \d+.*\n"
            r"  public \(k=10\): persons hidden",
        ),
        (
            "bench_serve.py",
            ["--rows", "300", "--pushes", "200", "--rounds", "2", "--clients", "8", "--steady", "6"],
            r"push to updated internal report: median .* s(.*\n)*pushes during renders: (.*\n)*"
            r"sustained: 200 pushes .* pushes/s(.*\n)*"
            r"peak RSS of the service: \d+ MiB(.*\n)*stored exactly once: 200 of 200",
        ),
    ],
)
def test_a_benchmark_runs_on_a_few_rows(script: str, args: list[str], expected: str, tmp_path: Path) -> None:
    env = {**os.environ, "KOBO_TIP_SECRET": "benchmark-smoke-test"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(expected, done.stdout), done.stdout[-2000:]
