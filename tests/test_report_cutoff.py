"""Counts through the headline quarter, derived from the internal count, equal a second count."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from kobo_tip.cases import build_cases
from kobo_tip.counting import count_indicator
from kobo_tip.report.cutoff import counts_through
from kobo_tip.store import open_store
from report_project import AS_OF, make_project, sync


@pytest.mark.parametrize("through", [dt.date(2026, 12, 31), dt.date(2025, 12, 31), dt.date(2025, 9, 30)])
def test_derived_counts_equal_counting_through_that_day(
    tmp_path: Path, secret: str, through: dt.date
) -> None:
    settings = sync(make_project(tmp_path / "p", submissions=500, dhis2=False))
    with open_store(settings) as store:
        cases = build_cases(store.submissions(), settings)
    internal = count_indicator(cases, settings, AS_OF).counts
    expected = count_indicator(cases, settings, AS_OF, through=through).counts
    derived = counts_through(internal, through)
    assert len(derived) < len(internal)
    pd.testing.assert_frame_equal(derived, expected.reset_index(drop=True), check_dtype=False)
