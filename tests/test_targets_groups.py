"""Group targets ("children", "girls", "0-4+5-11") and baselines: read from the targets file, their
actuals summed from published cells, and those sums audited with the release (contract section 6)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from attack import attack, exposed, held
from conftest import SECRET
from counts_factory import Person, counts_table, quarter_periods
from kobo_tip import privacy
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import ConfigError
from kobo_tip.privacy import DisclosureError
from kobo_tip.report import render_reports
from kobo_tip.report.iptt import NOT_PUBLISHED, IpttRow, audited_sums, iptt_frame, iptt_rows
from kobo_tip.report.tables import PublishedCounts
from kobo_tip.targets import COLUMNS, Targets, check_targets, read_targets
from report_project import AS_OF, make_project, sync

KS = {"donor": 5, "public": 10}
NAME = "identified_or_referred"
LAYOUT = ["indicator", "period", "period_start", "period_end", "dimension", "category"]
BOTH = frozenset({"identified", "referred"})
CHILDREN = ("0-4", "5-11", "12-17")


@pytest.fixture
def settings(make_project: Callable[..., Path]) -> Settings:
    return load_settings(make_project())  # default age bands 0, 5, 12, 18, 60; FY from October


def crowd() -> list[Person]:
    """Four quarters: many adults, some children (a few of them boys), and a few men."""
    people = []
    for quarter in range(4):
        people += [Person(quarter, BOTH) for _ in range(30)]
        people += [Person(quarter, BOTH, age_band="12-17") for _ in range(6 + quarter)]
        people += [Person(quarter, BOTH, age_band="5-11") for _ in range(6)]
        people += [Person(quarter, BOTH, age_band="5-11", gender="male") for _ in range(2)]
        people += [Person(quarter, BOTH, gender="male") for _ in range(8)]
    return people


def categories_of(table: pd.DataFrame) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for dimension, category in table[["dimension", "category"]].drop_duplicates().itertuples(index=False):
        out.setdefault(dimension, set()).add(category)
    return out


def read(settings: Settings, tmp_path: Path, rows: list[list[object]], table: pd.DataFrame) -> Targets:
    path = tmp_path / "targets.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([[*COLUMNS, "baseline"], *rows])
    return check_targets(read_targets(path), settings, categories_of(table), f"Targets file {path}")


def test_named_and_written_out_groups_and_baselines_are_read(settings: Settings, tmp_path: Path) -> None:
    table = counts_table(crowd())
    found = read(
        settings,
        tmp_path,
        [
            [NAME, "LOP", "age_band", "children", "1,800", "", "1 200"],
            [NAME, "LOP", "age_band_x_gender", "girls", 300, "", ""],
            [NAME, "LOP", "age_band", "12-17+5-11", 20, "", "7"],
            [NAME, "LOP", "age_band_x_gender", "women", 20, "", ""],
            [NAME, "LOP", "gender", "female", 20, "", ""],
        ],
        table,
    )
    by_category = {t.category: t for t in found.by_key.values()}
    assert by_category["children"].parts == CHILDREN
    assert (by_category["children"].target, by_category["children"].baseline) == (1800, 1200)
    assert by_category["girls"].parts == tuple(f"{band}|female" for band in CHILDREN)
    assert by_category["women"].parts == ("18-59|female", "60+|female")
    assert by_category["12-17+5-11"].parts == ("12-17", "5-11")
    assert by_category["female"].parts == () and by_category["female"].baseline is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([NAME, "LOP", "gender", "girls", 5, "", ""], r"the group 'girls' is a group of age_band_x_gender"),
        ([NAME, "LOP", "age_band", "0-4+teens", 5, "", ""], r"'0-4\+teens' is not a category of age_band"),
        ([NAME, "LOP", "age_band", "0-4+0-4", 5, "", ""], r"two or more different categories"),
        ([NAME, "LOP", "person_category", "gbv+trafficking_presumed", 5, "", ""], r"cannot be counted"),
        ([NAME, "LOP", "total", "all", 5, "", "many"], r"baseline 'many' must be a whole number"),
    ],
)
def test_a_bad_group_or_baseline_names_its_line(
    settings: Settings, tmp_path: Path, row: list[object], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"line 2: .*" + message):
        read(settings, tmp_path, [row], counts_table(crowd()))


def group_rows(rows: list[IpttRow], category: str) -> dict[str, IpttRow]:
    return {row.period: row for row in rows if row.category == category}


def test_group_actuals_are_sums_of_published_cells_and_audited(settings: Settings, tmp_path: Path) -> None:
    table = counts_table(crowd())
    through = max(p.end for p in quarter_periods(4) if p.kind == "quarter").isoformat()
    outcome = privacy.protect(table, KS, {}, through)
    quarters = [p.label for p in quarter_periods(4) if p.kind == "quarter"]
    found = read(
        settings,
        tmp_path,
        [
            *([NAME, q, "age_band", "children", 10, "", ""] for q in quarters),
            *([NAME, q, "age_band_x_gender", "boys", 2, "", ""] for q in quarters),
            *([NAME, q, "age_band", "12-17+18-59", 10, "", ""] for q in quarters),
            [NAME, "LOP", "age_band", "children", 100, "", "25"],
            [NAME, "LOP", "age_band_x_gender", "girls", 60, "", ""],
        ],
        table,
    )
    shown_sums = 0
    for audience, release in outcome.releases.items():
        counts = PublishedCounts(release.published)
        last = [p for p in counts.periods if p.kind == "quarter"][-1]
        rows = iptt_rows(counts, found, last, 10, KS[audience])
        for category, parts in (
            ("children", CHILDREN),
            ("girls", tuple(f"{b}|female" for b in CHILDREN)),
            ("boys", tuple(f"{b}|male" for b in CHILDREN)),
            ("12-17+18-59", ("12-17", "18-59")),
        ):
            dimension = "age_band_x_gender" if category in ("girls", "boys") else "age_band"
            for period, row in group_rows(rows, category).items():
                if row.cumulative:
                    continue
                cells = [counts.cell(NAME, period, dimension, part).text for part in parts]
                if all(text.isdigit() for text in cells):
                    assert row.actual.text == str(sum(int(text) for text in cells)), (audience, period)
                else:  # a hidden part hides the group's actual, and its percentage and flag
                    assert not row.actual.is_number and row.percent == row.flag == ""
                    # x only where the cells show k or more, <k where one <k and zeros are all
                    # of it; else it says nothing.
                    k = KS[audience]
                    floor = sum(int(t) if t.isdigit() else k if t == "x" else 0 for t in cells)
                    small = [t for t in cells if t != "0"] == [f"<{k}"]
                    expected = "x" if floor >= k else f"<{k}" if small else NOT_PUBLISHED
                    assert row.actual.text == expected, (audience, period, cells)
        if audience == "donor":
            groups = [r for c in ("children", "12-17+18-59") for r in group_rows(rows, c).values()]
            assert any(r.actual.is_number for r in groups if not r.cumulative)
        # The boys (two a quarter) are small: hidden in every quarter, never summed into a number.
        assert not any(r.actual.is_number for r in group_rows(rows, "boys").values())
        frame = iptt_frame(rows)
        lop = frame[frame["period"] == "LOP"].set_index("category")["baseline"]
        assert (lop["children"], lop["girls"]) == ("25", "")
        sums = audited_sums(rows, counts.periods)
        shown_sums += len(sums)
        privacy.prove_with_sums(audience, KS, outcome, {}, sums)
        k = KS[audience]
        mine = [held(r) for a in KS if KS[a] >= k for r in [outcome.releases[a]]]
        index = [a for a in KS if KS[a] >= k].index(audience)
        ranges = [(index, list(cells), int(text) if text.isdigit() else text) for cells, text in sums]
        findings = attack(mine, k, sums=ranges)
        assert findings and not exposed(findings, k), exposed(findings, k)[:3]
    assert shown_sums > 0, "some group and cumulative actuals are published numbers"


def test_a_sum_that_would_give_away_a_small_cell_is_refused() -> None:
    table = counts_table(crowd())
    through = max(p.end for p in quarter_periods(4) if p.kind == "quarter").isoformat()
    outcome = privacy.protect(table, KS, {}, through)
    donor = outcome.releases["donor"].table
    small = donor[(donor["value"] > 0) & (donor["value"] < 5) & (donor["indicator"] == NAME)].iloc[0]
    key = (NAME, small["period"], small["dimension"], small["category"])
    big = donor[(donor["value"] >= 5) & (donor["published"].str.isdigit()) & (donor["indicator"] == NAME)]
    other = big.iloc[0]
    pair = [key, (NAME, other["period"], other["dimension"], other["category"])]
    forged = str(int(small["value"]) + int(other["value"]))  # a group figure beside the release
    with pytest.raises(DisclosureError, match="donor release would let"):
        privacy.prove_with_sums("donor", KS, outcome, {}, [(pair, forged)])
    privacy.prove_with_sums("donor", KS, outcome, {}, [(pair, NOT_PUBLISHED)])  # hidden: nothing said


def test_a_report_shows_group_targets_and_baselines_in_iptt_csv_and_xlsx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    config = make_project(tmp_path / "project", dhis2=False)
    with config.open("a", encoding="utf-8") as handle:
        handle.write('\n[targets]\npath = "targets.csv"\n')
    rows = [
        [NAME, "LOP", "total", "all", "1,000", "", "400"],
        [NAME, "LOP", "age_band", "children", 100, "donor group", "1 200"],
        [NAME, "LOP", "age_band_x_gender", "girls", 60, "", ""],
        [NAME, "LOP", "age_band", "12-17+18-59", 300, "", ""],
    ]
    with (config.parent / "targets.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([[*COLUMNS, "baseline"], *rows])
    settings = sync(config)
    render_reports(settings, audiences=("internal", "donor"), as_of=AS_OF)
    for audience in ("internal", "donor"):
        folder = settings.report.out_dir / audience
        with (folder / "counts.csv").open(encoding="utf-8", newline="") as handle:
            cells = {
                (r["period"], r["dimension"], r["category"]): r["value"]
                for r in csv.DictReader(handle)
                if r["indicator"] == NAME
            }
        with (folder / "iptt.csv").open(encoding="utf-8", newline="") as handle:
            iptt = {(r["period"], r["category"]): r for r in csv.DictReader(handle)}
        for category, dimension, parts in (
            ("children", "age_band", CHILDREN),
            ("girls", "age_band_x_gender", tuple(f"{b}|female" for b in CHILDREN)),
            ("12-17+18-59", "age_band", ("12-17", "18-59")),
        ):
            shown = [cells[("LOP", dimension, part)] for part in parts]
            row = iptt[("LOP", category)]
            if audience == "internal":  # the IPTT counts the ended quarters; counts.csv the running one too
                assert row["actual"].isdigit()
            elif all(text.isdigit() for text in shown):
                assert row["actual"] == str(sum(int(text) for text in shown)), (audience, category)
            else:
                assert not row["actual"].isdigit() and row["percent_achieved"] == "", (audience, category)
        if audience == "internal":
            assert iptt[("LOP", "12-17+18-59")]["actual"].isdigit()
        assert (iptt[("LOP", "all")]["baseline"], iptt[("LOP", "children")]["baseline"]) == ("400", "1200")
        sheet = openpyxl.load_workbook(folder / "iptt.xlsx")["IPTT"]
        table = [list(r) for r in sheet.iter_rows(values_only=True)]
        first = next(i for i, r in enumerate(table) if r[0] == "Indicator")
        # Rows are in words; the last column keeps the indicator|dimension|category codes.
        body = {tuple(str(r[-1]).split("|")): r for r in table[first + 1 :] if r[-1]}
        assert body[(NAME, "age_band", "children")][3] == 1200
        assert body[(NAME, "total", "all")][3] == 400
        assert body[(NAME, "age_band_x_gender", "girls")][3] is None
