"""counts.xlsx as a pivot table reads it: the flat ``data`` sheet, the age x gender sheet, the
frozen headers and the key of ``<k`` and ``x`` outside internal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from kobo_tip.config import Settings
from report_project import rendered_project

CELL = ["indicator", "period", "dimension", "category"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with rendered_project(tmp_path_factory.mktemp("workbook")) as settings:
        yield settings


def book_path(settings: Settings, audience: str) -> Path:
    return settings.report.out_dir / audience / "counts.xlsx"


def counts_csv(settings: Settings, audience: str) -> pd.DataFrame:
    return pd.read_csv(settings.report.out_dir / audience / "counts.csv", dtype=str, keep_default_na=False)


def data_sheet(settings: Settings, audience: str) -> pd.DataFrame:
    return pd.read_excel(book_path(settings, audience), sheet_name="data")


@pytest.mark.parametrize("audience", ["internal", "donor"])
def test_a_pivot_of_the_data_sheet_gives_the_published_numbers(project: Settings, audience: str) -> None:
    data = data_sheet(project, audience)
    assert list(data.columns) == [
        "indicator",
        "period",
        "period_start",
        "period_end",
        "dimension",
        "category",
        "value",
        "status",
    ]
    assert pd.api.types.is_numeric_dtype(data["value"]), "a pivot table sums numbers, not text"
    published = counts_csv(project, audience)
    assert len(data) == len(published), "every published cell is a row"
    shown = published[published["value"].str.isdigit()]
    pivot = data.pivot_table(index=["indicator", "dimension", "category"], columns="period", values="value")
    for row in shown.itertuples(index=False):
        assert pivot.loc[(row.indicator, row.dimension, row.category), row.period] == int(row.value)
    if audience == "internal":
        assert len(shown) == len(published) and set(data["status"]) == {"shown"}
    dates = data.merge(published, on=CELL, suffixes=("", "_csv"))
    assert (dates["period_start"].astype(str) == dates["period_start_csv"]).all()


def test_the_donor_data_sheet_holds_no_number_the_release_hides(project: Settings) -> None:
    data = data_sheet(project, "donor")
    published = counts_csv(project, "donor")
    both = published.merge(data, on=CELL, suffixes=("_csv", ""))
    assert len(both) == len(published)
    small = both[both["value_csv"].str.startswith("<")]
    hidden = both[both["value_csv"] == "x"]
    assert len(small) and len(hidden), "the demo release has both kinds of cell"
    assert small["value"].isna().all() and set(small["status"]) == {"small"}
    assert hidden["value"].isna().all() and set(hidden["status"]) == {"hidden"}
    shown = both[both["value_csv"].str.isdigit()]
    assert (shown["value"] == shown["value_csv"].astype(int)).all()
    assert set(shown["status"]) == {"shown"}


@pytest.mark.parametrize("audience", ["internal", "donor"])
def test_the_age_by_gender_sheet_is_the_cross_tab(project: Settings, audience: str) -> None:
    sheet = openpyxl.load_workbook(book_path(project, audience))["Age band by gender"]
    first = 2 if audience == "donor" else 1  # outside internal the key comes first
    header = [c.value for c in sheet[first]]
    assert header[:4] == ["Indicator", "Period", "Code", "Age band"]
    assert sheet.freeze_panes == f"E{first + 1}"
    genders = header[4:]
    assert "Female" in genders and "Male" in genders
    published = counts_csv(project, audience)
    cross = published[published["dimension"] == "age_band_x_gender"]
    cells = {(r.indicator, r.period, r.category): r.value for r in cross.itertuples()}
    labels = {"Female": "female", "Male": "male"}
    checked = 0
    for row in sheet.iter_rows(min_row=first + 1, values_only=True):
        name, period, age = row[:3]
        for gender, value in zip(genders, row[4:], strict=True):
            if gender in labels:
                text = cells[(name, period, f"{age}|{labels[gender]}")]
                assert value == (int(text) if text.isdigit() else text)
                checked += 1
    assert checked == len(cross[cross["category"].str.endswith(("|female", "|male"))])


def test_every_sheet_has_a_frozen_header_fitted_columns_and_outside_the_key(project: Settings) -> None:
    for audience in ("internal", "donor"):
        book = openpyxl.load_workbook(book_path(project, audience))
        for sheet in book.worksheets[1:]:
            assert sheet.freeze_panes is not None, (audience, sheet.title)
            widths = [d.width for d in sheet.column_dimensions.values()]
            assert widths and all(8 <= w <= 60 for w in widths), (audience, sheet.title)
        gender = book["Gender"]
        note = gender["A1"].value
        if audience == "donor":
            assert note.startswith("<5: 0 to 4 persons; x: 5 or more"), "the key of the small-cell marks"
            assert gender.freeze_panes == "D3" and gender["A2"].value == "Indicator"
            assert book["data"]["H1"].comment.text == note
        else:
            assert note == "Indicator" and gender.freeze_panes == "D2"
            assert book["data"]["H1"].comment is None
