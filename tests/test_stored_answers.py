"""Counting reads the store's coded answer columns; they must say exactly what the full data says."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kobo_tip import synthetic
from kobo_tip.answers import find_answers
from kobo_tip.cases import build_cases, cases_from_table
from kobo_tip.config import Settings, load_settings
from kobo_tip.store import open_store
from kobo_tip.store import reads as store_reads
from kobo_tip.sync import run_sync


def _submissions(settings: Settings, count: int, *, seed: int) -> list[dict[str, Any]]:
    return synthetic.generate_submissions(
        count,
        seed=seed,
        roster=list(settings.form.roster),
        locations=settings.form.locations,
        start_date=settings.project.start_date,
        end_date=settings.project.end_date,
        as_of=dt.date(2026, 11, 1),
    )


def _sync(settings: Settings, subs: list[dict[str, Any]]) -> None:
    """Write ``subs`` as the project's export file and sync it into the store."""
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    settings.source.path.write_text(json.dumps(subs), encoding="utf-8")
    run_sync(settings, progress=False)


def test_cases_from_answers_equal_cases_from_full_data(
    make_project: Callable[..., Path], secret: str
) -> None:
    settings = load_settings(make_project())
    subs = _submissions(settings, 600, seed=7)
    # Values that are not plain strings must survive the coding as they are.
    subs[0]["person/age_years"] = ["12"]
    subs[1]["person/gender"] = {"nested": "female"}
    subs[2]["person/age_years"] = 12  # a number, as Central sends it
    subs[3]["person/age_years"] = True
    _sync(settings, subs)

    with open_store(settings) as store:
        full = build_cases(store.submissions(), settings)
        table = store.answer_table()
    slim = cases_from_table(table, settings)

    assert "uic_given" not in table.values and "uic_mother" not in table.values
    assert ["12"] in table.values["age_years"] and 12 in table.values["age_years"]
    assert any(value is True for value in table.values["age_years"])
    pd.testing.assert_frame_equal(full.frame, slim.frame)
    pd.testing.assert_frame_equal(full.findings, slim.findings)
    assert (full.findings["rule"] == "malformed").sum() >= 3
    assert slim.frame.loc[2, "age_years"] == 12


def test_the_table_is_read_in_chunks_in_row_order(
    make_project: Callable[..., Path], secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(make_project())
    subs = _submissions(settings, 50, seed=3)
    # The separator of joined text, in a text column (a form version would not be stored: issue 27):
    # the chunk is read row by row.
    subs[7]["_id"] = "odd\x1fid"
    _sync(settings, subs)
    monkeypatch.setattr(store_reads, "READ_ROWS", 7)

    with open_store(settings) as store:
        table = store.answer_table()
        stored = list(store.submissions())

    assert table.submission_id == [row.submission_id for row in stored]
    assert table.form_version == [row.form_version for row in stored]
    assert "odd\x1fid" in table.submission_id
    assert list(table.deleted) == [row.deleted for row in stored]
    for field, codes in table.codes.items():
        answers = [table.values[field][code] for code in codes]
        assert answers == [find_answers(row.data, [field]).get(field) for row in stored], field
