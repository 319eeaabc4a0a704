"""The tally kept one change at a time equals a full recount (``count_indicator``) after any
sequence of pushes, edits, deletions and review changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kobo_tip.cases import build_cases
from kobo_tip.config import Settings, load_settings
from kobo_tip.counting import count_indicator
from kobo_tip.errors import UsageError
from kobo_tip.tally import Tally
from test_counting import AS_OF, stored
from test_counting_properties import FUZZ, submission

# Kobo's numbers and Central's text ids, so the event order's last tie-break is exercised both ways.
IDS = [*(str(number) for number in range(1, 13)), "uuid:0b", "uuid:a1", "uuid:c3"]


@st.composite
def change(draw: st.DrawFn) -> tuple[str, str, SimpleNamespace | str | None]:
    """One change of one submission: a new copy of it (new or edited), a deletion or a review."""
    sid = draw(st.sampled_from(IDS))
    kind = draw(st.sampled_from(["push", "push", "delete", "review"]))
    if kind == "push":
        return kind, sid, draw(submission(sid))  # type: ignore[arg-type]
    if kind == "review":
        return kind, sid, draw(st.sampled_from(["unreviewed", "approved", "on_hold", "rejected"]))
    return kind, sid, None


def applied(rows: dict[str, SimpleNamespace], kind: str, sid: str, what: object) -> SimpleNamespace | None:
    """The submission as the store holds it after the change (None: nothing to change)."""
    if kind == "push":
        assert isinstance(what, SimpleNamespace)
        return what
    if sid not in rows:
        return None  # a deletion or review of a submission never stored
    before = vars(rows[sid])
    return SimpleNamespace(
        **{**before, "deleted": True} if kind == "delete" else {**before, "review_status": what}
    )


@pytest.fixture
def project(example_project: Path) -> Settings:
    return load_settings(example_project)


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@FUZZ
@given(
    st.lists(st.sampled_from(IDS), max_size=8, unique=True).flatmap(
        lambda ids: st.tuples(*(submission(sid) for sid in ids))  # type: ignore[arg-type]
    ),
    st.lists(st.lists(change(), min_size=1, max_size=3), min_size=1, max_size=6),
)
def test_the_tally_equals_a_full_recount_after_any_changes(
    project: Settings, first: tuple[SimpleNamespace, ...], batches: list[list[tuple[str, str, object]]]
) -> None:
    rows = {row.submission_id: row for row in first}
    tally = Tally(build_cases(list(rows.values()), project).frame, project, AS_OF)
    pd.testing.assert_frame_equal(tally.counts(), recount(rows, project))
    for batch in batches:
        changed: dict[str, SimpleNamespace] = {}
        for kind, sid, what in batch:
            row = applied(rows, kind, sid, what)
            if row is not None:
                rows[sid] = changed[sid] = row
        tally.update(build_cases(list(changed.values()), project).frame)
        pd.testing.assert_frame_equal(tally.counts(), recount(rows, project))


def recount(rows: dict[str, SimpleNamespace], project: Settings) -> pd.DataFrame:
    return count_indicator(build_cases(list(rows.values()), project), project, AS_OF).counts


def test_a_person_whose_index_event_moves_to_another_quarter_is_counted_there_only(project: Settings) -> None:
    early = stored("1", "2025-11-10", given="Maria")
    later = stored("2", "2026-02-10", given="Maria")
    tally = Tally(build_cases([early, later], project).frame, project, AS_OF)
    assert quarter_totals(tally.counts()) == {"FY2026 Q1": 1}
    tally.update(build_cases([SimpleNamespace(**{**vars(early), "deleted": True})], project).frame)
    assert quarter_totals(tally.counts()) == {"FY2026 Q2": 1}, "the later event is the index event now"
    tally.update(build_cases([stored("2", "2026-02-10", given="Jo")], project).frame)
    assert quarter_totals(tally.counts()) == {"FY2026 Q2": 1}, "another person; Maria has none left"
    undated = stored("4", None, given="Maria")  # never counted, whatever else it says
    tally.update(build_cases([stored("3", "2026-05-10", given="Maria"), undated], project).frame)
    assert quarter_totals(tally.counts()) == {"FY2026 Q2": 1, "FY2026 Q3": 1}
    rows = [early, later, stored("2", "2026-02-10", given="Jo"), stored("3", "2026-05-10", given="Maria")]
    rows[0] = SimpleNamespace(**{**vars(early), "deleted": True})
    full = count_indicator(build_cases([*rows[:1], *rows[2:], undated], project), project, AS_OF)
    pd.testing.assert_frame_equal(tally.counts(), full.counts)


def quarter_totals(counts: pd.DataFrame) -> dict[str, int]:
    rows = counts[
        (counts.indicator == "identified_or_referred")
        & (counts.dimension == "total")
        & (counts.period_kind == "quarter")
        & (counts.value > 0)
    ]
    return dict(zip(rows.period, rows.value.astype(int), strict=True))


def test_a_project_with_a_merges_file_is_counted_in_full(project: Settings, tmp_path: Path) -> None:
    merges = dataclasses.replace(project.indicator, merges_path=tmp_path / "merges.csv")
    with pytest.raises(UsageError, match="merges"):
        Tally(
            build_cases([stored("1")], project).frame, dataclasses.replace(project, indicator=merges), AS_OF
        )
