"""The as-reported basis (contract section 4): quarters frozen at their first outside release.

Two successive donor releases of one project: the first through FY2026 Q4, the second through
FY2027 Q1 after a late person, an edit and a deletion. Released quarters keep every true value and
every shown cell (``as_reported``), or move only by 0 or at least k (``event_date``); the internal
report reconciles the two bases cell by cell; the intruder of ``attack.py`` narrows nothing.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from attack import attack, exposed
from conftest import _replace_sections, version_4_store
from kobo_tip.config import Settings, load_settings, parse_language
from kobo_tip.errors import StoreError
from kobo_tip.labels import load_labels
from kobo_tip.ledger import KeptLedger
from kobo_tip.privacy import QUARTER, Release
from kobo_tip.report import render_reports
from kobo_tip.report.render import stored_release
from kobo_tip.report.texts import ReportWords
from kobo_tip.store import open_store
from report_project import AS_OF, make_project, read_export, sync, write_export
from test_disclosure import held
from test_postgres_store import on_postgres
from test_report_restatements import counted_row, late_submission

FIRST = dt.date(2026, 11, 15)  # the first release: through FY2026 Q4
RELEASED = ["FY2026 Q1", "FY2026 Q2", "FY2026 Q3", "FY2026 Q4"]
CELL = ["indicator", "period", "dimension", "category"]
K = 5


def with_basis(config: Path, basis: str) -> Settings:
    text = config.read_text(encoding="utf-8")
    report = 'out_dir = "reports"\naudiences = ["internal", "donor"]\n' + f'outside_basis = "{basis}"'
    config.write_text(_replace_sections(text, {"report": report}), encoding="utf-8")
    return load_settings(config)


def donor_releases(settings: Settings) -> list[Release]:
    with open_store(settings) as store:
        return [stored_release(r) for r in store.releases("donor")]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def internal_value(settings: Settings, key: tuple[str, str, str, str]) -> int:
    rows = read_csv(settings.report.out_dir / "internal" / "counts.csv")
    return int(
        next(r["value"] for r in rows if (r["indicator"], r["period"], r["dimension"], r["category"]) == key)
    )


def quarter_cells(release: Release, quarters: list[str]) -> pd.DataFrame:
    table = release.table
    return table[table["period"].isin(quarters)].set_index(CELL)[["value", "published"]]


def alone(rows: list[dict]) -> list[dict]:
    """The rows of persons with one submission only: their one row is their index event."""
    parts = ("person/uic_given", "person/uic_mother", "person/birth_year", "person/gender")
    seen: dict[tuple, int] = {}
    for row in rows:
        person = tuple(row.get(part) for part in parts)
        seen[person] = seen.get(person, 0) + 1
    return [r for r in rows if seen[tuple(r.get(part) for part in parts)] == 1]


class Changes:
    """What happened between the two releases: who was added late, edited and deleted."""

    def __init__(self, rows: list[dict], settings: Settings) -> None:
        self.late = late_submission(rows, settings)  # a new person identified in FY2026 Q2, sent now
        released = [r for r in alone(rows) if r["event/event_date"] <= "2026-09-30"]
        self.edited = counted_row(released, settings)
        self.gone = counted_row([r for r in released if r is not self.edited], settings)
        self.old_origin = self.edited.get("person/country_origin")
        self.new_origin = "la" if self.old_origin != "la" else "vn"


def two_releases(
    root: Path, basis: str, *, store: Callable[[Path], object] | None = None
) -> tuple[Settings, Changes]:
    """A first release through FY2026 Q4, then late, edited and deleted submissions and a second
    release through FY2027 Q1 (``store`` puts the project's store elsewhere, given its config)."""
    config = make_project(root, submissions=400, dhis2=False)
    settings = with_basis(config, basis)
    if store is not None:
        store(config)
        settings = load_settings(config)
    sync(config)
    render_reports(settings, audiences=["internal", "donor"], as_of=FIRST)
    return settings, second_release(settings)


def second_release(settings: Settings) -> Changes:
    """Late, edited and deleted submissions synced, then released through FY2027 Q1."""
    config = settings.path
    rows = read_export(config)
    changes = Changes(rows, settings)
    edited = copy.deepcopy(changes.edited)
    edited.update({"person/country_origin": changes.new_origin, "_uuid": "edited-0001"})
    kept = [edited if r is changes.edited else r for r in rows if r is not changes.gone]
    write_export(config, [*kept, changes.late])
    sync(config)
    render_reports(settings, audiences=["internal", "donor"], as_of=AS_OF)
    return changes


@pytest.fixture(scope="module")
def as_reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Changes]]:
    from conftest import SECRET

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOBO_TIP_SECRET", SECRET)
        yield two_releases(tmp_path_factory.mktemp("as_reported") / "p", "as_reported")


def test_no_cell_of_a_released_quarter_changes_as_reported(as_reported: tuple[Settings, Changes]) -> None:
    settings, _ = as_reported
    first, second = donor_releases(settings)
    assert (first.through, second.through) == ("2026-09-30", "2026-12-31")
    before, after = quarter_cells(first, RELEASED), quarter_cells(second, RELEASED)
    assert before["value"].equals(after["value"].reindex(before.index)), "true values frozen"
    both = before.join(after, suffixes=("_1", "_2"))
    shown = both["published_1"].str.isdigit() & both["published_2"].str.isdigit()
    assert shown.sum() > 100 and (both.loc[shown, "published_1"] == both.loc[shown, "published_2"]).all()
    restated = read_csv(settings.report.out_dir / "donor" / "restatements.csv")
    assert restated == [], "released quarters never change, so nothing is restated outside"


def test_late_person_counts_in_the_new_quarter_and_years_sum_the_quarters(
    as_reported: tuple[Settings, Changes],
) -> None:
    settings, _ = as_reported
    first, second = donor_releases(settings)
    table = second.table.set_index(CELL)["value"]
    headline = "identified_or_referred"
    new_quarter = internal_value(settings, (headline, "FY2027 Q1", "total", "all"))
    assert table[(headline, "FY2027 Q1", "total", "all")] == new_quarter + 1, "the late person is added"
    # LOP as reported is the sum of the quarters as reported; FY2026 is as first released.
    quarters = second.table[(second.table["period_kind"] == QUARTER) & (second.table["dimension"] == "total")]
    lop = table[(headline, "LOP", "total", "all")]
    assert lop == quarters.loc[quarters["indicator"] == headline, "value"].sum()
    fy2026 = (headline, "FY2026", "total", "all")
    assert table[fy2026] == first.table.set_index(CELL)["value"][fy2026]
    # Event basis: FY2026 lost the deleted person and gained the late one.
    assert internal_value(settings, fy2026) == table[fy2026]


def test_the_internal_report_reconciles_every_released_cell(as_reported: tuple[Settings, Changes]) -> None:
    settings, changes = as_reported
    rows = read_csv(settings.report.out_dir / "internal" / "as_reported.csv")
    header = (
        "indicator,period,dimension,category,released,event_basis,late_added,removed,reported_late,edited"
    )
    assert ",".join(rows[0]) == header
    numbers = ["released", "event_basis", "late_added", "removed", "reported_late", "edited"]
    cells = {
        (r["indicator"], r["period"], r["dimension"], r["category"]): {n: int(r[n]) for n in numbers}
        for r in rows
    }
    for cell in cells.values():
        assert cell["released"] == (
            cell["event_basis"]
            - cell["late_added"]
            + cell["reported_late"]
            + cell["removed"]
            + cell["edited"]
        )
    assert {key[1] for key in cells} == {*RELEASED, "FY2027 Q1"}
    name = "identified_or_referred"
    late = cells[(name, "FY2026 Q2", "total", "all")]
    assert late["late_added"] == 1 and late["released"] == late["event_basis"] - 1 + late["removed"]
    assert cells[(name, "FY2027 Q1", "total", "all")]["reported_late"] == 1
    gone_quarter = quarter_of(changes.gone["event/event_date"])
    assert cells[(name, gone_quarter, "total", "all")]["removed"] >= 1
    edited_quarter = quarter_of(changes.edited["event/event_date"])
    old = cells[(name, edited_quarter, "country_of_origin", changes.old_origin)]
    new = cells[(name, edited_quarter, "country_of_origin", changes.new_origin)]
    assert old["edited"] >= 1 and new["edited"] <= -1, "the edit keeps the released origin"
    assert sum(c["edited"] for k, c in cells.items() if k[2] == "total") == 0, "totals move by none"
    html = (settings.report.out_dir / "internal" / "report.html").read_text(encoding="utf-8")
    section = html.split('id="as-reported"')[1].split("</section>")[0]
    assert changes.gone["_id"].__str__() in section and "deleted" in section
    markdown = (settings.report.out_dir / "internal" / "report.md").read_text(encoding="utf-8")
    assert "## As reported" in markdown
    assert not (settings.report.out_dir / "donor" / "as_reported.csv").exists(), "internal only"


def quarter_of(day: str) -> str:
    date = dt.date.fromisoformat(day)
    year = date.year + (1 if date.month >= 10 else 0)
    return f"FY{year} Q{((date.month - 10) % 12) // 3 + 1}"


def test_the_donor_report_states_its_basis(as_reported: tuple[Settings, Changes]) -> None:
    settings, _ = as_reported
    html = (settings.report.out_dir / "donor" / "report.html").read_text(encoding="utf-8")
    assert "Quarters as reported: late cases count in the quarter they were reported" in html
    assert "held back" not in html


def test_the_intruder_narrows_no_small_cell_of_the_as_reported_releases(
    as_reported: tuple[Settings, Changes],
) -> None:
    settings, _ = as_reported
    made = donor_releases(settings)
    findings = attack([held(r) for r in made], K)
    assert findings, "the releases hold small cells to attack"
    broken = exposed(findings, K)
    assert not broken, f"{len(broken)} cells narrowed below {math.ceil(K / 2)} values: {broken[:3]}"


def test_on_the_event_date_basis_a_shown_cell_moves_by_none_or_at_least_k(
    tmp_path: Path, secret: str
) -> None:
    settings, _ = two_releases(tmp_path / "p", "event_date")
    first, second = donor_releases(settings)
    both = quarter_cells(first, RELEASED).join(quarter_cells(second, RELEASED), suffixes=("_1", "_2"))
    shown = both["published_1"].str.isdigit() & both["published_2"].str.isdigit()
    moved = (both.loc[shown, "published_1"].astype(int) - both.loc[shown, "published_2"].astype(int)).abs()
    assert shown.sum() > 100 and not ((moved > 0) & (moved < K)).any()
    assert not (settings.report.out_dir / "internal" / "as_reported.csv").exists()
    html = (settings.report.out_dir / "donor" / "report.html").read_text(encoding="utf-8")
    assert "Quarters by event date" in html and "Quarters as reported" not in html


def ledger_of(settings: Settings) -> tuple[set[tuple], set[tuple], set[tuple]]:
    """The store's ledger without its times: quarters, cells, and persons with their categories."""
    with open_store(settings, create=False) as store:
        rows = store.ledger()
    return (
        {(i, q, seeded) for i, q, _, seeded in rows.quarters},
        set(rows.cells),
        {(i, key, q, sid, categories) for i, key, q, sid, _, categories in rows.persons},
    )


def test_postgres_keeps_the_same_ledger_as_sqlite(
    as_reported: tuple[Settings, Changes], tmp_path: Path, pg_database: str, secret: str
) -> None:
    embedded, _ = as_reported
    shared, _ = two_releases(
        tmp_path / "p", "as_reported", store=lambda config: on_postgres(config, pg_database, "ledger")
    )
    assert shared.store.url and not shared.store.path.exists()
    quarters, cells, persons = ledger_of(shared)
    assert len(quarters) == 15 and len(persons) > 300
    assert (quarters, cells, persons) == ledger_of(embedded)
    for settings in (shared, embedded):  # what ``KeptLedger`` compares, alike in both back ends
        with open_store(settings, create=False) as store:
            assert store.ledger_mark() == (len(quarters), len(cells), len(persons))
    for name in ("counts.csv", "restatements.csv"):
        ours = (shared.report.out_dir / "donor" / name).read_bytes()
        assert ours == (embedded.report.out_dir / "donor" / name).read_bytes(), name


def test_a_store_released_by_the_previous_version_starts_its_ledger_from_its_releases(
    tmp_path: Path, secret: str
) -> None:
    """A store made before the ledger (schema 4, releases by event date) is migrated; the first
    release after it keeps the quarters it finds released exactly as they were shown, and the
    internal report reconciles them."""
    config = make_project(tmp_path / "p", submissions=400, dhis2=False)
    settings = with_basis(config, "event_date")
    sync(config)
    render_reports(settings, audiences=["internal", "donor"], as_of=FIRST)
    version_4_store(settings.store.path)  # what the previous version left: no ledger tables
    with pytest.raises(StoreError, match=r"schema version 4.*kobo-tip store migrate"):
        open_store(settings)
    open_store(settings, migrate=True).close()
    assert ledger_of(settings) == (set(), set(), set())
    settings = with_basis(config, "as_reported")
    second_release(settings)
    first, second = donor_releases(settings)
    before, after = quarter_cells(first, RELEASED), quarter_cells(second, RELEASED)
    assert before["value"].equals(after["value"].reindex(before.index)), "the released values stay"
    quarters, _, persons = ledger_of(settings)
    seeded = {q for _, q, s in quarters if s}
    assert seeded == set(RELEASED), "the quarters released before the ledger are seeded from the releases"
    assert {q for _, q, s in quarters if not s} == {"FY2027 Q1"}
    assert {q for _, _, q, _, _ in persons} == {*RELEASED, "FY2027 Q1"}, "their persons taken in"
    rows = read_csv(settings.report.out_dir / "internal" / "as_reported.csv")
    numbers = ["released", "event_basis", "late_added", "removed", "reported_late", "edited"]
    for row in rows:
        released, event, late, removed, reported, edited = (int(row[n]) for n in numbers)
        assert released == event - late + reported + removed + edited
    headline = {
        r["period"]: r
        for r in rows
        if (r["indicator"], r["dimension"]) == ("identified_or_referred", "total")
    }
    late = int(headline["FY2027 Q1"]["reported_late"])
    assert late >= 1, "the late person, at least"
    table = second.table.set_index(CELL)["value"]
    key = ("identified_or_referred", "FY2027 Q1", "total", "all")
    assert table[key] == internal_value(settings, key) + late


@pytest.mark.parametrize(
    ("language", "as_reported_words", "event_date_words"),
    [
        ("English (en)", "Quarters as reported: late cases count", "Quarters by event date"),
        ("French (fr)", "Trimestres tels que déclarés : les cas signalés en retard", "Trimestres par date"),
    ],
)
def test_the_basis_is_stated_in_the_report_language(
    language: str, as_reported_words: str, event_date_words: str
) -> None:
    words = ReportWords.for_language(load_labels(parse_language(language)), ())
    assert words.text("rule.as_reported").startswith(as_reported_words)
    assert words.text("rule.event_date").startswith(event_date_words)
    assert not words.labels.warnings, "both translations carry the keys"


def test_the_kept_ledger_is_read_again_only_when_a_release_adds_to_it(tmp_path: Path, secret: str) -> None:
    """Serve's render child keeps the ledger between renders (``ledger.KeptLedger``): not read again
    for a render after a push, read again once an outside release (here by another render, as
    ``kobo-tip report`` would make it) added to it, and the reconciliation as a fresh read gives."""
    settings = with_basis(make_project(tmp_path / "p", submissions=200, dhis2=False), "as_reported")
    sync(settings.path)
    kept = KeptLedger()
    render_reports(settings, audiences=["internal"], as_of=AS_OF, kept_ledger=kept)
    render_reports(settings, audiences=["internal"], as_of=AS_OF, kept_ledger=kept)
    assert kept.reads == 1
    render_reports(settings, audiences=["donor"], as_of=AS_OF)
    reconciled = settings.report.out_dir / "internal" / "as_reported.csv"
    render_reports(settings, audiences=["internal"], as_of=AS_OF, kept_ledger=kept)
    assert kept.reads == 2
    with_kept = reconciled.read_bytes()
    assert len(read_csv(reconciled)) > 10
    render_reports(settings, audiences=["internal"], as_of=AS_OF, kept_ledger=kept)
    assert kept.reads == 2
    render_reports(settings, audiences=["internal"], as_of=AS_OF)
    assert reconciled.read_bytes() == with_kept
