"""serve's render keeps its counts between renders (``kobo_tip.serve.live``): after random pushes,
edits, deletions and review changes, the internal report it renders from what changed has the
tables (counts.csv, data_quality.csv, referrals.csv...) of a full recount, byte for byte."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import pickle
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import write_project
from kobo_tip.answers import AnswerCodes
from kobo_tip.config import AS_REPORTED, Settings, load_settings
from kobo_tip.errors import KoboTipError
from kobo_tip.report import render, render_reports
from kobo_tip.report.render import _referral_rows, count_store
from kobo_tip.rows import prepare_row, submission_reader
from kobo_tip.serve import render_process
from kobo_tip.serve.live import LiveCounts, _spliced_column
from kobo_tip.sources.kobo import raw_submission
from kobo_tip.store import Store, open_store
from kobo_tip.store.records import NewAnswer, SubmissionRow
from kobo_tip.synthetic import Scenario
from kobo_tip.tally import Tally

KEY = b"test-secret-not-for-use"
# What an edit may change: the event (its date moves a person's index event), the action, the
# referral's organisation and consent, and a UIC part (the submission becomes another person's).
EDITED = (
    "event/event_date",
    "event/action",
    "event/referral_org",
    "intro/consent",
    "person/gender",
    "person/uic_given",
    "event/identification_country",
)
STATUSES = ("approved", "on_hold", "rejected", "unreviewed")


def generated(settings: Settings, n: int, first_id: int) -> list[dict[str, Any]]:
    return list(
        Scenario(
            n,
            seed=first_id,
            roster=settings.form.roster,
            locations=settings.form.locations,
            start_date=settings.project.start_date,
            end_date=settings.project.end_date,
            as_of=dt.date.today(),
            first_id=first_id,
            referral_orgs=[org.id for org in settings.form.referral_directory],
        ).submissions()
    )


def rows_of(docs: list[dict[str, Any]], codes: AnswerCodes) -> tuple[list[SubmissionRow], list[NewAnswer]]:
    reader = submission_reader(codes)
    return [prepare_row(raw_submission(doc), KEY, reader) for doc in docs], reader.codes.take_added()


def write(store: Store, docs: list[dict[str, Any]], **changes: Any) -> None:
    """Store ``docs`` as a sync's batch, with its review ``statuses`` and ``deleted`` ids."""
    run = store.begin_run("test")
    rows, added = rows_of(docs, store.answer_codes())
    store.apply_batch(rows, run_id=run, new_answers=added, **changes)
    store.finish_run(run, seconds=0.0)


def edited(doc: dict[str, Any], others: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """``doc`` with one to three answers taken from other submissions (no answer new to the store)."""
    doc = copy.deepcopy(doc)
    for field in rng.sample(EDITED, rng.randint(1, 3)):
        source = rng.choice(others)
        if field in source:
            doc[field] = source[field]
        else:
            doc.pop(field, None)
    return doc


def changing(settings: Settings, rng: random.Random, rounds: int) -> Iterator[int]:
    """Store 300 submissions, then ``rounds`` times push new ones, edit, review and delete stored
    ones at random; yields each round's number once its changes are stored."""
    docs = {str(doc["_id"]): doc for doc in generated(settings, 300, 48_000_000)}
    with open_store(settings) as store:
        write(store, list(docs.values()))
    next_id = 49_000_000
    for round_number in range(rounds):
        with open_store(settings) as store:
            stored = list(docs)
            pushed = generated(settings, rng.randint(0, 5), next_id)
            next_id += 100
            # Every third round pushes, reviews and deletes only: no stored row changes its person.
            edits = rng.sample(stored, 8 if round_number % 3 != 2 else 0)
            changed = [edited(docs[sid], list(docs.values()), rng) for sid in edits]
            for doc in pushed + changed:
                docs[str(doc["_id"])] = doc
            store.apply_pushed(lambda codes, batch=pushed: rows_of(batch, codes))
            write(
                store,
                changed,
                review_statuses={sid: rng.choice(STATUSES) for sid in rng.sample(stored, 4)},
                deleted=rng.sample(stored, 2 if round_number % 2 else 0),
            )
        yield round_number


def counted_files(folder: Path) -> dict[str, bytes]:
    """Every table the render wrote of its count: counts, data quality, referrals, partners, as
    reported (not restatements.csv: it compares with the release before, the other render's)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv")) if p.name != "restatements.csv"}


@pytest.mark.parametrize("seed", [3, 11])
def test_the_kept_counts_render_the_files_of_a_full_recount(tmp_path: Path, seed: int) -> None:
    settings = load_settings(write_project(tmp_path / "project"))
    # The tidy files only: the formats that show the same tables are not what this checks.
    report = dataclasses.replace(settings.report, formats=())
    settings = dataclasses.replace(settings, report=report)
    full = dataclasses.replace(settings, report=dataclasses.replace(report, out_dir=tmp_path / "full"))
    live = LiveCounts()
    for round_number in changing(settings, random.Random(seed), 6):
        # As the render child gets them: a copy of the service's settings each time.
        render_reports(pickle.loads(pickle.dumps(settings)), audiences=["internal"], count=live)
        render_reports(full, audiences=["internal"])
        kept = counted_files(settings.report.out_dir / "internal")
        assert {"counts.csv", "data_quality.csv", "referrals.csv"} <= set(kept)
        assert kept == counted_files(full.report.out_dir / "internal"), f"round {round_number}"
    assert live.builds == 1, "every render after the first took in what changed"

    # A new day: what a row counts for depends on the run date, so the tally is built again.
    render_reports(settings, audiences=["internal"], count=live, as_of=dt.date.today() + dt.timedelta(days=1))
    assert live.builds == 2


@pytest.mark.parametrize("seed", [5, 17])
def test_the_kept_count_is_a_full_count_of_the_store(tmp_path: Path, seed: int) -> None:
    """What the files above do not show whole: every person of the as-reported section, each row's
    keys and rule, the findings as counting orders them, readability and the footer's facts."""
    settings = load_settings(write_project(tmp_path / "project"))
    report = dataclasses.replace(settings.report, outside_basis=AS_REPORTED)
    settings = dataclasses.replace(settings, report=report)
    live = LiveCounts()
    today = dt.date.today()
    for round_number in changing(settings, random.Random(seed), 5):
        with open_store(settings) as store:
            live(store, settings, today)
            kept = live(store, settings, today)  # nothing written since: nothing to take in
            full = count_store(store, settings, today)
            referrals = _referral_rows(store, settings, full.result)
        where = f"round {round_number}"
        assert kept.result.persons is not None and full.result.persons is not None
        assert kept.result.persons.keys() == full.result.persons.keys()
        for variant, persons in full.result.persons.items():
            pd.testing.assert_frame_equal(kept.result.persons[variant], persons, obj=f"{variant}, {where}")
        for name in ("counts", "findings", "rows"):
            pd.testing.assert_frame_equal(getattr(kept.result, name), getattr(full.result, name), obj=name)
        assert kept.readability == full.readability, where
        assert kept.provenance == full.provenance, where
        assert kept.referrals is not None
        pd.testing.assert_frame_equal(kept.referrals, referrals, obj=f"referrals, {where}")
    assert (live.builds, live.retyped) == (1, 0), "only the changed rows were typed"


def test_the_render_child_keeps_its_counts_from_one_render_to_the_next() -> None:
    assert isinstance(render_process._LIVE, LiveCounts)


def test_a_render_that_fails_halfway_leaves_the_next_to_count_from_the_whole_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(write_project(tmp_path / "project"))
    settings = dataclasses.replace(settings, report=dataclasses.replace(settings.report, formats=()))
    docs = generated(settings, 60, 48_000_000)
    with open_store(settings) as store:
        write(store, docs)
    live = LiveCounts()
    render_reports(settings, audiences=["internal"], count=live)
    with open_store(settings) as store:
        write(store, [{**docs[0], "event/event_date": docs[1]["event/event_date"]}])

    def broken(tally: Tally, frame: Any) -> None:
        raise KoboTipError("the disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(Tally, "update", broken)
        with pytest.raises(KoboTipError):
            render_reports(settings, audiences=["internal"], count=live)
    render_reports(settings, audiences=["internal"], count=live)
    assert live.builds == 2, "built again rather than kept half taken in"
    kept = counted_files(settings.report.out_dir / "internal")
    render_reports(settings, audiences=["internal"])
    assert kept == counted_files(settings.report.out_dir / "internal")


def test_serve_shows_the_new_report_html_before_it_writes_the_other_files_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(write_project(tmp_path / "project"))
    settings = dataclasses.replace(
        settings, report=dataclasses.replace(settings.report, formats=("html", "md"))
    )
    docs = generated(settings, 80, 48_000_000)
    with open_store(settings) as store:
        write(store, docs[:50])
    folder = settings.report.out_dir / "internal"
    render_reports(settings, audiences=["internal"], count=LiveCounts(), html_first=True)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with open_store(settings) as store:
        write(store, docs[50:])
        releases = len(store.releases("internal"))
    seen: dict[str, bytes] = {}
    write_edition = render.write_edition

    def watched(*args: Any, **kwargs: Any) -> list[Path]:
        seen.update({path.name: path.read_bytes() for path in folder.iterdir()})
        return write_edition(*args, **kwargs)

    monkeypatch.setattr(render, "write_edition", watched)
    render_reports(settings, audiences=["internal"], count=LiveCounts(), html_first=True)
    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    # While the rest was written, the new page stood beside the previous version's other files.
    assert seen["report.html"] == after["report.html"] != before["report.html"]
    assert set(seen) == set(before)
    assert all(seen[name] == before[name] for name in before if name != "report.html")
    assert after["report.md"] != before["report.md"]
    with open_store(settings) as store:
        assert len(store.releases("internal")) == releases + 1, "the render is recorded once"


def test_changed_rows_whose_times_do_not_parse_are_spliced_as_a_full_typing_types_them() -> None:
    def typed(values: list[str | None]) -> pd.Series:
        series = pd.Series(values, dtype=object)
        return pd.to_datetime(series, format="%Y-%m-%dT%H:%M:%S", utc=True, errors="coerce")

    kept = typed(["2026-03-01T08:00:00", "2026-03-02T08:00:00"])
    changed = typed([None, None])  # alone, none parses: pandas types them in seconds, not micro
    assert changed.dtype != kept.dtype
    spliced = _spliced_column(kept, changed, np.array([1, -1]))
    assert spliced is not None
    pd.testing.assert_series_equal(spliced, typed(["2026-03-01T08:00:00", None, None]))
