"""Mutated submissions (a seeded corpus made here) through sync, in batches, and every report format.

Every value a hostile or broken client could send: integers beyond 64 bits, control characters,
formulas, objects and lists where answers belong, nesting deeper than the form, keys in every
separator style, missing ids and dates. A run must end as a sync and a report do, the broken
values becoming data-quality findings: no crash, whatever the input.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kobo_tip import synthetic
from kobo_tip.config import load_settings
from kobo_tip.report import render_reports
from kobo_tip.sources.files import FileSource
from kobo_tip.store import open_store
from kobo_tip.sync import run_sync
from report_project import DHIS2

AS_OF = dt.date(2026, 11, 28)
ROUNDS, PER_ROUND = 4, 500  # every other one mutated: 1,000 a test, 2,000 in all
FORMATS = '["html", "md", "csv", "xlsx"]'


def deep(depth: int) -> Any:
    node: Any = "bottom"
    for level in range(depth):
        node = {"g": node} if level % 2 else [node]
    return node


HOSTILE: list[Any] = [
    10**30,
    -(10**25),
    2**63,
    1.5e308,
    -0.0,
    "",
    " ",
    "\x00\x01\x07\x1b[31m\x7f",
    '=HYPERLINK("http://x.invalid")',
    "+1-1",
    "@SUM(1)",
    "<script>alert(1)</script>",
    "\u202eevil\u202c",
    "😀" * 50,
    "x" * 20_000,
    None,
    True,
    [],
    [1, "a", None],
    {},
    {"nested": {"deeper": "value"}},
    [{"uic_given": "Zz", "x": 1}],
    deep(40),
    deep(5),
    "2026-13-45",
    "9999-01-01",
    "0001-01-01",
    "NaN",
    "-1",
    "1e400",
]
ODD_KEYS = ["person.gender", "event:action", "event-event_date", "a/b/c/d/e/f/g", "", " ", "_id ", "ℌ"]


def mutate(row: dict[str, Any], rng: random.Random, number: int) -> dict[str, Any]:
    row = copy.deepcopy(row)
    row["_id"] = 10_000_000 + number
    row["_uuid"] = str(uuid.UUID(int=number))  # a version in its own shape: Kobo's pushes carry one
    for _ in range(rng.randint(1, 4)):
        action = rng.random()
        keys = [k for k in row if k not in ("_id", "_uuid")]
        if action < 0.55 and keys:
            row[rng.choice(keys)] = copy.deepcopy(rng.choice(HOSTILE))
        elif action < 0.7:
            row[rng.choice(ODD_KEYS)] = copy.deepcopy(rng.choice(HOSTILE))
        elif action < 0.8 and keys:
            del row[rng.choice(keys)]
        elif action < 0.9:
            row["_submission_time"] = rng.choice(["", "not a time", "2026-02-30T25:61:00", 12345, None])
        else:
            row["_id"] = rng.choice([f"id-{number}", -number, 10**20 + number, number + 0.5])
    return row


@pytest.mark.parametrize("parallel", [False, True])
def test_thousands_of_mutated_submissions_never_crash_a_run(
    parallel: bool, make_project: Callable[..., Path], secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20261201 + parallel)
    runs = crashes = submissions = findings = 0
    failures: list[str] = []
    for round_number in range(ROUNDS):
        config = make_project(
            f"fuzz{round_number}",
            # Half the rows are mutated, far above the share of unreadable rows that holds the outside
            # reports back (kobo_tip.readability): lifted, so every writer meets the hostile rows.
            report=f'out_dir = "reports"\naudiences = ["internal", "donor", "public"]\nformats = {FORMATS}\n'
            "max_unreadable_percent = 100",
            dhis2=DHIS2,
        )
        settings = load_settings(config)
        base = synthetic.generate_submissions(
            PER_ROUND,
            seed=round_number,
            roster=settings.form.roster,
            locations=settings.form.locations,
            start_date=settings.project.start_date,
            end_date=settings.project.end_date,
            as_of=AS_OF,
        )
        rows = [
            mutate(row, rng, round_number * PER_ROUND + i) if i % 2 else row for i, row in enumerate(base)
        ]
        assert settings.source.path is not None
        settings.source.path.parent.mkdir(parents=True, exist_ok=True)
        settings.source.path.write_text(json.dumps(rows), encoding="utf-8")
        runs += 1
        submissions += sum(1 for i in range(len(rows)) if i % 2)
        try:
            run_sync(
                settings,
                progress=False,
                source=FileSource(settings.source.path, batch_size=97),
                parallel=parallel,
            )
            render_reports(settings, as_of=AS_OF)
        except Exception as exc:  # any exception ends the run: that is the crash this test counts
            crashes += 1
            failures.append(f"round {round_number}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        for name in ("counts.csv", "counts.xlsx", "report.html", "report.md", "dhis2_datavalueset.json"):
            assert (settings.report.out_dir / "donor" / name).is_file()
        dq = (settings.report.out_dir / "internal" / "data_quality.csv").read_text(encoding="utf-8")
        findings += dq.count("\n") - 1
        assert "\x00" not in dq and "\x1b" not in dq
        with open_store(settings) as store:
            assert store.counts().submissions == len({str(r["_id"]) for r in rows})
    with capsys.disabled():
        print(
            f"\nfuzz ({'two processes' if parallel else 'one process'}): {submissions} mutated submissions "
            f"in {runs} runs, {crashes} crashes, {findings} data-quality findings"
        )
    assert crashes == 0, failures
