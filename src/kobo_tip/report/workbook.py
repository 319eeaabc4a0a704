"""counts.xlsx: the published tables for people.

``data`` is every published cell as a row (a pivot table or Power BI reads it): the value a
number, or empty beside the ``status`` of a cell not shown; like counts.csv it keeps its English
name and column names in every language, so what reads it needs no change. Then the age band x
gender cross-tab of every period, and one sheet per dimension with the categories down and the
periods across: those sheets, and their headers, are named in the report language;
internal only, the counts by partner organisation and stakeholder (``partners``).
Numbers are stored as numbers, ``<k`` and ``x`` as text (outside internal, a line on each sheet
says what they mean), and every text cell that a spreadsheet could read as a formula is made inert.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.worksheet.worksheet import Worksheet

from kobo_tip import indicator, privacy
from kobo_tip.partners import PARTNER_COLUMNS
from kobo_tip.privacy import CROSS_TAB
from kobo_tip.report.edition import Edition
from kobo_tip.report.files import inert
from kobo_tip.report.iptt import IPTT_COLUMNS, readable_row, unpublished
from kobo_tip.report.sheets import add_note, fit_columns, header, published_value, save, sheet_title
from kobo_tip.report.tables import cross_tab, dimension_tables

FIXED_COLUMNS = ("column.indicator", "column.code", "column.category")  # report texts
CROSS_COLUMNS = ("column.indicator", "column.period", "column.code", "dimension.age_band")
DATA_SHEET = "data"
PARTNER_SHEET = "partners"
DATA_COLUMNS = (*indicator.COUNTS_COLUMNS, "status")
SHOWN, SMALL, HIDDEN = "shown", "small", "hidden"  # the status of a published cell
IPTT_NUMBERS = frozenset(IPTT_COLUMNS.index(name) for name in ("target", "actual", "percent_achieved"))


def status_of(text: str) -> str:
    """``shown`` for a number, ``small`` for ``<k``, ``hidden`` for ``x``."""
    return SHOWN if text.isdigit() else SMALL if text.startswith("<") else HIDDEN


def write_workbook(path: Path, edition: Edition) -> Path:
    """Write counts.xlsx for ``edition`` (through a temporary file) and return its path."""
    book = Workbook()
    words = edition.words
    about = book.active
    about.title = sheet_title(book, words.text("sheet.about"))
    for label, value in _about_rows(edition):
        about.append([inert(label), inert(value)])
    about.column_dimensions["A"].width = 28
    about.column_dimensions["B"].width = 90
    note = key_note(edition)
    _data_sheet(book.create_sheet(DATA_SHEET), edition.published, note)
    if any(dimension == CROSS_TAB for _, dimension in edition.counts.categories):
        _cross_sheet(book.create_sheet(sheet_title(book, words.dimension(CROSS_TAB))), edition, note)
    sheets: dict[str, Worksheet] = {}
    periods = [p.label for p in edition.counts.periods]
    for name in edition.counts.indicators():
        for table in dimension_tables(edition.counts, edition.words, name, edition.left_out):
            sheet = sheets.get(table.dimension)
            if sheet is None:
                sheet = sheets[table.dimension] = book.create_sheet(sheet_title(book, table.title))
                titles = [*(words.text(key) for key in FIXED_COLUMNS), *(words.period(p) for p in periods)]
                _start(sheet, titles, note, "D")
            for row in table.rows:
                by_period = {
                    column.label: cell for column, cell in zip(table.columns, row.cells, strict=True)
                }
                values = [published_value(by_period[p].text) if p in by_period else "" for p in periods]
                sheet.append([name, inert(row.category), inert(row.label), *values])
    if edition.partners is not None:  # internal only
        sheet = book.create_sheet(PARTNER_SHEET)
        _start(sheet, list(PARTNER_COLUMNS), "", "D")
        for partner_row in edition.partners[list(PARTNER_COLUMNS)].itertuples(index=False):
            sheet.append([value if isinstance(value, int) else inert(str(value)) for value in partner_row])
    if edition.performance.rows:
        sheet = book.create_sheet(sheet_title(book, words.text("sheet.iptt")))
        _start(
            sheet, [words.text(f"column.{name}") for name in IPTT_COLUMNS], key_note(edition, iptt=True), "A"
        )
        for target_row in edition.performance.rows:
            readable = readable_row(target_row, words)
            sheet.append([_iptt_value(v) if n in IPTT_NUMBERS else inert(v) for n, v in enumerate(readable)])
    for sheet in book.worksheets[1:]:
        fit_columns(sheet, frozenset({1}) if note else frozenset())
    return save(book, path)


def key_note(edition: Edition, *, iptt: bool = False) -> str:
    """The line that says what ``<k`` and ``x`` mean, in an outside audience's sheets; ``iptt``:
    beside the IPTT, with what "not published" means when one of its actuals is."""
    if edition.k is None:
        return ""
    # The same line as beside the report's tables.
    return edition.words.hidden_key(edition.k, not_published=iptt and unpublished(edition.performance.rows))


def _start(sheet: Worksheet, titles: list[str], note: str, first_scrolling: str) -> None:
    """The key (when there is one) and the header, frozen above the rows and left of
    ``first_scrolling``, the first column that scrolls."""
    add_note(sheet, note)
    header(sheet, titles)
    sheet.freeze_panes = f"{first_scrolling}{sheet.max_row + 1}"


def _data_sheet(sheet: Worksheet, published: pd.DataFrame, note: str) -> None:
    """Every published cell as a row; the header is the first row, so that a pivot table, Power BI
    or ``pandas.read_excel`` reads it as it is (the key is a comment on the ``status`` header)."""
    header(sheet, list(DATA_COLUMNS))
    sheet.freeze_panes = "A2"
    if note:
        sheet.cell(1, len(DATA_COLUMNS)).comment = Comment(note, "kobo-tip")
    columns = [published[c].astype(str).tolist() for c in indicator.COUNTS_COLUMNS]
    for name, period, start, end, dimension, category, text in zip(*columns, strict=True):
        value = int(text) if text.isdigit() else None
        sheet.append([name, inert(period), start, end, dimension, inert(category), value, status_of(text)])


def _cross_sheet(sheet: Worksheet, edition: Edition, note: str) -> None:
    """Age bands down and genders across, for each indicator and period in turn."""
    words = edition.words
    tables = [
        (name, period.label, table)
        for name in edition.counts.indicators()
        for period in edition.counts.periods
        if (table := cross_tab(edition.counts, words, name, period.label)) is not None
    ]
    genders = list(dict.fromkeys(column.label for _, _, table in tables for column in table.columns))
    _start(sheet, [*(words.text(key) for key in CROSS_COLUMNS), *genders], note, "E")
    for name, period, table in tables:
        for row in table.rows:
            by_gender = {column.label: cell for column, cell in zip(table.columns, row.cells, strict=True)}
            values = [published_value(by_gender[g].text) if g in by_gender else "" for g in genders]
            sheet.append([name, inert(words.period(period)), inert(row.category), inert(row.label), *values])


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
        (words.text("about.project"), edition.project_name),
        (words.text("about.audience"), words.text(f"audience.{edition.audience}")),
        (words.text("footer.run_date"), words.date(provenance.run_date)),
        (words.text("footer.as_of"), provenance.data_as_of or words.text("footer.never_synced")),
        (words.text("footer.source"), provenance.source),
        *(
            [(words.text("footer.form_versions"), ", ".join(provenance.form_versions))]
            if provenance.form_versions
            else []
        ),
        (words.text("footer.tool"), provenance.tool_version),
        (
            words.text("about.not_additive"),
            ", ".join(words.dimension(d) for d, additive in edition.counts.additive.items() if not additive),
        ),
    ]
    if edition.k is not None:
        need = privacy.need_of(edition.k)
        rows.append(
            (
                words.text("about.suppression"),
                words.text("rule.suppression", k=edition.k, k_minus_1=edition.k - 1, need=need),
            )
        )
        rows.append((words.text("about.revisions"), words.text("rule.revisions", k=edition.k)))
    for (name, dimension), level in sorted(edition.left_out.items()):
        rows.append(
            (f"{words.indicator(name)}: {words.dimension(dimension)}", words.text(f"left_out.{level}"))
        )
    return rows
