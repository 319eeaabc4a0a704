"""counts.xlsx: the published tables for people, one sheet per dimension.

Rows are (indicator, category) with the choice name and its label; columns are the periods.
Numbers are stored as numbers, ``<k`` and ``x`` as text, and every text cell that a
spreadsheet could read as a formula is made inert.
"""

from __future__ import annotations

import os
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.worksheet import Worksheet

from kobo_tip import privacy
from kobo_tip.report.edition import Edition
from kobo_tip.report.files import inert
from kobo_tip.report.iptt import IPTT_COLUMNS
from kobo_tip.report.tables import Cell, dimension_tables

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
FIXED_COLUMNS = ("indicator", "category", "label")


def _value(cell: Cell) -> int | str:
    return int(cell.text) if cell.is_number else inert(cell.text)


def _header(sheet: Worksheet, titles: list[str]) -> None:
    sheet.append([inert(title) for title in titles])
    for cell in sheet[1]:
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center", wrap_text=True)


def write_workbook(path: Path, edition: Edition) -> Path:
    """Write counts.xlsx for ``edition`` (through a temporary file) and return its path."""
    book = Workbook()
    about = book.active
    about.title = "about"
    words = edition.words
    for label, value in _about_rows(edition):
        about.append([inert(label), inert(value)])
    about.column_dimensions["A"].width = 28
    about.column_dimensions["B"].width = 90
    sheets: dict[str, Worksheet] = {}
    periods = [p.label for p in edition.counts.periods]
    for name in edition.counts.indicators():
        for table in dimension_tables(edition.counts, words, name, edition.left_out):
            sheet = sheets.get(table.dimension)
            if sheet is None:
                sheet = sheets[table.dimension] = book.create_sheet(table.dimension[:31])
                _header(sheet, [*FIXED_COLUMNS, *periods])
                sheet.freeze_panes = "D2"
                sheet.column_dimensions["A"].width = 24
                sheet.column_dimensions["B"].width = 22
                sheet.column_dimensions["C"].width = 36
            for row in table.rows:
                by_period = {
                    column.label: cell for column, cell in zip(table.columns, row.cells, strict=True)
                }
                values = [_value(by_period[p]) if p in by_period else "" for p in periods]
                sheet.append([name, inert(row.category), inert(row.label), *values])
    if edition.performance.rows:
        sheet = book.create_sheet("iptt")
        _header(sheet, list(IPTT_COLUMNS))
        sheet.freeze_panes = "A2"
        for target_row in edition.performance.rows:
            sheet.append([_iptt_value(value) for value in target_row.csv_row()])
        for letter, width in zip("ABCDEFGHI", (24, 24, 18, 16, 8, 8, 10, 8, 40), strict=True):
            sheet.column_dimensions[letter].width = width
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    book.save(temporary)
    os.replace(temporary, path)
    return path


def _iptt_value(text: str) -> str | int | float:
    """Numbers as numbers (a spreadsheet sums them), the rest as inert text."""
    if text.isdigit():
        return int(text)
    try:
        return float(text) if "." in text else inert(text)
    except ValueError:
        return inert(text)


def _about_rows(edition: Edition) -> list[tuple[str, str]]:
    words = edition.words
    provenance = edition.provenance
    rows = [
        ("project", edition.project_name),
        ("audience", edition.audience),
        (words.text("footer.run_date"), provenance.run_date.isoformat()),
        (words.text("footer.as_of"), provenance.data_as_of or words.text("footer.never_synced")),
        (words.text("footer.source"), provenance.source),
        *(
            [(words.text("footer.form_versions"), ", ".join(provenance.form_versions))]
            if provenance.form_versions
            else []
        ),
        (words.text("footer.tool"), provenance.tool_version),
        ("not additive", ", ".join(d for d, additive in edition.counts.additive.items() if not additive)),
    ]
    if edition.k is not None:
        need = privacy.need_of(edition.k)
        rows.append(
            ("suppression", words.text("rule.suppression", k=edition.k, k_minus_1=edition.k - 1, need=need))
        )
        rows.append(("revisions", words.text("rule.revisions", k=edition.k)))
    for (name, dimension), level in sorted(edition.left_out.items()):
        rows.append((f"{name}: {dimension}", words.text(f"left_out.{level}")))
    return rows
