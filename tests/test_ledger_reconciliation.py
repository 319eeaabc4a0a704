"""The as-reported ledger and the internal reconciliation on a hand-built case (contract sections 4, 7).

Six persons identified in FY2026 Q1 are released; by the next release one is deleted, one merged
into another, one's stakeholder left the roster, one's age edited, one late person arrived for Q1
and one new person for Q2. Every number below is worked out by hand from that story.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd

from kobo_tip.config import Settings, load_settings
from kobo_tip.counting import CountResult
from kobo_tip.ledger import AsReported, Ledger, as_reported, merged_groups
from kobo_tip.report import cutoff
from kobo_tip.report.as_reported import reconcile
from kobo_tip.store import SqliteStore
from test_counting import count, stored

FIRST, SECOND = dt.date(2026, 1, 15), dt.date(2026, 4, 15)
Q1_END, Q2_END = dt.date(2025, 12, 31), dt.date(2026, 3, 31)
NAME = "identified"
CELL = ["indicator", "period", "dimension", "category"]


def person(sid: str, given: str, date: str, **options: object) -> object:
    return stored(sid, date, given=given, submitted=f"{date}T12:00:00", **options)  # type: ignore[arg-type]


def released(
    settings: Settings, rows: list[object], as_of: dt.date, through: dt.date, book: Ledger, **options: object
) -> tuple[AsReported, CountResult]:
    result = count(rows, settings, as_of, persons=True, **options)  # type: ignore[arg-type]
    assert result.persons is not None
    layout = cutoff.counts_through(result.counts, through)
    groups = merged_groups(result.rows)
    return as_reported(
        layout, result.persons, dict.fromkeys(result.persons, groups), book, [], stamp=f"{as_of}T09:00:00Z"
    ), result


def value(table: pd.DataFrame, period: str, dimension: str = "total", category: str = "all") -> int:
    return int(table.set_index(CELL)["value"][(NAME, period, dimension, category)])


def test_the_ledger_and_its_reconciliation_by_hand(example_project: Path, tmp_path: Path) -> None:
    settings = load_settings(example_project)
    first_rows = [
        person("1", "Aa", "2025-11-10"),
        person("2", "Bb", "2025-12-01"),  # deleted later
        person("3", "Cc", "2025-11-20"),  # aged 30, edited to 70 later
        person("4", "Dd", "2025-10-25"),  # keeps 5 merged into it later
        person("5", "Ee", "2025-10-28"),  # merged into 4 later
        person("6", "Ff", "2025-11-05", stakeholder="bc_aranya"),  # its stakeholder leaves the roster
    ]
    store = SqliteStore.open(tmp_path / "store.sqlite")
    first, _ = released(settings, first_rows, FIRST, Q1_END, Ledger.of(store.ledger()))
    assert value(first.table, "FY2026 Q1") == 6
    store.save_release("donor", k=5, through=str(Q1_END), last_run=0, cells={"x": [1]}, ledger=first.added)
    store.save_release("public", k=10, through=str(Q1_END), last_run=0, cells={"x": [1]}, ledger=first.added)
    book = Ledger.of(store.ledger())
    assert len(book.persons[book.persons["indicator"] == NAME]) == 6, "saved once, though two audiences"

    second_rows = [
        first_rows[0],
        stored("2", "2025-12-01", given="Bb", deleted=True),
        stored("3", "2025-11-20", given="Cc", age="70", submitted="2025-11-20T12:00:00"),
        first_rows[3],
        first_rows[4],
        first_rows[5],
        stored("7", "2025-12-15", given="Gg", submitted="2026-02-01T08:00:00"),  # late for Q1
        person("8", "Hh", "2026-02-10"),  # new in Q2
    ]
    roster = tuple(m for m in settings.form.roster if m.id != "bc_aranya")
    later = dataclasses.replace(settings, form=dataclasses.replace(settings.form, roster=roster))
    second, result = released(later, second_rows, SECOND, Q2_END, book, merges=[("4", "5")])
    table = second.table
    assert value(table, "FY2026 Q1") == 6, "the released quarter keeps its six"
    assert (
        value(table, "FY2026 Q1", "age_band", "18-59") == 6
        and value(table, "FY2026 Q1", "age_band", "60+") == 0
    )
    assert value(table, "FY2026 Q2") == 2, "Q2's new person and the late one"
    assert value(table, "FY2026") == 8 and value(table, "LOP") == 8
    added = {(key, quarter) for name, key, quarter, *_ in second.added.persons if name == NAME}
    assert {quarter for _, quarter in added} == {"FY2026 Q2"} and len(added) == 2

    store.save_release("donor", k=5, through=str(Q2_END), last_run=0, cells={"x": [1]}, ledger=second.added)
    reconciled = reconcile(Ledger.of(store.ledger()), result, Q2_END)
    cells = reconciled.cells.set_index(CELL)
    numbers = ["released", "event_basis", "late_added", "removed", "reported_late", "edited"]

    def row(period: str, dimension: str = "total", category: str = "all") -> list[int]:
        return cells.loc[(NAME, period, dimension, category), numbers].astype(int).tolist()

    # Q1: released A B C D E F; today A C D(+E merged) G; G is late, B E F removed.
    assert row("FY2026 Q1") == [6, 4, 1, 3, 0, 0]
    assert row("FY2026 Q1", "age_band", "18-59") == [6, 3, 1, 3, 0, 1], "C moved out by an edit"
    assert row("FY2026 Q1", "age_band", "60+") == [0, 1, 0, 0, 0, -1], "and in here"
    assert row("FY2026 Q2") == [2, 1, 0, 0, 1, 0], "H new, G reported late here"
    gone = reconciled.removed[reconciled.removed["indicator"] == NAME]
    assert sorted(zip(gone["submission_id"], gone["reason"], strict=True)) == [
        ("2", "deleted"),
        ("5", "merged"),
        ("6", "stakeholder_not_on_roster"),
    ]
    assert reconciled.waiting == 0
    store.close()
