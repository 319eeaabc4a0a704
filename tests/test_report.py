"""Reports end to end: synthetic submissions -> file source -> store -> every audience's files."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from html import escape as html_escape
from pathlib import Path

import html5lib
import openpyxl
import pytest
from babel.dates import format_date

from conftest import SECRET
from kobo_tip import indicator
from kobo_tip.config import Settings, parse_language
from kobo_tip.errors import StoreError
from kobo_tip.labels import FALLBACK, load_labels
from kobo_tip.report import render_reports
from report_project import AS_OF, ATTRIBUTE, FIRST_ID, FORMULA, HOSTILE_CASE_REF, SCRIPT, make_project, sync

AUDIENCES = ("internal", "donor", "public")
XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, list[Path], list[logging.LogRecord]]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOBO_TIP_SECRET", SECRET)
        config = make_project(tmp_path_factory.mktemp("report"))
        settings = sync(config)
        with caplog_for("kobo_tip.report") as records:
            paths = render_reports(settings, audiences=AUDIENCES, as_of=AS_OF)
        yield settings, paths, records


class caplog_for:
    """Collect log records of one logger (the module-scoped fixture cannot use caplog)."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self.records: list[logging.LogRecord] = []
        self.handler = logging.Handler()
        self.handler.emit = self.records.append  # type: ignore[method-assign]

    def __enter__(self) -> list[logging.LogRecord]:
        self.logger.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)


def folder(settings: Settings, audience: str) -> Path:
    return settings.report.out_dir / audience


def read_counts(settings: Settings, audience: str) -> list[dict[str, str]]:
    with (folder(settings, audience) / "counts.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def csv_cells(settings: Settings, audience: str) -> dict[str, str]:
    return {
        "|".join((r["indicator"], r["period"], r["dimension"], r["category"])): r["value"]
        for r in read_counts(settings, audience)
    }


def submission_ids(settings: Settings) -> set[str]:
    with (folder(settings, "internal") / "data_quality.csv").open(encoding="utf-8") as handle:
        return {row["submission_id"] for row in csv.DictReader(handle)}


def test_every_audience_gets_its_files(rendered) -> None:
    settings, paths, _ = rendered
    for audience in AUDIENCES:
        names = {p.name for p in paths if p.parent.name == audience}
        expected = {"counts.csv", "restatements.csv", "report.html", "report.md", "counts.xlsx"}
        expected |= {"dhis2_datavalueset.json"}
        if audience == "internal":  # the run released quarters outside: internal reconciles them
            expected |= {"data_quality.csv", "as_reported.csv", "referrals.csv"}  # never outside internal
        charts = {name for name in names if name.startswith("chart-")}
        assert names - charts == expected, audience
        # Every chart of the page beside it, as SVG and PNG (tests/test_charts_files.py reads them).
        stems = {name.rsplit(".", 1)[0] for name in charts}
        assert "chart-persons-per-quarter" in stems and charts == {
            f"{s}.{x}" for s in stems for x in ("svg", "png")
        }
        header = (folder(settings, audience) / "counts.csv").read_text(encoding="utf-8").splitlines()[0]
        assert header == "indicator,period,period_start,period_end,dimension,category,value"


def test_published_quarters_and_suppression(rendered) -> None:
    settings, _, _ = rendered
    internal_periods = {r["period"] for r in read_counts(settings, "internal")}
    donor = read_counts(settings, "donor")
    assert "FY2027 Q2" in internal_periods, "the running quarter is internal"
    assert {r["period"] for r in donor} == internal_periods - {"FY2027 Q2"}
    values = {r["value"] for r in donor}
    assert "<5" in values and "x" in values
    assert not values & {"1", "2", "3", "4"}
    public = {r["value"] for r in read_counts(settings, "public")}
    assert "<10" in public and not public & {str(v) for v in range(1, 10)}
    headline = next(
        r
        for r in donor
        if (r["indicator"], r["period"], r["dimension"]) == ("identified_or_referred", "FY2027 Q1", "total")
    )
    assert int(headline["value"]) > 0


def html_tree(path: Path):
    parser = html5lib.HTMLParser(strict=False, namespaceHTMLElements=True)
    return parser.parse(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("audience", AUDIENCES)
def test_html_is_self_contained_and_shows_the_csv_numbers(rendered, audience: str) -> None:
    settings, _, _ = rendered
    tree = html_tree(folder(settings, audience) / "report.html")
    for tag, attribute in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
        for element in tree.iter(f"{XHTML}{tag}"):
            target = element.get(attribute)
            assert not target or target.startswith(("data:", "#")), f"<{tag} {attribute}={target}>"
    assert not list(tree.iter(f"{XHTML}script")), "the report runs no script"
    expected = csv_cells(settings, audience)
    shown = {
        cell.get("data-cell"): (cell.text or "") for cell in tree.iter(f"{XHTML}td") if cell.get("data-cell")
    }
    assert len(shown) > 500
    for address, text in shown.items():
        assert expected[address] == text, address
    # every additive table of the headline indicator is there, with its LOP column
    for dimension in ("total", "age_band", "gender", "location", "stakeholder_type", "disability"):
        assert f"identified_or_referred|LOP|{dimension}|" in "\n".join(shown)
    charts = list(tree.iter("{http://www.w3.org/2000/svg}svg"))
    assert len(charts) == 5  # trend, stakeholder types, age x gender, locations, countries
    assert all(len(list(svg.iter("{http://www.w3.org/2000/svg}rect"))) > 3 for svg in charts[1:])


@pytest.mark.parametrize("audience", AUDIENCES)
def test_config_and_submission_strings_are_escaped(rendered, audience: str) -> None:
    settings, _, _ = rendered
    text = (folder(settings, audience) / "report.html").read_text(encoding="utf-8")
    assert SCRIPT not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # project and location names, escaped
    assert ATTRIBUTE not in text
    assert "&#34; onmouseover=&#34;alert(2)" in text
    tree = html_tree(folder(settings, audience) / "report.html")
    for element in tree.iter():
        assert not any(name.lower().startswith("on") for name in element.attrib), element.tag
    markdown = (folder(settings, audience) / "report.md").read_text(encoding="utf-8")
    assert "<script" not in markdown and "&lt;script>alert(1)&lt;/script>" in markdown


def test_internal_lists_the_malformed_submission_value_escaped(rendered) -> None:
    settings, _, _ = rendered
    text = (folder(settings, "internal") / "report.html").read_text(encoding="utf-8")
    assert 'id="data-quality"' in text and 'id="restatements"' in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text.split('id="data-quality"')[1]
    ids = submission_ids(settings)
    assert len(ids) > 5 and any(i in text for i in ids)


@pytest.mark.parametrize("audience", ["donor", "public"])
def test_nothing_internal_reaches_donor_or_public(rendered, audience: str) -> None:
    settings, _, _ = rendered
    out = folder(settings, audience)
    assert not (out / "data_quality.csv").exists()
    texts = {
        p.name: p.read_text(encoding="utf-8")
        for p in out.iterdir()
        if p.suffix in (".html", ".md", ".csv", ".json")
    }
    book = openpyxl.load_workbook(out / "counts.xlsx", read_only=True)
    texts["counts.xlsx"] = "\n".join(
        str(value)
        for sheet in book
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    )
    ids = submission_ids(settings)
    names = [s.name for s in settings.form.roster]
    for name, text in texts.items():
        assert 'id="data-quality"' not in text and 'id="restatements"' not in text, name
        assert HOSTILE_CASE_REF not in text, name
        for word in ("possible_duplicate", "not_linkable", "malformed", "person_key"):
            assert word not in text, (name, word)
        leaked = {i for i in ids if re.search(rf"\b{i}\b", text)}
        assert not leaked, (name, sorted(leaked)[:5])
        assert not re.search(rf"\b{FIRST_ID // 1000}\d{{3}}\b", text), name
        for stakeholder in names:
            assert stakeholder not in text, (name, stakeholder)


def markdown_tables(text: str) -> dict[tuple[str, str], list[list[str]]]:
    """(indicator heading, table heading) -> rows of cells (first row: the header)."""
    tables: dict[tuple[str, str], list[list[str]]] = {}
    section = table = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif line.startswith("### "):
            table = line[4:]
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            tables.setdefault((section, table), []).append(cells)
    return tables


@pytest.mark.parametrize("audience", AUDIENCES)
def test_markdown_tables_hold_the_csv_numbers(rendered, audience: str) -> None:
    settings, _, _ = rendered
    labels = load_labels(FALLBACK)
    tables = markdown_tables((folder(settings, audience) / "report.md").read_text(encoding="utf-8"))
    rows = read_counts(settings, audience)
    checked = 0
    for name in indicator.VARIANTS:
        for dimension in ("total", "age_band", "gender", "stakeholder_type", "person_category"):
            key = (labels.report_text(f"indicator.{name}"), labels.report_text(f"dimension.{dimension}"))
            header, *body = tables[key]
            periods = header[1:]
            mine = [r for r in rows if r["indicator"] == name and r["dimension"] == dimension]
            categories = list(dict.fromkeys(r["category"] for r in mine))
            value = {(r["period"], r["category"]): r["value"] for r in mine}
            assert [[value[(p, c)] for p in periods] for c in categories] == [line[1:] for line in body]
            checked += 1
    assert checked == 15


def test_xlsx_sheets_numbers_and_inert_formulas(rendered) -> None:
    settings, _, _ = rendered
    book = openpyxl.load_workbook(folder(settings, "donor") / "counts.xlsx")
    # Sheets and headers are named in the report language (English here).
    expected = {"About", "Total", "Age band", "Gender", "Location of identification", "Country of origin"}
    assert expected <= set(book.sheetnames)
    assert "Person category" in book.sheetnames
    sheet = book["Total"]
    assert sheet.freeze_panes == "D3", "the key of <k and x above the header, both frozen"
    assert sheet["A2"].font.bold
    header = [c.value for c in sheet[2]]
    assert header[:3] == ["Indicator", "Code", "Category"]
    cells = csv_cells(settings, "donor")
    for row in sheet.iter_rows(min_row=3):
        for period, cell in zip(header[3:], row[3:], strict=True):
            published = cells[f"{row[0].value}|{period}|total|{row[1].value}"]
            if published.isdigit():
                assert cell.data_type == "n" and cell.value == int(published)
            else:
                assert cell.data_type == "s" and cell.value == published
    location = book["Location of identification"]
    labels = [row[2].value for row in location.iter_rows(min_row=3)]
    assert "'" + FORMULA in labels
    assert not any(
        isinstance(v, str) and v.startswith("=") for row in location.iter_rows(values_only=True) for v in row
    )


def test_dhis2_data_value_set(rendered) -> None:
    settings, _, records = rendered
    payload = json.loads((folder(settings, "donor") / "dhis2_datavalueset.json").read_text(encoding="utf-8"))
    assert payload["dataSet"] == "dsUid"
    values = payload["dataValues"]
    assert values
    for value in values:
        assert set(value) == {
            "dataElement",
            "period",
            "orgUnit",
            "categoryOptionCombo",
            "attributeOptionCombo",
            "value",
        }
        assert re.fullmatch(r"20\d\dQ[1-4]", value["period"])
        assert value["orgUnit"] == "ouUid" and value["attributeOptionCombo"] == "aocUid"
        assert isinstance(value["value"], str) and value["value"].isdigit()
    cells = csv_cells(settings, "donor")
    by_element = {
        "deHeadline": "identified_or_referred",
        "deIdentified": "identified",
        "deReferred": "referred",
    }
    combos = {"cocTotal": "total|all", "cocFemale": "gender|female", "cocMale": "gender|male"}
    first = {
        v["period"]: v
        for v in values
        if v["dataElement"] == "deHeadline" and v["categoryOptionCombo"] == "cocTotal"
    }
    assert first["2025Q4"]["value"] == cells["identified_or_referred|FY2026 Q1|total|all"]
    assert "2027Q1" not in {v["period"] for v in values}, "the running quarter is not sent"
    quarter_of = {
        "2025Q4": "FY2026 Q1",
        "2026Q1": "FY2026 Q2",
        "2026Q2": "FY2026 Q3",
        "2026Q3": "FY2026 Q4",
        "2026Q4": "FY2027 Q1",
    }
    for value in values:
        name, quarter = by_element[value["dataElement"]], quarter_of[value["period"]]
        assert cells[f"{name}|{quarter}|{combos[value['categoryOptionCombo']]}"] == value["value"]
    suppressed = sum(
        1
        for name in by_element.values()
        for quarter in quarter_of.values()
        for combo in combos.values()
        if not cells[f"{name}|{quarter}|{combo}"].isdigit()
    )
    assert len(values) + suppressed == 3 * 5 * 3
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING and "donor" in r.getMessage()]
    if suppressed:
        assert warnings and f"{suppressed} suppressed" in warnings[0]


def test_report_without_any_sync_writes_nothing_and_says_so(tmp_path: Path, secret: str) -> None:
    settings = sync_free_settings(tmp_path)
    with pytest.raises(StoreError, match=r"No store at .*run 'kobo-tip sync' first"):
        render_reports(settings, audiences=["donor"], as_of=dt.date(2025, 11, 1))
    assert not settings.report.out_dir.exists()


def test_a_report_before_any_quarter_ended_shows_lop_only(tmp_path: Path, secret: str) -> None:
    settings = sync(make_project(tmp_path / "p", submissions=300, dhis2=False))
    paths = render_reports(settings, audiences=["donor"], as_of=dt.date(2025, 11, 1))
    counts = next(p for p in paths if p.name == "counts.csv")
    rows = list(csv.DictReader(counts.open(encoding="utf-8")))
    assert rows and {r["period"] for r in rows} == {"LOP"} and {r["value"] for r in rows} == {"0"}
    html = (counts.parent / "report.html").read_text(encoding="utf-8")
    assert "no quarter has ended yet" in html


def sync_free_settings(root: Path) -> Settings:
    from kobo_tip.config import load_settings

    config = make_project(root / "p", submissions=10, dhis2=False)
    return load_settings(config)


def test_labels_follow_the_report_language_and_csv_keeps_choice_names(tmp_path: Path, secret: str) -> None:
    settings = sync(
        make_project(tmp_path / "fr", submissions=300, dhis2=False, report_language="French (fr)")
    )
    render_reports(settings, audiences=["donor"], as_of=AS_OF)
    html = (folder(settings, "donor") / "report.html").read_text(encoding="utf-8")
    assert '<html lang="fr" dir="ltr">' in html
    for text in (
        "Victimes identifiées ou orientées",
        "Tranche d&#39;âge",
        "Genre",
        "Cambodge",
        "Ce qui est compté",
    ):
        assert text in html, text
    english, french = (load_labels(parse_language(label)).texts for label in ("English (en)", "French (fr)"))
    for key, text in english.items():
        lead = html_escape(text.split("{")[0].strip(), quote=True)
        if key.startswith("report.") and text != french[key] and len(lead) > 10:
            assert lead not in html, f"English left in the French report: {key}"
    run_date = re.search(r"<dt>Date du rapport</dt><dd>(.*?)</dd>", html)
    assert run_date and run_date.group(1) == format_date(AS_OF, "medium", locale="fr"), (
        "a date the French way"
    )
    categories = {r["category"] for r in read_counts(settings, "donor") if r["dimension"] == "gender"}
    assert {"female", "male", "not_recorded"} <= categories


PERIOD_CODE = re.compile(r"\b(FY20[0-9]{2}|LOP)\b")
PERIOD_WORDS = {
    # language: (FY2026, the header of its first quarter, FY2026 Q1, the life of project)
    "French (fr)": ("Exercice 2026", "T1", "Exercice 2026 T1", "Durée du projet"),
    "Thai (th)": ("ปีงบประมาณ 2026", "ไตรมาส 1", "ไตรมาส 1 ปีงบประมาณ 2026", "ตลอดโครงการ"),
}


@pytest.mark.parametrize("language", sorted(PERIOD_WORDS))
def test_periods_read_in_the_report_language_and_stay_codes_in_the_csv(
    language: str, tmp_path: Path, secret: str
) -> None:
    settings = sync(
        make_project(
            tmp_path / "p",
            submissions=200,
            dhis2=False,
            with_targets=True,
            languages=("English (en)", language),
            report_language=language,
        )
    )
    render_reports(settings, audiences=["internal", "donor"], as_of=AS_OF)
    fiscal_year, quarter, first_quarter, lop = PERIOD_WORDS[language]
    texts = load_labels(parse_language(language)).report_text
    for audience in ("internal", "donor"):
        out = folder(settings, audience)
        body = html5lib.parse((out / "report.html").read_text(encoding="utf-8"), namespaceHTMLElements=False)
        page = " ".join(" ".join(body.find("body").itertext()).split())  # type: ignore[union-attr]
        markdown = (out / "report.md").read_text(encoding="utf-8")
        for text in (page, markdown):
            assert fiscal_year in text and quarter in text and lop in text, (audience, language)
            assert not PERIOD_CODE.search(text), (
                f"a period code left in {audience}: {PERIOD_CODE.search(text)}"
            )
        book = openpyxl.load_workbook(out / "counts.xlsx")
        for sheet in book.worksheets:
            cells = [str(v) for row in sheet.iter_rows(values_only=True) for v in row if v is not None]
            if sheet.title == "data":  # the flat sheet keeps the codes a pivot table reads
                periods = {row[1] for row in sheet.iter_rows(min_row=2, values_only=True)}
                assert periods == {r["period"] for r in read_counts(settings, audience)}
            else:
                assert not any(PERIOD_CODE.search(c) for c in cells), (audience, sheet.title)
        gender = book[texts("dimension.gender")]
        header = next(
            row for row in gender.iter_rows(values_only=True) if row[0] == texts("column.indicator")
        )
        assert {first_quarter, fiscal_year, lop} <= set(header), "the sheet's periods in words"
        iptt_book = openpyxl.load_workbook(out / "iptt.xlsx")
        shown = [str(v) for sheet in iptt_book for row in sheet.iter_rows(values_only=True) for v in row if v]
        assert {first_quarter, fiscal_year, lop} <= set(shown), "iptt.xlsx heads its periods in words"
        assert not any(PERIOD_CODE.search(t) for t in shown if "|" not in t), audience
        assert texts("indicator.identified_or_referred") in shown and texts("dimension.gender") in shown
        # counts.csv, the machine-readable file, keeps the codes (contract section 7)
        codes = {r["period"] for r in read_counts(settings, audience)}
        assert {"FY2026 Q1", "FY2026", "LOP"} <= codes
