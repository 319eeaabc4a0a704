"""Counting reads the store's flat answers column; it must see exactly what the full data holds."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kobo_tip import synthetic
from kobo_tip.cases import build_cases
from kobo_tip.config import load_settings
from kobo_tip.store import Store
from kobo_tip.sync import run_sync


def test_cases_from_answers_equal_cases_from_full_data(
    make_project: Callable[..., Path], secret: str
) -> None:
    settings = load_settings(make_project())
    subs = synthetic.generate_submissions(
        600,
        seed=7,
        roster=list(settings.form.roster),
        locations=settings.form.locations,
        start_date=settings.project.start_date,
        end_date=settings.project.end_date,
        as_of=dt.date(2026, 11, 1),
    )
    # Values that are not plain strings must survive the answers column as they are.
    subs[0]["person/age_years"] = ["12"]
    subs[1]["person/gender"] = {"nested": "female"}
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    settings.source.path.write_text(json.dumps(subs), encoding="utf-8")
    run_sync(settings, progress=False)

    with Store.open(settings.store_path) as store:
        full = build_cases(store.submissions(), settings)
        slim = build_cases(store.submissions(answers_only=True), settings, by_field=True)
        answers = next(store.submissions(answers_only=True)).data

    assert "uic_given" not in answers and "uic_mother" not in answers
    assert all("/" not in key for key in answers)
    pd.testing.assert_frame_equal(full.frame, slim.frame)
    pd.testing.assert_frame_equal(full.findings, slim.findings)
    assert (full.findings["rule"] == "malformed").sum() >= 2
