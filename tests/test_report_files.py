"""CSV writing, formula neutralising, Markdown escaping and restatement reasons, in isolation."""

from __future__ import annotations

import csv
import datetime as dt
import os
import time
from pathlib import Path

import pandas as pd

from counts_factory import Person, counts_table
from kobo_tip import indicator
from kobo_tip.privacy import internal_view
from kobo_tip.report import files
from kobo_tip.report.document import markdown_text
from kobo_tip.report.restatements import changed_cells, published_cells, reason
from kobo_tip.store import RunInfo


def test_formula_cells_are_made_inert() -> None:
    for text in ("=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=x", "\r=x"):
        assert files.inert(text) == "'" + text
    for text in ("18-59", "<5", "x", "FY2026 Q1", "", "1200"):
        assert files.inert(text) == text
    assert files.inert(None) == "" and files.inert(7) == "7"


def test_columns_are_made_inert_whatever_their_dtype() -> None:
    for dtype in (object, "string", "category"):
        column = pd.Series(["=1+1", "ok", None, "@x"], dtype=dtype)
        assert files.inert_column(column).tolist() == ["'=1+1", "ok", "", "'@x"], dtype
    assert files.inert_column(pd.Series([-1, 2])).tolist() == [-1, 2]


def test_data_quality_csv_neutralises_submission_values(tmp_path: Path) -> None:
    findings = pd.DataFrame(
        [
            ("17", "malformed", "age_years", '=HYPERLINK("http://x")'),
            ("18", "not_linkable", "person_key", "@SUM"),
        ],
        columns=list(indicator.DATA_QUALITY_COLUMNS),
    )
    path = files.write_data_quality(tmp_path / "data_quality.csv", findings)
    rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
    assert rows[0] == list(indicator.DATA_QUALITY_COLUMNS)
    assert rows[1][3] == '\'=HYPERLINK("http://x")' and rows[2][3] == "'@SUM"
    assert not list(tmp_path.glob("*.tmp")), "written through a temporary file, then renamed"


def test_markdown_text_escapes_markup_and_table_syntax() -> None:
    assert markdown_text("<script>alert(1)</script>") == "&lt;script>alert(1)&lt;/script>"
    assert markdown_text("a | b") == "a \\| b"
    assert markdown_text("<5") == "<5"
    assert markdown_text("x_y *z* [l](u)") == "x\\_y \\*z\\* \\[l\\](u)"
    assert markdown_text("two\nlines") == "two lines"
    assert markdown_text("&amp;") == "&amp;amp;"


def run(run_id: int, **counts: int) -> RunInfo:
    base = {"new": 0, "edited": 0, "unchanged": 0, "deleted": 0, "status_changed": 0}
    base.update(counts)
    return RunInfo(
        id=run_id,
        started="2026-01-02T00:00:00Z",
        finished="2026-01-02T00:01:00Z",
        source="file x",
        fetched=0,
        seconds=1.0,
        error=None,
        **base,
    )


def test_reason_names_syncs_statuses_and_a_changed_merges_file(tmp_path: Path) -> None:
    since = "2026-01-01T00:00:00Z"
    runs = [run(2, new=3, edited=1), run(3, deleted=1, status_changed=2)]
    assert reason(runs, since, None) == (
        "3 new, 1 edited, 1 deleted submissions synced since 2026-01-01T00:00:00Z; 2 review statuses changed"
    )
    merges = tmp_path / "merges.csv"
    merges.write_text("keep_submission_id,merge_submission_id,decided_by,decided_on\n", encoding="utf-8")
    assert reason([], since, merges) == "merges file merges.csv changed"
    old = time.mktime(dt.datetime(2025, 12, 1).timetuple())
    os.utime(merges, (old, old))
    assert reason([], since, merges).startswith("no sync since 2026-01-01T00:00:00Z")


def test_only_cells_covering_the_same_days_are_compared() -> None:
    early = counts_table([Person(0, frozenset({"identified"}))] * 6, quarters=2)
    previous = published_cells(internal_view(early))  # counted through 2026-02-15: Q2 was running
    later = counts_table(
        [Person(0, frozenset({"identified"}))] * 7 + [Person(1, frozenset({"identified"}))] * 3, quarters=2
    )
    changes = changed_cells(previous, dt.date(2026, 2, 15), internal_view(later), dt.date(2026, 4, 15))
    periods = {change[1] for change in changes}
    assert periods == {"FY2026 Q1"}, "Q2, FY2026 and LOP covered fewer days before"
    total = next(c for c in changes if c[2] == "total" and c[0] == "identified")
    assert total[4:] == ("6", "7")
