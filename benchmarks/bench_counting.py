"""Time reading the store, typing the cases and counting them, on synthetic submissions (run by hand).

    .venv/bin/python benchmarks/bench_counting.py [--rows 1000000] [--seed 7] [--pushes 20] [--renders 3]

The store is filled the way a sync fills it (``kobo_tip.synthetic`` Kobo rows, keyed and
stripped by ``sync.prepare_row``), then read back as the report does:
``store.answer_table()`` -> ``cases_from_table`` -> ``count_indicator``, each step timed. Peak
memory is the process's maximum resident set size (``resource.getrusage``); CPU time is shown
because wall time depends on the load.

Then ``serve``'s way (``kobo_tip.tally``): the tally built from the same cases, and ``--pushes``
changes taken in one at a time, each timed with the ``counts()`` table after it: half new
submissions of a person already stored (a later event), half edits that move a stored submission
to another person. At the end the tally's table is checked against ``count_indicator`` of the
changed rows.

Last, ``--renders`` times what serve's render counts after each of that many pushes of one new
submission (stored with ``apply_pushed``): a full count of the store with its referral table
(``report.render.count_store`` and the referral table it reads, as ``kobo-tip report`` does) against
the counts kept between renders (``serve.live.LiveCounts``: the changed rows read and typed, the
table, cases, rules, tally and referral counts kept in memory; the first call, which reads the
whole store, timed apart).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from measure import Timer, peak_mb

from kobo_tip.answers import AnswerCodes
from kobo_tip.cases import FINDING_COLUMNS, Cases, cases_from_table
from kobo_tip.config import Settings, load_settings
from kobo_tip.counting import count_indicator
from kobo_tip.report.render import _referral_rows, count_store
from kobo_tip.rows import prepare_row, submission_reader
from kobo_tip.serve.live import LiveCounts
from kobo_tip.sources.kobo import raw_submission
from kobo_tip.store import SqliteStore, Store
from kobo_tip.store.records import SubmissionRow
from kobo_tip.synthetic import Scenario
from kobo_tip.tally import Tally

REPO = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2028, 9, 30)  # the example project's last day: every period is shown
BATCH = 10_000


def generated(
    settings: Settings, rows: int, seed: int, first_id: int = 48_000_000
) -> Iterator[dict[str, Any]]:
    """``rows`` synthetic submissions of the project, in ``_id`` order from ``first_id``."""
    return Scenario(
        rows,
        seed=seed,
        roster=settings.form.roster,
        locations=settings.form.locations,
        start_date=settings.project.start_date,
        end_date=settings.project.end_date,
        as_of=AS_OF,
        first_id=first_id,
    ).submissions()


def fill(store: Store, settings: Settings, rows: int, seed: int) -> None:
    submissions = generated(settings, rows, seed)
    secret = b"benchmark-secret-not-for-use"
    run_id = store.begin_run("benchmark")
    reader = submission_reader(store.answer_codes())
    while batch := list(itertools.islice(submissions, BATCH)):
        rows = [prepare_row(raw_submission(row), secret, reader) for row in batch]
        store.apply_batch(rows, run_id=run_id, new_answers=reader.codes.take_added())
    store.finish_run(run_id, seconds=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pushes", type=int, default=20, help="changes taken in by the tally")
    parser.add_argument("--renders", type=int, default=3, help="serve's counts timed after as many pushes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "kobo-tip.toml"
        text = (REPO / "config.example.toml").read_text(encoding="utf-8")
        config.write_text(text.replace('"forms/', f'"{REPO}/forms/'), encoding="utf-8")
        settings = load_settings(config)
        with SqliteStore.open(Path(folder) / "bench.sqlite") as store:
            with Timer() as filling:
                fill(store, settings, args.rows, args.seed)
            print(f"rows: {args.rows:,}; filling the store (not part of the figures): {filling}")
            with Timer() as reading:
                table = store.answer_table()
            print(f"store.answer_table(): {reading}; peak RSS {peak_mb():.0f} MB")
        with Timer() as building:
            cases = cases_from_table(table, settings)
        print(f"cases_from_table: {building}; peak RSS {peak_mb():.0f} MB")
        del table
        with Timer() as counting:
            result = count_indicator(cases, settings, AS_OF)
        print(f"count_indicator: {counting}; peak RSS {peak_mb():.0f} MB")
        total = reading.cpu + building.cpu + counting.cpu
        print(f"in all: {reading.wall + building.wall + counting.wall:.1f} s wall, {total:.1f} s CPU")
        if args.renders:
            with SqliteStore.open(Path(folder) / "bench.sqlite") as store:
                serve_counts(store, settings, args.renders)
    lop = result.counts.query("dimension == 'total' and period == 'LOP'")
    sizes = (len(cases.frame), len(result.counts), len(result.findings))
    print("cases: {:,}; counts rows: {:,}; findings: {:,}".format(*sizes))
    print(lop[["indicator", "value"]].to_string(index=False))
    if args.pushes:
        tally_pushes(cases.frame, settings, args.pushes, result.counts)


def serve_counts(store: Store, settings: Settings, renders: int) -> None:
    """The counting of serve's renders after ``renders`` pushes, in full and kept (``LiveCounts``)."""
    live = LiveCounts()
    with Timer() as first:
        live(store, settings, AS_OF)
    print(f"serve's kept counts, first call (the whole store read, the tally built): {first}")
    secret = b"benchmark-secret-not-for-use"
    for number in range(renders):
        (doc,) = generated(settings, 1, number, first_id=90_000_000 + number)

        def make_rows(codes: AnswerCodes, doc: dict[str, Any] = doc) -> tuple[list[SubmissionRow], Any]:
            reader = submission_reader(codes)
            return [prepare_row(raw_submission(doc), secret, reader)], reader.codes.take_added()

        store.apply_pushed(make_rows)
        with Timer() as full:
            counted = count_store(store, settings, AS_OF)
            _referral_rows(store, settings, counted.result)
        with Timer() as kept:
            live(store, settings, AS_OF)
        print(f"after a push: full count and referral table {full}; kept counts {kept}")
    print(f"peak RSS {peak_mb():.0f} MB")


def tally_pushes(frame: pd.DataFrame, settings: Settings, pushes: int, counts: pd.DataFrame) -> None:
    """Build a tally of ``frame``, take in ``pushes`` changes one at a time, check it at the end."""
    with Timer() as building:
        tally = Tally(frame, settings, AS_OF)
    same = tally.counts().equals(counts)
    print(f"Tally built: {building}; peak RSS {peak_mb():.0f} MB; its table equals count_indicator's: {same}")
    rng = random.Random(5)
    frame = frame.reset_index(drop=True)
    updates, tables, changed = [], [], []
    for number in range(pushes):
        row = frame.iloc[[rng.randrange(len(frame))]].copy()
        other = frame["person_key"].iloc[rng.randrange(len(frame))]
        if number % 2 == 0:  # a new submission: a later event of the same person
            row["submission_id"] = str(90_000_000 + number)
            row["id_number"] = float(90_000_000 + number)
            row["event_date"] = row["event_date"] + pd.Timedelta(days=20)
        else:  # an edit: the same submission, now another person's
            row["person_key"] = other
        started = time.perf_counter()
        tally.update(row)
        middle = time.perf_counter()
        table = tally.counts()
        updates.append(middle - started)
        tables.append(time.perf_counter() - middle)
        changed.append(row)
    print(
        f"{pushes} changes taken in one at a time: update median {statistics.median(updates) * 1000:.1f} ms "
        f"(max {max(updates) * 1000:.1f} ms), counts() median {statistics.median(tables) * 1000:.1f} ms "
        f"(max {max(tables) * 1000:.1f} ms)"
    )
    edits = pd.concat(changed)
    edits = edits.drop_duplicates("submission_id", keep="last")
    stays = ~np.isin(frame["submission_id"].to_numpy(), edits["submission_id"].to_numpy())
    after = pd.concat([frame[stays], edits], ignore_index=True)
    after["person_key"] = after["person_key"].astype("category")
    full = count_indicator(Cases(after, pd.DataFrame(columns=FINDING_COLUMNS)), settings, AS_OF).counts
    print(f"after the changes, the tally's table equals a full recount: {table.equals(full)}")


if __name__ == "__main__":
    main()
