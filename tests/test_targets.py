"""Targets against actuals: the targets file, the IPTT arithmetic, and the IPTT in every format."""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import html5lib
import openpyxl
import pandas as pd
import pytest

from attack import Sum, attack, exposed, held
from conftest import SECRET
from kobo_tip.cli import main
from kobo_tip.config import Language, Settings, load_settings
from kobo_tip.errors import ConfigError
from kobo_tip.labels import load_labels
from kobo_tip.report import document, render_reports
from kobo_tip.report.chart_files import chart_svg
from kobo_tip.report.iptt import NOT_PUBLISHED, actual_text, audited_sums, iptt_rows
from kobo_tip.report.render import stored_release
from kobo_tip.report.tables import Cell, PublishedCounts
from kobo_tip.report.texts import ReportWords
from kobo_tip.store import open_store
from kobo_tip.targets import COLUMNS, Targets, check_targets, project_periods, read_targets, write_template
from report_project import AS_OF, make_project, sync, write_targets

XHTML = "{http://www.w3.org/1999/xhtml}"
NAME = "identified_or_referred"
CATEGORIES = {
    "total": {"all"},
    "gender": {"female", "male", "unknown", "not_recorded"},
    "location": {"th-63"},
}


@pytest.fixture
def settings(make_project: Callable[..., Path]) -> Settings:
    return load_settings(make_project())  # project 2025-10-01 .. 2028-09-30, fiscal year from October


def checked(settings: Settings, path: Path) -> Targets:
    return check_targets(read_targets(path), settings, CATEGORIES, f"Targets file {path}")


# -- the targets file ----------------------------------------------------------------------------


BAD_ROWS = {
    "unknown indicator": (
        [["victims", "LOP", "total", "all", 10, ""]],
        r"line 2: indicator 'victims' is not one of",
    ),
    "unknown period": (
        [[NAME, "FY2031 Q1", "total", "all", 10, ""]],
        r"line 2: period 'FY2031 Q1' is not a quarter",
    ),
    "unknown dimension": (
        [[NAME, "LOP", "age", "all", 10, ""]],
        r"line 2: dimension 'age' is not a breakdown",
    ),
    "sum of categories": (
        [[NAME, "LOP", "gender", "women_and_girls", 10, ""]],
        r"category 'women_and_girls' is not a category of gender; for a group, join two or more",
    ),
    "negative": ([[NAME, "LOP", "total", "all", -3, ""]], r"line 2: target '-3' must be a whole number"),
    "fraction": (
        [[NAME, "LOP", "total", "all", "12.5", ""]],
        r"line 2: target '12.5' must be a whole number",
    ),
    "badly grouped": ([[NAME, "LOP", "total", "all", "1,80", ""]], r"line 2: target '1,80' must be a whole"),
    "two separators": (
        [[NAME, "LOP", "total", "all", "1,800 000", ""]],
        r"line 2: target '1,800 000' must be a whole",
    ),
    "a point": ([[NAME, "LOP", "total", "all", "1.800", ""]], r"line 2: target '1.800' must be a whole"),
    "duplicate": (
        [[NAME, "LOP", "total", "all", 10, ""], [NAME, "LOP", "total", "all", 12, ""]],
        r"line 3: a second target for identified_or_referred LOP total=all \(the first is on line 2\)",
    ),
}


@pytest.mark.parametrize("case", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_a_bad_row_is_one_sentence_naming_its_line(settings: Settings, tmp_path: Path, case: tuple) -> None:
    rows, message = case
    with pytest.raises(ConfigError, match=message):
        checked(settings, write_targets(tmp_path / "targets.csv", rows))


@pytest.mark.parametrize("written", ["1,800", "1 800", "1\u00a0800", "1\u202f800", "1'800", "1800"])
def test_targets_may_separate_thousands_as_english_and_french_write_them(
    settings: Settings, tmp_path: Path, written: str
) -> None:
    found = checked(
        settings, write_targets(tmp_path / "targets.csv", [[NAME, "LOP", "total", "all", written, ""]])
    )
    assert found.by_key[(NAME, "LOP", "total", "all")].target == 1800
    rows = [[NAME, "LOP", "total", "all", "1,234,567", ""]]
    assert (
        checked(settings, write_targets(tmp_path / "big.csv", rows))
        .by_key[(NAME, "LOP", "total", "all")]
        .target
        == 1234567
    )


def test_a_file_without_the_header_says_which_columns_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "targets.csv"
    path.write_text("indicator,period,target\nidentified,LOP,3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lacks the column\(s\) dimension, category, notes"):
        read_targets(path)


def test_quarters_that_miss_their_year_and_a_year_without_quarters_are_warned(
    settings: Settings, tmp_path: Path
) -> None:
    rows = [[NAME, f"FY2026 Q{q}", "total", "all", 20, ""] for q in (1, 2, 3, 4)]
    rows += [[NAME, "FY2026", "total", "all", 100, ""], [NAME, "FY2027", "total", "all", 90, ""]]
    rows += [[NAME, "FY2027 Q1", "total", "all", "", "a blank target is skipped"]]
    found = checked(settings, write_targets(tmp_path / "targets.csv", rows))
    assert len(found.by_key) == 6
    assert found.warnings == (
        f"Targets file {tmp_path / 'targets.csv'} line 6: the quarter targets of FY2026 for "
        "identified_or_referred total=all add up to 80, not the year's 100.",
        f"Targets file {tmp_path / 'targets.csv'} line 7: FY2027 has a target for identified_or_referred "
        "total=all but none of its quarters has: quarter by quarter, the report shows actuals only.",
    )


def test_the_template_round_trips_through_excel(settings: Settings, tmp_path: Path) -> None:
    path = write_template(tmp_path / "targets.xlsx", settings)
    book = openpyxl.load_workbook(path)
    sheet = book["targets"]
    assert [c.value for c in sheet[1]] == list(COLUMNS)
    periods = [p.label for p in project_periods(settings.project)]
    assert [row[1].value for row in sheet.iter_rows(min_row=2, max_row=1 + len(periods))] == periods
    assert checked(settings, path).by_key == {}, "an untouched template holds no target"
    sheet["E2"] = 30  # FY2026 Q1 of the headline indicator, as Excel stores a typed number
    sheet["E2"].number_format = "0"
    sheet["F2"] = "=agreed with the donor"  # a note that looks like a formula stays text
    book.save(path)
    found = checked(settings, path)
    (target,) = found.by_key.values()
    assert (target.indicator, target.period, target.target) == (NAME, "FY2026 Q1", 30)
    with pytest.raises(ConfigError, match="already exists"):
        write_template(path, settings)


def test_targets_template_command_writes_a_csv_beside_the_config(
    make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_project()
    assert main(["targets", "template", "-c", str(config), "--out", "forms/targets.csv"]) == 0
    assert 'set [targets] path = "forms/targets.csv"' in capsys.readouterr().out
    rows = list(csv.reader((config.parent / "forms" / "targets.csv").open(encoding="utf-8")))
    assert rows[0] == list(COLUMNS) and rows[1][:4] == [NAME, "FY2026 Q1", "total", "all"]


# -- the arithmetic ------------------------------------------------------------------------------


def counts(values: dict[tuple[str, str], str]) -> PublishedCounts:
    """A published table of the headline indicator: (period, category of gender or 'all') -> text."""
    spans = {
        "FY2026 Q1": ("2025-10-01", "2025-12-31", "quarter"),
        "FY2026 Q2": ("2026-01-01", "2026-03-31", "quarter"),
        "FY2026 Q3": ("2026-04-01", "2026-06-30", "quarter"),
        "FY2026 Q4": ("2026-07-01", "2026-09-30", "quarter"),
        "FY2026": ("2025-10-01", "2026-09-30", "fiscal_year"),
        "FY2027 Q1": ("2026-10-01", "2026-12-31", "quarter"),
        "FY2027": ("2026-10-01", "2027-09-30", "fiscal_year"),
        "LOP": ("2025-10-01", "2028-09-30", "lop"),
    }
    rows = []
    for (period, category), text in values.items():
        start, end, kind = spans[period]
        dimension = "total" if category == "all" else "gender"
        rows.append((NAME, period, start, end, dimension, category, text, True, kind))
    columns = ["indicator", "period", "period_start", "period_end", "dimension", "category", "value"]
    return PublishedCounts(pd.DataFrame(rows, columns=[*columns, "additive", "period_kind"]))


def targets(settings: Settings, tmp_path: Path, rows: list[list[object]]) -> Targets:
    return checked(settings, write_targets(tmp_path / "targets.csv", rows))


QUARTERS = ("FY2026 Q1", "FY2026 Q2", "FY2026 Q3", "FY2026 Q4", "FY2027 Q1")
TOTALS = dict(zip(QUARTERS, ("40", "50", "60", "70", "30"), strict=True))
TABLE = {
    **{(q, "all"): v for q, v in TOTALS.items()},
    ("FY2026", "all"): "220",
    ("FY2027", "all"): "30",
    ("LOP", "all"): "250",
    **{(q, "female"): v for q, v in zip(QUARTERS, ("20", "<5", "x", "35", "12"), strict=True)},
    ("FY2026", "female"): "95",
    ("FY2027", "female"): "12",
    ("LOP", "female"): "107",
}


def test_achievement_flags_to_date_comparison_and_hidden_actuals(settings: Settings, tmp_path: Path) -> None:
    table = counts(TABLE)
    quarter = next(p for p in table.periods if p.label == "FY2027 Q1")
    found = targets(
        settings,
        tmp_path,
        [
            [NAME, "FY2026 Q1", "total", "all", 50, ""],  # 80 %: below with a 10 % margin
            [NAME, "FY2026 Q2", "total", "all", 50, ""],  # exactly on target
            [NAME, "FY2026 Q3", "total", "all", 0, ""],  # a zero target: n/a
            [NAME, "FY2026 Q4", "total", "all", 60, ""],  # 116.7 %: above
            [NAME, "FY2027 Q1", "total", "all", 40, ""],
            [NAME, "FY2027 Q2", "total", "all", 40, "not reached yet"],
            [NAME, "FY2027", "total", "all", 160, ""],  # running: against Q1's 40 so far
            [NAME, "LOP", "total", "all", 600, "M&E plan"],  # every ended quarter has a target: to date
            [NAME, "FY2026 Q2", "gender", "female", 10, ""],  # the actual is hidden
            [NAME, "LOP", "gender", "female", 200, ""],
        ],
    )
    rows = {(r.period, r.category): r for r in iptt_rows(table, found, quarter, margin=10, k=5)}
    q1, q2, q3, q4 = (rows[(f"FY2026 Q{n}", "all")] for n in (1, 2, 3, 4))
    assert (q1.percent, q1.flag) == ("80.0", "below")
    assert (q2.percent, q2.flag) == ("100.0", "")
    assert (q3.percent, q3.flag) == ("n/a", "")
    assert (q4.percent, q4.flag) == ("116.7", "above")
    future = rows[("FY2027 Q2", "all")]
    assert (future.actual.text, future.percent, future.notes) == ("", "", "not reached yet")
    year = rows[("FY2027", "all")]
    assert (year.target, year.full_target, year.percent, year.flag) == (40, 160, "75.0", "below")
    lop = rows[("LOP", "all")]
    assert (lop.target, lop.full_target, lop.percent, lop.flag) == (200, 600, "125.0", "above")
    female = rows[("LOP", "female")]  # a quarter without a target: progress towards the whole
    assert (female.target, female.full_target, female.percent, female.flag) == (200, None, "53.5", "")
    hidden = rows[("FY2026 Q2", "female")]
    assert (hidden.actual.text, hidden.percent, hidden.flag) == ("<5", "", "")
    # Cumulative female actuals: hidden while a hidden quarter stands between, as x, which is true
    # (the 20 of FY2026 Q1 is in every one of them); the fiscal year's total bridges them at its
    # end, and the LOP gives the last one.
    cumulative = [rows[(f"LOP through {q}", "female")].actual.text for q in QUARTERS]
    assert cumulative == ["20", "x", "x", "95", "107"]
    assert [rows[(f"LOP through {q}", "all")].actual.text for q in QUARTERS] == [
        "40",
        "90",
        "150",
        "220",
        "250",
    ]


def test_a_target_for_a_category_nobody_is_counted_in(settings: Settings, tmp_path: Path) -> None:
    table = counts(TABLE)
    quarter = next(p for p in table.periods if p.label == "FY2027 Q1")
    found = targets(settings, tmp_path, [[NAME, "FY2026 Q1", "gender", "unknown", 5, ""]])
    (true,) = (r for r in iptt_rows(table, found, quarter, 10, k=None) if not r.cumulative)
    assert (true.actual.text, true.percent, true.flag) == ("0", "0.0", "below")
    # A release that holds no such cell says so, and gives no percentage a reader could invert.
    (outside,) = (r for r in iptt_rows(table, found, quarter, 10, k=5) if not r.cumulative)
    assert (outside.actual.text, outside.percent, outside.flag) == (NOT_PUBLISHED, "", "")


# -- every format --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOBO_TIP_SECRET", SECRET)
        root = tmp_path_factory.mktemp("targets")
        config = make_project(root, dhis2=True, with_targets=True)
        settings = sync(config)
        render_reports(settings, audiences=("internal", "donor"), as_of=AS_OF)
        yield settings


def iptt_csv(settings: Settings, audience: str) -> list[dict[str, str]]:
    with (settings.report.out_dir / audience / "iptt.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_iptt_csv_holds_published_actuals_only(project: Settings) -> None:
    with (project.report.out_dir / "donor" / "counts.csv").open(encoding="utf-8", newline="") as handle:
        cells = {
            (r["indicator"], r["period"], r["dimension"], r["category"]): r["value"]
            for r in csv.DictReader(handle)
        }
    rows = iptt_csv(project, "donor")
    header = "indicator,period,dimension,category,target,actual,percent_achieved,flag,notes,baseline"
    assert ",".join(rows[0]) == header, "the columns the issue fixes"
    for row in rows:
        key = (row["indicator"], row["period"], row["dimension"], row["category"])
        if key in cells:
            assert row["actual"] == cells[key], "an actual is the published cell"
        if not row["actual"].isdigit():
            assert row["percent_achieved"] == row["flag"] == ""
    male = next(r for r in rows if r["category"] == "male")
    assert not male["actual"].isdigit() and male["percent_achieved"] == "", (
        "a small actual hides its percentage"
    )
    year = next(r for r in rows if r["period"] == "FY2026" and r["dimension"] == "total")
    assert year["notes"] == '\'=HYPERLINK("http://example.invalid")', "a formula in a note is made inert"


def test_html_markdown_and_xlsx_show_the_iptt_csv(project: Settings) -> None:
    for audience in ("internal", "donor"):
        folder = project.report.out_dir / audience
        expected = [(r["target"], r["actual"]) for r in iptt_csv(project, audience) if r["indicator"] == NAME]
        tree = html5lib.HTMLParser(namespaceHTMLElements=True).parse(
            (folder / "report.html").read_text("utf-8")
        )
        section = next(s for s in tree.iter(f"{XHTML}section") if s.get("id") == "iptt")
        shown = []
        for tr in section.find(f".//{XHTML}tbody").findall(f"{XHTML}tr"):
            cells = ["".join(td.itertext()) for td in tr.findall(f"{XHTML}td")]
            shown.append((cells[1], cells[2]))
        assert [a for _, a in shown] == [a if a else "not yet" for _, a in expected]
        assert all(t.startswith(e) or e in t for (t, _), (e, _) in zip(shown, expected, strict=True))
        markdown = (folder / "report.md").read_text("utf-8")
        part = markdown.split("## Performance against targets", 1)[1].split("\n## ", 1)[0]
        md_rows = [
            line.split("|")[3:5] for line in part.splitlines() if line.startswith("| ") and "---" not in line
        ][1:]
        assert [a.strip() for _, a in md_rows[: len(expected)]] == [a or "not yet" for _, a in expected]
        sheet = openpyxl.load_workbook(folder / "counts.xlsx")["IPTT"]
        key = audience != "internal"  # outside internal, the key of <k and x comes first
        assert sheet.max_row == key + 1 + len(iptt_csv(project, audience))


def test_summary_paragraph_says_only_published_numbers(project: Settings) -> None:
    """Each number of the summary is a published total, a target, a percentage of the two, or the
    change between two published quarter totals: nothing the tables do not give."""
    html = (project.report.out_dir / "donor" / "report.html").read_text("utf-8")
    summary = re.search(r'<p class="summary">(.*?)</p>', html, re.S)
    assert summary and "the last ended quarter" in summary.group(1)
    with (project.report.out_dir / "donor" / "counts.csv").open(encoding="utf-8", newline="") as handle:
        totals = [r for r in csv.DictReader(handle) if (r["indicator"], r["dimension"]) == (NAME, "total")]
    published = {r["value"] for r in totals}
    quarters = [int(r["value"]) for r in totals if " Q" in r["period"] and r["value"].isdigit()]
    changes = {str(abs(b - a)) for a, b in itertools.pairwise(quarters)}
    plan = {r["target"] for r in iptt_csv(project, "donor")} | {
        r["percent_achieved"] for r in iptt_csv(project, "donor")
    }
    text = re.sub(r"FY\d{4}( Q\d)?", "", summary.group(1))
    numbers = re.findall(r"\d+(?:\.\d)?", text)
    assert len(numbers) >= 5
    for number in numbers:
        assert number in published | changes | plan, number


def test_dhis2_carries_the_quarter_targets(project: Settings) -> None:
    payload = json.loads((project.report.out_dir / "donor" / "dhis2_datavalueset.json").read_text("utf-8"))
    sent = [v for v in payload["dataValues"] if v.get("attributeOptionCombo") == "aocTarget"]
    assert {(v["period"], v["categoryOptionCombo"], v["value"]) for v in sent if v["value"] == "3"} == {
        ("2026Q4", "cocMale", "3")
    }
    targets_sent = [v for v in sent if v["categoryOptionCombo"] == "cocTotal"]
    assert {(v["period"], v["value"]) for v in targets_sent} == {
        ("2025Q4", "60"),
        ("2026Q1", "60"),
        ("2026Q2", "60"),
        ("2026Q3", "60"),
        ("2026Q4", "60"),
    }
    assert all(v["dataElement"] == "deHeadline" for v in sent)


def test_a_bad_targets_file_stops_the_report_with_its_line(project: Settings, tmp_path: Path) -> None:
    path = project.targets.path  # type: ignore[union-attr]
    saved = path.read_text(encoding="utf-8")
    try:
        path.write_text(saved + f"{NAME},LOP,total,all,lots,\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"line \d+: target 'lots' must be a whole number"):
            render_reports(project, audiences=("internal",), as_of=AS_OF)
    finally:
        path.write_text(saved, encoding="utf-8")


def iptt_workbook(settings: Settings, audience: str) -> tuple[list[list[object]], list[str], dict]:
    """iptt.xlsx read back: the header rows, the column titles and {(period, title): column}."""
    sheet = openpyxl.load_workbook(settings.report.out_dir / audience / "iptt.xlsx")["IPTT"]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    first = next(i for i, row in enumerate(rows) if row[0] == "Indicator")
    assert sheet.freeze_panes == f"E{first + 2}", "the header rows and the disaggregate stay in view"
    group, columns = "", {}
    for index, (above, title) in enumerate(zip(rows[first - 1], rows[first], strict=True)):
        group = above or group  # a period's label is merged across the columns under it
        columns[(group, title)] = index
    return rows[first + 1 :], rows[first], columns


def key_of(row: list[object]) -> tuple[str, ...]:
    """The (indicator, dimension, category) codes of an iptt.xlsx row, from its last column."""
    return tuple(str(row[-1]).split("|", 2))  # a cross-tab category holds a "|" too


def test_the_iptt_workbook_is_in_the_donors_layout(project: Settings) -> None:
    periods = [p for p in project_periods(project.project) if p.kind in ("fiscal_year", "quarter")]
    for audience in ("internal", "donor"):
        body, titles, columns = iptt_workbook(project, audience)
        expected = [
            "Indicator",
            "Breakdown",
            "Category",
            "Baseline",
            "Target",
            "Actual",
            "% achieved to date",
        ]
        for period in periods:
            expected += ["Target", "Actual"] + (["% achieved"] if period.kind == "quarter" else [])
        assert titles == [*expected, "Deviation", "Explanation", "Code"], "titles in the report language"
        assert ("FY2026", "Actual") in columns and ("FY2026 Q3", "% achieved") in columns
        assert [row[-1] for row in body] == [
            f"{NAME}|total|all",
            f"{NAME}|gender|female",
            f"{NAME}|gender|male",
        ], "a row per indicator and target disaggregate, its codes in the last column"
        assert [row[:3] for row in body] == [
            ["Victims identified or referred", "Total", "All"],
            ["Victims identified or referred", "Gender", "Female"],
            ["Victims identified or referred", "Gender", "Male"],
        ], "the disaggregate in words, as the report's tables name it"
        by_key = {key_of(row): row for row in body}
        flags: dict[tuple, list[str]] = {}
        for target in (r for r in iptt_csv(project, audience) if not r["period"].startswith("LOP through")):
            row = by_key[(target["indicator"], target["dimension"], target["category"])]
            actual = row[columns[(target["period"], "Actual")]]
            shown = target["actual"]
            assert actual == (int(shown) if shown.isdigit() else shown or None), (audience, target)
            title = "% achieved to date" if target["period"] == "LOP" else "% achieved"
            if (target["period"], title) in columns:
                percent = row[columns[(target["period"], title)]]
                assert percent == (float(target["percent_achieved"]) if target["percent_achieved"] else None)
            if target["flag"]:
                flag = {"above": "above target", "below": "below target"}[target["flag"]]
                flags.setdefault(key_of(row), []).append(f"{target['period']}: {flag}")
        for key, row in by_key.items():
            assert row[3] is None and row[-2] is None, "baseline (no targets file gives one) and explanation"
            assert row[-3] == "; ".join(flags.get(key, [])) or (row[-3] is None and key not in flags)
        total = by_key[(NAME, "total", "all")]
        assert total[columns[("LOP", "Target")]] == 720, "the whole LOP target, not the target to date"
        assert total[columns[("FY2028", "Target")]] is None and total[columns[("FY2026", "Target")]] == 240
    body, _, columns = iptt_workbook(project, "donor")
    male = next(row for row in body if row[2] == "Male")
    hidden = male[columns[("FY2027 Q1", "Actual")]]
    assert hidden in ("<5", "x") and male[columns[("FY2027 Q1", "% achieved")]] is None, (
        "a hidden actual stays hidden, and its percentage with it"
    )


# -- a hidden cumulative or group actual tells no untruth (contract section 6) -------------------


SMALL = {
    **{(q, "all"): v for q, v in TOTALS.items()},
    ("FY2026", "all"): "220",
    ("FY2027", "all"): "30",
    ("LOP", "all"): "250",
    # Women: a handful early on, a hidden 5 or more in FY2026 Q3.
    **{(q, "female"): v for q, v in zip(QUARTERS, ("<5", "<5", "x", "<5", "<5"), strict=True)},
    ("FY2026", "female"): "x",
    ("FY2027", "female"): "<5",
    ("LOP", "female"): "x",
    # Men: below 5 over the whole project, every cell hidden as <5.
    **{(q, "male"): "<5" for q in QUARTERS},
    **{(p, "male"): "<5" for p in ("FY2026", "FY2027", "LOP")},
    # Gender unknown: a few in two quarters, none in the others.
    **{(q, "unknown"): v for q, v in zip(QUARTERS, ("0", "<5", "0", "<5", "0"), strict=True)},
    **{(p, "unknown"): v for p, v in (("FY2026", "<5"), ("FY2027", "0"), ("LOP", "<5"))},
}


def test_a_hidden_cumulative_is_shown_as_what_its_cells_say(settings: Settings, tmp_path: Path) -> None:
    """x only where published cells already show k or more, <5 only where one <5 cell is the whole
    sum; else "not published", never a class its true value may not be in."""
    table = counts(SMALL)
    quarter = next(p for p in table.periods if p.label == "FY2027 Q1")
    found = targets(
        settings,
        tmp_path,
        [
            [NAME, "LOP", "gender", "female", 50, ""],
            [NAME, "LOP", "gender", "male", 20, ""],
            [NAME, "LOP", "gender", "unknown", 0, ""],
            [NAME, "FY2026 Q1", "gender", "female+male", 10, ""],
            [NAME, "FY2026 Q3", "gender", "female+male", 10, ""],
            [NAME, "FY2026 Q4", "gender", "female+male", 10, ""],
        ],
    )
    rows = {(r.period, r.category): r for r in iptt_rows(table, found, quarter, margin=10, k=5)}
    cumulative = {
        c: [rows[(f"LOP through {q}", c)].actual.text for q in QUARTERS] for c in ("female", "male")
    }
    # Women: Q1 alone is its own <5; Q1+Q2 (two <5) may be 0 or 8; from Q3 on an x is in the sum.
    assert cumulative["female"] == ["<5", NOT_PUBLISHED, "x", "x", "x"]
    # Men: the first quarter and FY2026 are one <5 cell each, and so is the LOP at the last
    # quarter; in between, sums of <5 cells, which may be 5 or more, are not published.
    assert cumulative["male"] == ["<5", NOT_PUBLISHED, NOT_PUBLISHED, "<5", "<5"]
    # Zeros add nothing: one <5 cell and zeros is <5; two <5 quarters are bridged by FY2026's <5.
    unknown = [rows[(f"LOP through {q}", "unknown")].actual.text for q in QUARTERS]
    assert unknown == ["0", "<5", "<5", "<5", "<5"]
    groups = {r.period: r.actual.text for r in rows.values() if "+" in r.category and not r.cumulative}
    assert groups == {"FY2026 Q1": NOT_PUBLISHED, "FY2026 Q3": "x", "FY2026 Q4": NOT_PUBLISHED}
    assert all(r.percent == r.flag == "" for r in rows.values() if not r.actual.is_number)
    # What the audit gets: each shown sum with its cells, ranges included; "not published" none.
    sums = {(tuple(cells), text) for cells, text in audited_sums(list(rows.values()), table.periods)}
    q1 = (NAME, "FY2026 Q1", "gender", "male")
    assert ((q1,), "<5") in sums
    assert not any(text == NOT_PUBLISHED for _, text in sums)
    assert ((NAME, "FY2026 Q3", "gender", "female"), (NAME, "FY2026 Q3", "gender", "male")) in {
        cells for cells, text in sums if text == "x"
    }
    # A published number of k or more in the sum shows it to be k or more too: 20 women and men
    # not published make x.
    found = targets(settings, tmp_path, [[NAME, "FY2026 Q1", "gender", "female+male", 10, ""]])
    (group,) = iptt_rows(counts(TABLE), found, quarter, margin=10, k=5)
    assert group.actual.text == "x"


@pytest.mark.parametrize("code", ["en", "fr", "es", "pt", "ar", "th"])
def test_the_not_published_key_names_the_marker_the_tables_show(code: str) -> None:
    words = ReportWords.for_language(load_labels(Language(label=f"L ({code})", name="L", code=code)), ())
    marker = actual_text(Cell(NOT_PUBLISHED), words)
    assert marker == words.text("iptt.not_published") and (code == "en") == (marker == NOT_PUBLISHED)
    plain, with_marker = words.hidden_key(5), words.hidden_key(5, not_published=True)
    added = with_marker.removeprefix(plain + " ")
    assert added != with_marker and added.startswith(marker) and "5" in added


BOYS = "0-4|male+5-11|male+12-17|male"
YOUNG_GIRLS = "0-4|female+5-11|female"


@pytest.fixture(scope="module")
def small_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A project with a LOP target for every age band by gender, so that some cumulative actuals
    are truly 1..4 and hidden and others 5 or more and hidden, and two written-out groups."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOBO_TIP_SECRET", SECRET)
        config = make_project(tmp_path_factory.mktemp("small"), dhis2=True, with_targets=True)
        settings = sync(config)
        render_reports(settings, audiences=("internal",), as_of=AS_OF)
        with (settings.report.out_dir / "internal" / "counts.csv").open(encoding="utf-8") as handle:
            cells = {r["category"] for r in csv.DictReader(handle) if r["dimension"] == "age_band_x_gender"}
        rows = [[NAME, "LOP", "age_band_x_gender", cell, 10, ""] for cell in sorted(cells)]
        rows += [[NAME, "LOP", "age_band_x_gender", group, 10, ""] for group in (BOYS, YOUNG_GIRLS)]
        rows += [[NAME, f"FY2026 Q{q}", "age_band_x_gender", BOYS, 2, ""] for q in (1, 2, 3, 4)]
        write_targets(settings.targets.path, rows)  # type: ignore[union-attr]
        render_reports(settings, audiences=("internal", "donor"), as_of=AS_OF)
        yield settings


def true_sum(truth: dict[tuple[str, str, str], int], quarters: list[str], row: dict[str, str]) -> int:
    """The true value of an iptt.csv row: its categories (a group's written out) in its period, or
    in every quarter through its own for a cumulative row."""
    if row["period"].startswith("LOP through "):
        last = row["period"].removeprefix("LOP through ")
        periods = quarters[: quarters.index(last) + 1]
    else:
        periods = [row["period"]]
    return sum(truth[(p, row["dimension"], c)] for p in periods for c in parts_of(row["category"]))


def parts_of(category: str) -> list[str]:
    """A written-out group's categories; a category alone (``60+|female`` is one)."""
    return category.split("+") if category in (BOYS, YOUNG_GIRLS) else [category]


def test_no_output_shows_a_hidden_actual_as_what_it_is_not(small_targets: Settings) -> None:
    settings = small_targets
    folder = settings.report.out_dir / "donor"
    with open_store(settings, create=False) as store:
        release = stored_release(store.releases("donor", last=True)[0])
    table = release.table[release.table["indicator"] == NAME]
    truth = {(r.period, r.dimension, r.category): int(r.value) for r in table.itertuples(index=False)}
    quarters = list(table[table["period_kind"] == "quarter"].sort_values("period_start")["period"].unique())
    rows = [r for r in iptt_csv(settings, "donor") if r["actual"]]
    seen: dict[str, list[int]] = {}
    for row in rows:
        value, shown = true_sum(truth, quarters, row), row["actual"]
        if shown.isdigit():
            assert int(shown) == value, row
        elif shown == "x":
            assert value >= 5, row
        elif shown == "<5":
            assert value <= 4, row
        else:
            assert shown == NOT_PUBLISHED, row
        if row["period"].startswith("LOP through ") and not shown.isdigit():
            seen.setdefault(shown, []).append(value)
    assert any(1 <= v <= 4 for v in seen[NOT_PUBLISHED]), "a cumulative truly 1..4 and hidden"
    assert any(1 <= v <= 4 for v in seen["<5"]) and any(v >= 5 for v in seen["x"]), seen.keys()
    assert any(v >= 5 for v in seen[NOT_PUBLISHED]), "not published holds 5 or more as well"
    # Every other output shows what iptt.csv shows, and the key says what "not published" means.
    key = "not published: a figure this report does not give"
    actuals = [r["actual"] for r in rows]
    tree = html5lib.HTMLParser(namespaceHTMLElements=True).parse((folder / "report.html").read_text("utf-8"))
    section = next(s for s in tree.iter(f"{XHTML}section") if s.get("id") == "iptt")
    html = [
        "".join(tr.findall(f"{XHTML}td")[2].itertext())
        for tr in section.iter(f"{XHTML}tr")
        if tr.findall(f"{XHTML}td")
    ]
    assert [a.replace(",", "") for a in html if a != "not yet"] == actuals
    notes = ["".join(p.itertext()) for p in section.iter(f"{XHTML}p") if p.get("class") == "note key"]
    assert notes and all(
        key in note and note.startswith("<5: 0 to 4 persons; x: 5 or more") for note in notes
    )
    markdown = (folder / "report.md").read_text("utf-8").split("## Performance against targets", 1)[1]
    md = [
        line.split("|")[4].strip()
        for line in markdown.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    assert [a.replace(",", "") for a in md if a not in ("Actual", "not yet")][: len(actuals)] == actuals
    assert key in markdown.split("\n## ", 1)[0]
    sheet = openpyxl.load_workbook(folder / "counts.xlsx")["IPTT"]
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert key in str(values[0][0]) and values[1][5] == "Actual"
    assert [str(r[5]) for r in values[2:] if r[5] is not None] == actuals
    book = openpyxl.load_workbook(folder / "iptt.xlsx")["IPTT"]
    assert key in str(book.cell(1, 1).value)
    body, _, columns = iptt_workbook(settings, "donor")
    by_key = {key_of(row): row for row in body}
    for row in rows:
        if not row["period"].startswith("LOP through "):
            cell = by_key[(NAME, row["dimension"], row["category"])][columns[(row["period"], "Actual")]]
            assert cell == (int(row["actual"]) if row["actual"].isdigit() else row["actual"]), row
    payload = json.loads((folder / "dhis2_datavalueset.json").read_text("utf-8"))
    assert all(v["value"].isdigit() for v in payload["dataValues"]), "DHIS2 gets numbers only"
    # The intruder, given the published sums and ranges, narrows no small cell (contract section 6).
    sums: list[Sum] = []
    for row in rows:
        last = row["period"].removeprefix("LOP through ")
        if row["actual"] == NOT_PUBLISHED or (
            last == row["period"] and row["category"] not in (BOYS, YOUNG_GIRLS)
        ):
            continue  # a single cell's actual is the cell itself
        periods = quarters[: quarters.index(last) + 1] if last != row["period"] else [last]
        cells = [(NAME, p, row["dimension"], c) for p in periods for c in parts_of(row["category"])]
        shown = row["actual"]
        sums.append((0, cells, int(shown) if shown.isdigit() else shown))
    assert any(isinstance(value, str) for _, _, value in sums), "ranges are given to the intruder"
    findings = attack([held(release)], 5, sums=sums)
    assert findings and not exposed(findings, 5), exposed(findings, 5)[:3]


def test_the_cumulative_chart_says_what_not_published_means(settings: Settings, tmp_path: Path) -> None:
    """The chart of the cumulative headline draws a point not published as hidden, titled in the
    report language, and its key (on the page and in its file) says what that means."""
    early = {**TABLE, ("FY2026 Q1", "all"): "<5", ("FY2026 Q2", "all"): "<5", ("FY2026", "all"): "x"}
    table = counts(early)
    quarter = next(p for p in table.periods if p.label == "FY2027 Q1")
    found = targets(settings, tmp_path, [[NAME, "LOP", "total", "all", 600, ""]])
    rows = iptt_rows(table, found, quarter, margin=10, k=5)
    assert [r.actual.text for r in rows if r.cumulative] == ["<5", NOT_PUBLISHED, "x", "x", "250"]
    for code, marker in (("en", "not published"), ("fr", "non publié")):
        words = ReportWords.for_language(load_labels(Language(label=f"L ({code})", name="L", code=code)), ())
        edition = SimpleNamespace(words=words, k=5, performance=SimpleNamespace(rows=rows))
        (chart,) = document._target_chart(edition)  # type: ignore[arg-type]
        assert chart["key"] == words.hidden_key(5, not_published=True) and marker in chart["key"]
        assert f"<title>{marker}</title>" in str(chart["svg"])
        drawn = re.sub(r"\s+", " ", " ".join(re.findall(r">([^<>]+)</text>", chart_svg(chart, chart["key"]))))
        assert f"{marker} :" in drawn or f"{marker}:" in drawn, drawn
