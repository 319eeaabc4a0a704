"""``kobo-tip demo`` end to end: project written, two syncs, every audience rendered, nothing leaked."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import html5lib
import openpyxl
import pytest
from PIL import Image

from kobo_tip import demo, indicator
from kobo_tip.cli import main
from kobo_tip.config import load_settings
from kobo_tip.errors import UsageError

AS_OF = dt.date(2026, 11, 28)  # the last ended quarter is FY2026 Q4 (Jul-Sep 2026)
SECRET_ENV = "KOBO_TIP_SECRET"
KNOWN_SECRET = "d3m0-secret-that-must-never-be-written-anywhere"
ADDITIVE = [d for d in indicator.DIMENSIONS if d != "total"]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[demo.DemoResult]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(SECRET_ENV, raising=False)
        # A known secret, so the test can look for it in every file the demo wrote.
        patch.setattr(demo.secrets, "token_hex", lambda nbytes: KNOWN_SECRET)
        yield demo.run_demo(tmp_path_factory.mktemp("demo") / "kobo-tip-demo", as_of=AS_OF)


def read_counts(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == list(indicator.COUNTS_COLUMNS)
    return rows


def test_project_files_and_config(result: demo.DemoResult) -> None:
    settings = load_settings(result.config_path)
    assert settings.source.kind == "file"
    assert settings.source.path == result.folder / "data" / "export.json"
    assert settings.report.audiences == indicator.AUDIENCES
    assert settings.project.country == "th"
    assert (settings.project.start_date, settings.project.end_date) == (
        dt.date(2024, 10, 1),
        dt.date(2027, 9, 30),
    )
    roster = settings.form.roster
    assert 25 <= len(roster) <= 35 and {s.type for s in roster} == set(indicator.CHOICES["stakeholder_type"])
    assert {loc.code for loc in settings.form.locations} >= {"TH-10", "TH-63"}
    assert (result.folder / "forms" / "tip_victims.xlsx").is_file()
    assert (result.folder / "forms" / "tip_victims.xml").is_file()
    assert result.form_validated or result.messages


def test_two_syncs_show_new_edited_deleted_and_reviewed(result: demo.DemoResult) -> None:
    first, second = result.syncs
    assert first.new > 1500 and first.edited == first.deleted == 0
    assert second.new > 0 and second.edited > 0 and second.deleted > 0 and second.status_changed > 0
    page = json.loads((result.folder / "data" / "export.json").read_text(encoding="utf-8"))
    assert page["count"] == len(page["results"]) == result.submissions
    assert 1900 <= result.submissions <= 2000


def test_reports_exist_and_parse(result: demo.DemoResult) -> None:
    assert (
        result.internal_report.is_file() and result.donor_report.is_file() and result.public_report.is_file()
    )
    assert result.internal_report in result.files and result.donor_report in result.files
    assert "<table" in result.internal_report.read_text(encoding="utf-8")
    tree = html5lib.parse(result.donor_report.read_text(encoding="utf-8"), namespaceHTMLElements=False)
    assert tree.find(".//table") is not None
    assert not [e for e in tree.iter("script") if e.get("src")]


def test_headline_is_non_zero_and_every_dimension_adds_up(result: demo.DemoResult) -> None:
    rows = read_counts(result.internal_report.parent / "counts.csv")
    totals = {(r["indicator"], r["period"]): int(r["value"]) for r in rows if r["dimension"] == "total"}
    for variant in indicator.VARIANTS:
        assert totals[(variant, "FY2026 Q4")] > 0  # the headline quarter
        assert totals[(variant, "LOP")] > 0
    assert totals[("identified_or_referred", "LOP")] >= totals[("identified", "LOP")]
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in rows:
        if r["dimension"] in ADDITIVE:
            sums[(r["indicator"], r["period"], r["dimension"])] += int(r["value"])
    dimensions = {key[2] for key in sums}
    assert {"age_band", "gender", "location", "stakeholder_type", "age_band_x_gender"} <= dimensions
    for (variant, period, dimension), total in sums.items():
        assert total == totals[(variant, period)], (variant, period, dimension)
    # Quarters add up to the LOP: each person is counted once, in one quarter.
    quarters = [p for (v, p) in totals if v == "identified_or_referred" and re.fullmatch(r"FY\d{4} Q\d", p)]
    assert len(quarters) >= 8
    assert (
        sum(totals[("identified_or_referred", q)] for q in quarters)
        == totals[("identified_or_referred", "LOP")]
    )


def test_restatements_name_cells_changed_by_the_second_sync(result: demo.DemoResult) -> None:
    with (result.internal_report.parent / "restatements.csv").open(encoding="utf-8", newline="") as handle:
        changes = list(csv.DictReader(handle))
    assert changes and list(changes[0]) == list(indicator.RESTATEMENT_COLUMNS)
    assert any(c["dimension"] == "total" and c["old"] != c["new"] for c in changes)


def test_data_quality_lists_the_designed_problems(result: demo.DemoResult) -> None:
    with (result.internal_report.parent / "data_quality.csv").open(encoding="utf-8", newline="") as handle:
        rules = {row["rule"] for row in csv.DictReader(handle)}
    assert {"deleted", "rejected", "stakeholder_not_on_roster", "not_linkable", "malformed"} <= rules


def donor_texts(result: demo.DemoResult) -> dict[Path, str]:
    texts = {}
    for path in sorted(result.donor_report.parent.iterdir()):
        if path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path, read_only=True)
            texts[path] = "\n".join(
                str(cell)
                for sheet in book.worksheets
                for row in sheet.iter_rows(values_only=True)
                for cell in row
            )
        elif path.suffix == ".png":  # a chart drawn from the .svg beside it: only its text chunks hold text
            with Image.open(path) as image:
                texts[path] = "\n".join(f"{key} {value}" for key, value in image.info.items())
        else:
            texts[path] = path.read_text(encoding="utf-8")
    return texts


def test_donor_output_holds_no_ids_case_refs_or_names(result: demo.DemoResult) -> None:
    page = json.loads((result.folder / "data" / "export.json").read_text(encoding="utf-8"))["results"]
    ids = {str(sub["_id"]) for sub in page}
    uuids = {sub["_uuid"] for sub in page}
    case_refs = {sub["event/case_ref"] for sub in page if "event/case_ref" in sub}
    names = {s.name for s in load_settings(result.config_path).form.roster}
    internal_dq = (result.internal_report.parent / "data_quality.csv").read_text(encoding="utf-8")
    assert any(sid in internal_dq for sid in ids)  # the check below would see an id
    texts = donor_texts(result)
    assert not any(p.name == "data_quality.csv" for p in texts)
    for path, text in texts.items():
        tokens = set(re.findall(r"[\w-]+", text))
        assert not tokens & ids, path
        assert not tokens & uuids, path
        assert not tokens & case_refs, path
        assert not [name for name in names if name in text], path
    for row in read_counts(result.donor_report.parent / "counts.csv"):
        assert re.fullmatch(r"\d+|<5|x", row["value"]), row


def test_secret_is_for_the_run_only(result: demo.DemoResult) -> None:
    assert SECRET_ENV not in os.environ
    for path in result.folder.rglob("*"):
        if path.is_file():
            assert KNOWN_SECRET.encode() not in path.read_bytes(), path


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["demo", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_demo_refuses_a_file_or_too_few_submissions(tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(UsageError, match="is a file"):
        demo.run_demo(file)
    with pytest.raises(UsageError, match="at least 100"):
        demo.run_demo(tmp_path / "small", n=50)
    assert not (tmp_path / "small").exists()


def test_cli_demo_runs_again_over_an_earlier_demo_and_prints_both_reports(
    result: demo.DemoResult,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    no_java = tmp_path / "bin"
    no_java.mkdir()
    monkeypatch.setenv("PATH", str(no_java))
    # The command's wiring is under test here; a smaller data set keeps the second run short.
    monkeypatch.setattr(demo, "run_demo", functools.partial(demo.run_demo, n=300, as_of=AS_OF))
    folder = tmp_path / "earlier-demo"
    shutil.copytree(result.folder, folder)
    assert main(["demo", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "ODK Validate did not check the form" in err  # no Java: said, and the demo still ran
    internal, donor = (
        folder / "reports" / "internal" / "report.html",
        folder / "reports" / "donor" / "report.html",
    )
    assert out.index(str(internal)) < out.index(str(donor))
    assert internal.is_file() and donor.is_file()
    # The earlier data were replaced, not mixed in: one store, this run's 300 submissions only.
    page = json.loads((folder / "data" / "export.json").read_text(encoding="utf-8"))
    assert 280 <= page["count"] <= 300
    totals = {
        r["period"]: int(r["value"])
        for r in read_counts(internal.parent / "counts.csv")
        if r["indicator"] == "identified_or_referred" and r["dimension"] == "total"
    }
    assert 0 < totals["LOP"] <= 300
    assert SECRET_ENV not in os.environ
