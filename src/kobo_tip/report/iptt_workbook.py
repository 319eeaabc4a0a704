"""iptt.xlsx: the indicator performance tracking table in the layout donors ask for.

A row per indicator and target disaggregate (a group target's row is its group: ``children``,
``0-4+5-11``); across, the baseline (the targets file's, of any of the row's periods), the LOP
target, actual and percentage, then each quarter's target, actual and percentage, each fiscal
year's target and actual after its quarters (as the report's tables order them), the deviations
flagged, and an empty column for the officer's explanation. Every figure is one of ``iptt.csv``
(an ``IpttRow``): a hidden actual stays hidden, with its percentage, so the workbook says nothing
the disclosure audit has not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from kobo_tip.periods import FISCAL_YEAR, LOP_LABEL, QUARTER, Period
from kobo_tip.report.edition import Edition
from kobo_tip.report.files import inert
from kobo_tip.report.iptt import IpttRow, actual_text, category_words
from kobo_tip.report.sheets import add_note, fit_columns, header, published_value, save, sheet_title
from kobo_tip.report.texts import ReportWords
from kobo_tip.report.workbook import key_note

# Column titles, as report texts (``[report.column]``): the workbook speaks the report language.
# A row names its disaggregate in words; its codes (iptt.csv's, the targets file's) are in a last
# column, "indicator|dimension|category", for a formula that matches the rows to those files.
ROW_COLUMNS = ("indicator", "dimension", "category", "baseline")
CODE = "code"
TARGET, ACTUAL, PERCENT = "target", "actual", "percent_achieved"
LOP_PERCENT = "percent_to_date"  # against the targets of the quarters ended, when they all have one
DEVIATION, EXPLANATION = "deviation", "explanation"
Disaggregate = tuple[str, str, str]  # indicator, dimension, category


def write_iptt_workbook(path: Path, edition: Edition, periods: Sequence[Period]) -> Path:
    """Write iptt.xlsx for ``edition``'s targets; ``periods``: the project's, in order, so that
    the quarters and fiscal years still to come have their columns too."""
    book = Workbook()
    words = edition.words
    sheet = book.active
    sheet.title = sheet_title(book, words.text("sheet.iptt"))
    note = key_note(edition, iptt=True)
    add_note(sheet, note)
    columns = _columns(periods)
    groups = [words.period(LOP_LABEL), "", ""] + [
        words.period(label) if i == 0 else "" for label, kinds in columns for i in range(len(kinds))
    ]
    header(sheet, ["", "", "", "", *groups, "", "", ""])
    titles = [TARGET, ACTUAL, LOP_PERCENT] + [kind for _, kinds in columns for kind in kinds]
    header(
        sheet, [words.text(f"column.{key}") for key in (*ROW_COLUMNS, *titles, DEVIATION, EXPLANATION, CODE)]
    )
    _merge_groups(sheet, len(ROW_COLUMNS) + 1, [3, *(len(kinds) for _, kinds in columns)])
    sheet.freeze_panes = f"E{sheet.max_row + 1}"
    for key, by_period in _disaggregates(edition.performance.rows).items():
        name, dimension, _ = key
        any_row = next(iter(by_period.values()))
        labels = (words.indicator(name), words.dimension(dimension), category_words(any_row, words))
        baselines = [row.baseline for row in by_period.values() if row.baseline is not None]
        cells: list[object] = [*(inert(label) for label in labels), baselines[0] if baselines else None]
        lop = by_period.get(LOP_LABEL)
        cells += [_target(lop), _actual(lop, words), _percent(lop)]
        for label, kinds in columns:
            row = by_period.get(label)
            cells += [_target(row), _actual(row, words)] + ([_percent(row)] if len(kinds) == 3 else [])
        flagged = [
            f"{words.period(row.period)}: {words.text(f'iptt.{row.flag}')}"
            for row in by_period.values()
            if row.flag
        ]
        sheet.append([*cells, inert("; ".join(flagged)), None, inert("|".join(key))])
    fit_columns(sheet, frozenset({1}) if note else frozenset())
    return save(book, path)


def _columns(periods: Sequence[Period]) -> list[tuple[str, tuple[str, ...]]]:
    """(period, its column titles) in the project's order: the quarters (target, actual,
    percentage), each fiscal year (target, actual) after its own."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for period in periods:
        if period.kind == FISCAL_YEAR:
            out.append((period.label, (TARGET, ACTUAL)))
        elif period.kind == QUARTER:
            out.append((period.label, (TARGET, ACTUAL, PERCENT)))
    return out


def _merge_groups(sheet: Worksheet, first: int, spans: list[int]) -> None:
    """Merge each period's label across the columns under it, in the header row above the titles."""
    row = sheet.max_row - 1
    column = first
    for span in spans:
        sheet.merge_cells(start_row=row, start_column=column, end_row=row, end_column=column + span - 1)
        column += span


def _disaggregates(rows: Sequence[IpttRow]) -> dict[Disaggregate, dict[str, IpttRow]]:
    """The targets' rows by disaggregate (in the IPTT's order) and period; cumulative rows are
    iptt.csv's running totals, which the LOP columns already give."""
    out: dict[Disaggregate, dict[str, IpttRow]] = {}
    for row in rows:
        if not row.cumulative:
            out.setdefault((row.indicator, row.dimension, row.category), {})[row.period] = row
    return out


def _target(row: IpttRow | None) -> int | None:
    """The period's whole target (a running period's to-date target is only what it is compared with)."""
    if row is None:
        return None
    return row.full_target if row.full_target is not None else row.target


def _actual(row: IpttRow | None, words: ReportWords) -> int | str | None:
    if row is None or not row.actual.text:  # no target, or a period not reached yet
        return None
    return published_value(actual_text(row.actual, words))


def _percent(row: IpttRow | None) -> float | str | None:
    if row is None or not row.percent:
        return None
    try:
        return float(row.percent)
    except ValueError:
        return inert(row.percent)  # "n/a": a target of 0
