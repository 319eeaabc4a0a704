"""What every sheet kobo-tip writes shares: a styled, frozen header; cells that hold numbers as
numbers and text made inert; columns as wide as what they hold; the key of ``<k`` and ``x``."""

from __future__ import annotations

import os
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from kobo_tip.report.files import inert

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
NOTE_FONT = Font(italic=True)
NARROWEST, WIDEST = 8, 60  # characters: a column fits its longest value within these
SHEET_TITLE_LIMIT = 31  # characters Excel allows in a sheet's name
_NOT_IN_SHEET_TITLE = str.maketrans(dict.fromkeys("[]:*?/\\", " "))


def header(sheet: Worksheet, titles: list[str]) -> None:
    """Append ``titles`` as a styled header row."""
    sheet.append([inert(title) for title in titles])
    for cell in sheet[sheet.max_row]:
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center", wrap_text=True)


def sheet_title(book: Workbook, text: str) -> str:
    """``text`` (a heading in the report language) as a sheet name Excel accepts: without the
    characters it refuses, cut to its limit, and told apart from the book's other sheets."""
    title = " ".join(text.translate(_NOT_IN_SHEET_TITLE).split())[:SHEET_TITLE_LIMIT] or "-"
    taken = {name.casefold() for name in book.sheetnames}
    candidate, number = title, 1
    while candidate.casefold() in taken:
        number += 1
        suffix = f" ({number})"
        candidate = title[: SHEET_TITLE_LIMIT - len(suffix)] + suffix
    return candidate


def published_value(text: str) -> int | str:
    """A published cell as a spreadsheet holds it: a count as a number, ``<k`` and ``x`` as text."""
    return int(text) if text.isdigit() else inert(text)


def add_note(sheet: Worksheet, note: str) -> None:
    """Append ``note`` as an italic line (nothing for an empty note)."""
    if note:
        sheet.append([inert(note)])
        sheet.cell(sheet.max_row, 1).font = NOTE_FONT


def fit_columns(sheet: Worksheet, skip_rows: frozenset[int] = frozenset()) -> None:
    """Size each column to its longest value (rows in ``skip_rows``, such as a note that runs
    across, do not count), within ``NARROWEST`` and ``WIDEST`` characters."""
    widths: dict[int, int] = {}
    for row in sheet.iter_rows():
        for cell in row:
            if cell.value is None or cell.row in skip_rows:
                continue
            column = cell.column
            widths[column] = max(widths.get(column, 0), len(str(cell.value)))
    for column, width in widths.items():
        sheet.column_dimensions[get_column_letter(column)].width = min(max(width + 2, NARROWEST), WIDEST)


def save(book: Workbook, path: Path) -> Path:
    """Save ``book`` through a temporary file, so a reader never sees half a workbook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    book.save(temporary)
    os.replace(temporary, path)
    return path
