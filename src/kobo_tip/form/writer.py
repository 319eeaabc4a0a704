"""Form sheets -> an .xlsx file of literal strings (pyxform reads no formula results)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from openpyxl import Workbook, load_workbook

from kobo_tip.errors import FormError
from kobo_tip.form.builder import Sheet


def write_xlsx(sheets: Iterable[Sheet], path: Path) -> None:
    """Write ``sheets`` to ``path`` atomically; every cell is a string, never a formula."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for sheet in sheets:
        worksheet = workbook.create_sheet(sheet.name)
        for row_index, values in enumerate(
            [list(sheet.columns), *([row.get(col, "") for col in sheet.columns] for row in sheet.rows)],
            start=1,
        ):
            for col_index, value in enumerate(values, start=1):
                if not value:
                    continue
                cell = worksheet.cell(row=row_index, column=col_index, value=value)
                # openpyxl turns text starting with '=' into a formula; a label must stay text.
                cell.data_type = "s"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        workbook.save(partial)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FormError(f"Cannot write {path}: {exc.strerror}; check the folder's permissions.") from None


def read_sheet(path: Path, name: str) -> list[dict[str, str]]:
    """The rows of one sheet of an .xlsx file, as column -> text (empty cells left out)."""
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = workbook[name].iter_rows(values_only=True)
        header = [str(value or "") for value in next(rows)]
        return [
            {col: str(value) for col, value in zip(header, values, strict=False) if value not in (None, "")}
            for values in rows
        ]
    finally:
        workbook.close()
