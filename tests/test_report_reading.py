"""The report as its readers use it: charts, folded and ordered tables, notes, banners and the
internal lists, checked on the rendered HTML and Markdown of a synced project."""

from __future__ import annotations

import csv
import datetime as dt
import html
import re
from collections.abc import Iterator
from pathlib import Path

import html5lib
import pandas as pd
import pytest
from babel.dates import format_date

from kobo_tip import indicator
from kobo_tip.config import Language, Settings
from kobo_tip.labels import FALLBACK, load_labels
from kobo_tip.report import render_reports
from kobo_tip.report.charts import PALETTE, Bar, Series, grouped_bars, horizontal_bars, stacked_bars, trend
from kobo_tip.report.document import _age_gender_chart
from kobo_tip.report.tables import Cell, KeyPeriods, PublishedCounts, headlines
from kobo_tip.report.texts import ReportWords
from report_project import AS_OF, rendered_project

XHTML = "{http://www.w3.org/1999/xhtml}"
SVG = "{http://www.w3.org/2000/svg}"
NAME = indicator.HEADLINE_VARIANT


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with rendered_project(tmp_path_factory.mktemp("reading")) as settings:
        yield settings


def page(settings: Settings, audience: str):
    text = (settings.report.out_dir / audience / "report.html").read_text(encoding="utf-8")
    return html5lib.HTMLParser(strict=False, namespaceHTMLElements=True).parse(text)


def published(settings: Settings, audience: str) -> dict[tuple[str, str, str, str], str]:
    with (settings.report.out_dir / audience / "counts.csv").open(encoding="utf-8", newline="") as handle:
        return {
            (r["indicator"], r["period"], r["dimension"], r["category"]): r["value"]
            for r in csv.DictReader(handle)
        }


def text_of(element) -> str:
    return "".join(element.itertext())


def section(tree, name: str):
    return next(s for s in tree.iter(f"{XHTML}section") if s.get("id") == name)


def block(tree, name: str, title: str):
    """The table block titled ``title`` in the section of indicator ``name``."""
    for div in section(tree, name).iter(f"{XHTML}div"):
        heading = div.find(f"{XHTML}h3")
        if div.get("class") == "block" and heading is not None and text_of(heading) == title:
            return div
    raise AssertionError(f"no table {title!r} in {name}")


def body_rows(table) -> list[tuple[str, list[str]]]:
    tbody = table.find(f"{XHTML}tbody")
    rows = []
    for tr in tbody.findall(f"{XHTML}tr"):
        label = tr.find(f"{XHTML}th")
        rows.append(
            (text_of(label) if label is not None else "", [text_of(td) for td in tr.findall(f"{XHTML}td")])
        )
    return rows


# -- charts -------------------------------------------------------------------------------------


def test_outside_charts_show_no_number_the_tables_do_not(project: Settings) -> None:
    """An intruder reading the SVG (text, tooltips, bar lengths) learns nothing the published
    cells do not say: every number a chart writes is a published number or 0, and a hidden
    cell's mark is the same whatever it hides."""
    tree = page(project, "donor")
    numbers = {v for v in published(project, "donor").values() if v.isdigit()} | {"0"}
    charts = list(section(tree, "charts").iter(f"{SVG}svg"))
    assert len(charts) == 5
    for svg in charts:
        for element in (*svg.iter(f"{SVG}text"), *svg.iter(f"{SVG}title")):
            text = text_of(element).strip()
            if text.isdigit():
                assert text in numbers, text
        hatched = [r for r in svg.iter(f"{SVG}rect") if r.get("fill") == "url(#hidden-hatch)"]
        for rect in hatched:
            title = rect.find(f"{SVG}title")
            assert title is None or not text_of(title).isdigit()


def test_chart_text_is_readable_on_a_phone(project: Settings) -> None:
    """Fonts are in units of a 400-wide drawing that a 390 px phone shows about 374 px wide."""
    for svg in section(page(project, "donor"), "charts").iter(f"{SVG}svg"):
        assert svg.get("viewBox").split()[2] == "400"
        sizes = [float(t.get("font-size")) for t in svg.iter(f"{SVG}text")]
        assert sizes and min(sizes) * 374 / 400 >= 11


def hidden(text: str) -> Cell:
    return Cell(text)


def number(value: int) -> Cell:
    return Cell(str(value))


def rects(svg: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'(\w+)="([^"]*)"', m)) for m in re.findall(r"<rect ([^>]*)>", svg)]


def test_hidden_bars_are_one_mark_and_lengths_come_from_published_numbers() -> None:
    bars = [Bar("A", number(40)), Bar("B", number(25)), Bar("C", hidden("x")), Bar("D", hidden("<5"))]
    drawn = [r for r in rects(horizontal_bars(bars, "hidden")) if "x" in r]
    lengths = [float(r["width"]) for r in drawn]
    assert lengths[0] / lengths[1] == pytest.approx(40 / 25, rel=0.01)
    assert lengths[2] == lengths[3], "an x and a <5 are drawn alike"
    assert drawn[2]["fill"] == drawn[3]["fill"] == "url(#hidden-hatch)"
    # The same bars with only the published numbers changed move only the published bars.
    other = [
        r for r in rects(horizontal_bars([bars[0], Bar("B", number(30)), *bars[2:]], "hidden")) if "x" in r
    ]
    assert other[2:] == drawn[2:]


def test_empty_charts_have_no_stray_axis_label() -> None:
    zeros = [number(0)] * 4
    quarters = ["FY2026 Q1", "FY2026 Q2", "FY2026 Q3", "FY2026 Q4"]
    for svg in (
        trend(quarters, [Series("a", zeros)], "hidden"),
        stacked_bars(quarters, zeros, [Series("a", zeros)], "hidden"),
        grouped_bars(["0-4", "5-11", "12-17", "18-59"], [Series("a", zeros)], "hidden"),
    ):
        labels = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
        assert "1" not in labels and "0" in labels
        assert "hidden" not in labels, "no hidden entry in the legend when nothing is hidden"
        if "Q1" in labels:
            assert labels.count("FY2026") == 1, "the year is written once under its quarters"


def test_stacked_bars_hatch_the_hidden_part_without_its_value() -> None:
    svg = stacked_bars(
        ["FY2026 Q1"], [number(30)], [Series("a", [number(20)]), Series("b", [hidden("x")])], "h"
    )
    hatched = list(re.findall(r"<rect [^>]*fill=\"url\(#hidden-hatch\)\"[^>]*>(.*?)</rect>", svg))
    assert hatched == ["<title>h</title>"]


# -- tables -------------------------------------------------------------------------------------


def test_location_rows_without_a_count_are_folded_and_the_rest_ranked(project: Settings) -> None:
    words = ReportWords.for_language(load_labels(FALLBACK), project.form.locations)
    cells = published(project, "donor")
    title = words.dimension("location")
    div = block(page(project, "donor"), NAME, title)
    shown = next(div.iter(f"{XHTML}table"))
    rows = body_rows(shown)
    kept = [
        (label, values)
        for label, values in rows
        if label not in (words.category("location", c) for c in ("unknown",))
    ]
    lop = [values[-1] for _, values in kept]
    numbers = [int(v) for v in lop if v.isdigit()]
    assert numbers == sorted(numbers, reverse=True), "ordered by published LOP count"
    first_hidden = next((i for i, v in enumerate(lop) if not v.isdigit()), len(lop))
    assert all(not v.isdigit() for v in lop[first_hidden:]), "hidden LOP cells come last"
    for _, values in kept:
        assert any(v.isdigit() and v != "0" for v in values), "a shown row has a count above 0"
    details = div.find(f"{XHTML}details")
    folded = body_rows(details.find(f".//{XHTML}table"))
    summary = text_of(details.find(f"{XHTML}summary"))
    assert summary == f"{len(folded)} more locations with no count shown"
    assert all(not (v.isdigit() and v != "0") for _, values in folded for v in values)
    codes = {k[3] for k in cells if k[:3] == (NAME, "LOP", "location")}
    assert len(rows) + len(folded) == len(codes), "every location is in the table or its fold"
    # No summed "other" line: every cell of the block is a published cell.
    addresses = [td.get("data-cell") for td in div.iter(f"{XHTML}td")]
    assert all(a and tuple(a.split("|")) in cells for a in addresses)


def test_quarters_sit_under_their_year_with_lop_last(project: Settings) -> None:
    words = ReportWords.for_language(load_labels(FALLBACK), project.form.locations)
    div = block(page(project, "donor"), NAME, words.dimension("gender"))
    head = div.find(f".//{XHTML}thead")
    top, second = head.findall(f"{XHTML}tr")
    groups = [(text_of(th), th.get("colspan")) for th in top.findall(f"{XHTML}th")[1:]]
    assert groups == [("FY2026", "5"), ("FY2027", "2"), ("LOP", "1")]
    assert [text_of(th) for th in second.findall(f"{XHTML}th")] == [
        "Q1",
        "Q2",
        "Q3",
        "Q4",
        "Total",
        "Q1",
        "Total",
    ]


def test_cross_tab_says_not_recorded_in_a_line(project: Settings) -> None:
    tree = page(project, "internal")
    cells = published(project, "internal")
    title = f"{'Age band by gender'}: LOP"
    div = block(tree, NAME, title)
    header = [text_of(th) for th in div.find(f".//{XHTML}thead").iter(f"{XHTML}th")]
    rows = [label for label, _ in body_rows(div.find(f".//{XHTML}table"))]
    assert not any("Not recorded" in text for text in header + rows)
    unrecorded = cells[(NAME, "LOP", "age_band_x_gender", "not_recorded|not_recorded")]
    assert (
        text_of(div.find(f"{XHTML}p"))
        == f"Not recorded (no consent to record personal details): {unrecorded}"
    )


def test_internal_lists_name_their_rules_and_group_repeated_details(project: Settings) -> None:
    dq = section(page(project, "internal"), "data-quality")
    text = text_of(dq)
    assert "Stakeholder not on the roster" in text
    headers = [text_of(th) for th in dq.iter(f"{XHTML}th") if th.get("scope") == "row"]
    assert headers and all(" " in h for h in headers), "each rule has its title, not only its code"
    for table in dq.iter(f"{XHTML}table"):
        details = [tuple(values[:2]) for _, values in body_rows(table) if len(values) == 4]
        assert len(details) == len(set(details)), "one line per field and detail"
    markdown = (project.report.out_dir / "internal" / "report.md").read_text(encoding="utf-8")
    assert "| Stakeholder not on the roster |" in markdown


def test_headline_says_whether_the_fiscal_year_has_ended() -> None:
    frame = pd.DataFrame(
        [
            (NAME, label, kind, start, end, "total", "all", "3", True)
            for label, kind, start, end in (
                ("FY2026 Q4", "quarter", "2026-07-01", "2026-09-30"),
                ("FY2026", "fiscal_year", "2025-10-01", "2026-09-30"),
                ("LOP", "lop", "2025-10-01", "2028-09-30"),
            )
        ],
        columns=[
            "indicator",
            "period",
            "period_kind",
            "period_start",
            "period_end",
            "dimension",
            "category",
            "value",
            "additive",
        ],
    )
    words = ReportWords.for_language(load_labels(FALLBACK), ())
    counts = PublishedCounts(frame)
    during = headlines(counts, words, KeyPeriods.of(counts, "FY2026 Q4", dt.date(2026, 9, 1)))
    after = headlines(counts, words, KeyPeriods.of(counts, "FY2026 Q4", dt.date(2026, 11, 1)))
    assert "Fiscal year to date" in [f.caption for f in during[0].figures]
    assert [f.caption for f in after[0].figures] == ["Last ended quarter", "Fiscal year", "Life of project"]


def test_an_empty_running_quarter_is_left_out_of_the_internal_report(
    project: Settings, tmp_path: Path
) -> None:
    # The report project's running quarter FY2027 Q2 has persons; a month after a quiet start
    # of FY2027 Q3 the internal report does not show that quarter as 0.
    render_reports(project, audiences=("internal",), as_of=dt.date(2027, 4, 10))
    internal = page(project, "internal")
    assert "FY2027 Q3" not in text_of(section(internal, "headline"))
    assert published(project, "internal")[(NAME, "FY2027 Q3", "total", "all")] == "0", "counts.csv keeps it"
    render_reports(project, audiences=("internal",), as_of=AS_OF)


# -- banners ------------------------------------------------------------------------------------


def warnings(settings: Settings, audience: str) -> list[str]:
    return [text_of(p) for p in page(settings, audience).iter(f"{XHTML}p") if p.get("class") == "warning"]


def test_stale_data_are_said_and_fresh_data_are_not(project: Settings) -> None:
    today = dt.date.today()  # the fixture synced today
    late = today + dt.timedelta(days=project.report.stale_after_days + 3)
    try:
        render_reports(project, audiences=("internal",), as_of=late)
        stale = warnings(project, "internal")
        assert any(
            # the sync's date as the report language (English here) writes it, with Babel
            f"{project.report.stale_after_days + 3} days ago ({format_date(today, 'medium', locale='en')})"
            in w
            for w in stale
        )
        render_reports(project, audiences=("internal",), as_of=today + dt.timedelta(days=1))
        assert not any("days ago" in w for w in warnings(project, "internal"))
    finally:
        render_reports(project, audiences=("internal",), as_of=AS_OF)


# -- what was hidden and why ------------------------------------------------------------------


def test_every_outside_table_and_chart_has_the_key_beside_it(project: Settings) -> None:
    """Beside every table (in its block, folded rows included) and every chart of an outside report,
    one line says what ``<k`` and ``x`` mean, with the audience's k; the internal report, which
    hides nothing, has none."""
    key = "<5: 0 to 4 persons; x: 5 or more, hidden so that a small number elsewhere cannot be worked out."
    tree = page(project, "donor")
    tables = list(tree.iter(f"{XHTML}table"))
    figures = list(tree.iter(f"{XHTML}figure"))
    assert len(tables) > 20 and len(figures) == 5
    parent = {child: node for node in tree.iter() for child in node}

    def holder(element):
        while (
            element.tag != f"{XHTML}figure"
            and element.get("class") != "block"
            and element.tag != f"{XHTML}section"
        ):
            element = parent[element]
        return element

    for element in (*tables, *figures):
        keys = [p for p in holder(element).iter(f"{XHTML}p") if p.get("class") == "note key"]
        assert [text_of(p) for p in keys] == [key], f"{element.tag} in {holder(element).get('id')}"
    markdown = (project.report.out_dir / "donor" / "report.md").read_text(encoding="utf-8")
    blocks = {holder(t) for t in tables}
    assert markdown.count(key) == len(blocks)
    assert not [p for p in page(project, "internal").iter(f"{XHTML}p") if p.get("class") == "note key"]


def test_the_key_is_in_the_report_language() -> None:
    words = ReportWords.for_language(
        load_labels(Language(label="Français (fr)", name="Français", code="fr")), ()
    )
    assert words.hidden_key(5).startswith("<5 : de 0 à 4 personnes ; x : 5 ou plus")
    assert words.hidden_category("Homme") == "Homme : masqué"


def words_in(code: str) -> ReportWords:
    return ReportWords.for_language(load_labels(Language(label=f"L ({code})", name="L", code=code)), ())


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("en", ["FY2026 Q1", "FY2026", "2026 Q3", "2026", "LOP"]),
        ("fr", ["Exercice 2026 T1", "Exercice 2026", "2026 T3", "2026", "Durée du projet"]),
        ("es", ["Año fiscal 2026 T1", "Año fiscal 2026", "2026 T3", "2026", "Vida del proyecto"]),
        ("pt", ["Ano fiscal 2026 T1", "Ano fiscal 2026", "2026 T3", "2026", "Vida do projeto"]),
        (
            "ar",
            ["الربع 1 من السنة المالية 2026", "السنة المالية 2026", "الربع 3 من 2026", "2026", "مدة المشروع"],
        ),
        ("th", ["ไตรมาส 1 ปีงบประมาณ 2026", "ปีงบประมาณ 2026", "ไตรมาส 3 ปี 2026", "ปี 2026", "ตลอดโครงการ"]),
    ],
)
def test_period_codes_read_in_the_report_language(code: str, expected: list[str]) -> None:
    """The codes of counts.csv (fiscal and calendar years) in words, their year never grouped
    ("2 026") and in Babel's default digits for the locale, the same as the tables' numbers."""
    words = words_in(code)
    assert [words.period(label) for label in ("FY2026 Q1", "FY2026", "2026 Q3", "2026", "LOP")] == expected
    assert words.period("LOP through FY2026 Q1") == "LOP through FY2026 Q1", "not a period code: as it is"
    assert words.period_group("FY2026 Q2")[0] == expected[1], "a quarter's column sits under its year"
    assert words.period_group("LOP") == (expected[4], "")


def test_chart_numbers_and_periods_are_written_as_the_tables_write_them() -> None:
    quarters = ["FY2026 Q1", "FY2026 Q2"]
    totals = [number(12345), hidden("<5")]
    for code, big, tick, year in (
        ("fr", "12\u202f345", "T1", "Exercice 2026"),
        ("th", "12,345", "ไตรมาส 1", "ปีงบประมาณ 2026"),
        ("en", "12,345", "Q1", "FY2026"),
    ):
        words = words_in(code)
        assert words.number("12345") == big
        drawn = [
            stacked_bars(quarters, totals, [Series("a", totals)], "h", words=words),
            trend(quarters, [Series("a", totals)], "h", words=words),
            grouped_bars(["0-4", "5-11"], [Series("a", totals)], "h", words=words),
            horizontal_bars([Bar("A", totals[0]), Bar("B", totals[1])], "h", words=words),
        ]
        for svg in drawn:
            labels = [html.unescape(text) for text in re.findall(r">([^<>]+)<", svg)]  # texts and titles
            assert big in labels and "12345" not in labels, (code, labels)
            assert 'direction="ltr"' in svg, "left to right inside a right-to-left page too"
        axis = re.findall(r"<text [^>]*>([^<]*)</text>", drawn[0])
        assert tick in axis and year in axis and axis.count(year) == 1, (code, axis)


def cross_tab_counts(cells: dict[str, str]) -> PublishedCounts:
    """A LOP age band x gender table of ``cells`` (category -> published text)."""
    rows = [
        (NAME, "LOP", "lop", "2025-10-01", "2028-09-30", "age_band_x_gender", category, text, True)
        for category, text in cells.items()
    ]
    columns = ["indicator", "period", "period_kind", "period_start", "period_end", "dimension"]
    return PublishedCounts(pd.DataFrame(rows, columns=[*columns, "category", "value", "additive"]))


def test_a_gender_whose_cells_are_all_hidden_is_drawn_and_labelled_hidden() -> None:
    """Men all hidden at LOP: the chart still has a Male series, drawn as hidden marks outlined in
    its colour at every age band, and the legend says "Male: hidden"; a gender of zeros only (no
    one to hide) is left out."""
    ages = ("0-4", "5-11", "12-17", "18-59", "60+")
    cells = {f"{a}|female": str(10 + n) for n, a in enumerate(ages)}
    cells |= {f"{a}|male": "x" if a == "18-59" else "<5" for a in ages}
    cells |= {f"{a}|non_binary_other": "0" for a in ages}
    words = ReportWords.for_language(load_labels(FALLBACK), ())
    chart = _age_gender_chart(cross_tab_counts(cells), words, NAME, "LOP", words.text("chart.hidden"))
    assert chart is not None
    svg = str(chart["svg"])
    legend = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    assert "Male: hidden" in legend and "Female" in legend
    assert not any("Non-binary" in line for line in legend)
    male = PALETTE[1]
    marks = [r for r in rects(svg) if r.get("fill") == "url(#hidden-hatch)" and r.get("stroke") == male]
    assert len(marks) == len(ages), "one hidden mark per age band, in the Male colour"
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert not [t for t in titles if t.startswith("Male") and t.split(": ")[-1].isdigit()]


def test_a_stakeholder_type_shown_only_as_hidden_is_in_the_legend() -> None:
    quarters = ["FY2026 Q1", "FY2026 Q2"]
    totals = [number(30), number(40)]
    series = [
        Series("Police", [number(20), number(30)]),
        Series("Teacher: hidden", [hidden("<5"), hidden("x")]),
    ]
    svg = stacked_bars(quarters, totals, series, "hidden (small numbers)")
    legend = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    assert "Teacher: hidden" in legend
    swatches = [r for r in rects(svg) if r.get("width") == "11"]
    assert [s["fill"] for s in swatches] == [PALETTE[0], "url(#hidden-hatch)", "url(#hidden-hatch)"]
