"""A language's entries to and from the two files translators use: an XLSX sheet and a gettext
.po catalogue (Weblate, Crowdin, Poedit). Both carry the language's label, so an import knows it."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import polib
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils.exceptions import InvalidFileException

from kobo_tip import __version__
from kobo_tip.config import Language, parse_language
from kobo_tip.errors import ConfigError
from kobo_tip.translation.catalogue import Entry

FORMATS = ("xlsx", "po")
SHEET = "translations"
KEY, ENGLISH, WHERE, NOTE = "key", "English (en)", "where it appears", "keep unchanged"
# The .po header that names the language as the form's columns do ("Khmer (km)").
PO_LANGUAGE_LABEL = "X-Kobo-Tip-Language"
_WIDTHS = {"A": 34, "B": 60, "C": 36, "D": 60, "E": 36}


@dataclass(frozen=True)
class TranslatedFile:
    language: Language
    texts: dict[str, str]  # key -> translation; an empty cell or untranslated entry is left out


def write_file(entries: list[Entry], language: Language, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "po":
        _write_po(entries, language, path)
    else:
        _write_xlsx(entries, language, path)


def read_file(path: Path) -> TranslatedFile:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give the file 'kobo-tip translations export' wrote.")
    if path.suffix.lower() == ".po":
        return _read_po(path)
    if path.suffix.lower() == ".xlsx":
        return _read_xlsx(path)
    raise ConfigError(
        f"{path} is neither .xlsx nor .po; import the file 'kobo-tip translations export' wrote."
    )


def _write_xlsx(entries: list[Entry], language: Language, path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook has one sheet
    sheet.title = SHEET
    sheet.append([KEY, ENGLISH, WHERE, language.label, NOTE])
    for entry in entries:
        sheet.append([entry.key, entry.english, entry.where, entry.translation, entry.note])
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            # openpyxl turns text starting with '=' into a formula; a text must stay text.
            cell.data_type = "s"
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column, width in _WIDTHS.items():
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    try:
        workbook.save(path)
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror}; check the folder's permissions.") from None


def _read_xlsx(path: Path) -> TranslatedFile:
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, InvalidFileException) as exc:
        raise ConfigError(f"{path} cannot be read as an XLSX workbook: {exc}.") from None
    try:
        if SHEET not in workbook.sheetnames:
            raise ConfigError(
                f"{path} has no '{SHEET}' sheet; import the file 'kobo-tip translations export' wrote."
            )
        rows = workbook[SHEET].iter_rows(values_only=True)
        header = [str(value or "").strip() for value in next(rows, ())]
        labels = [name for name in header if name and name not in (KEY, ENGLISH, WHERE, NOTE)]
        if KEY not in header or len(labels) != 1:
            raise ConfigError(
                f"{path}: the '{SHEET}' sheet's first row must be {KEY}, {ENGLISH}, {WHERE}, the "
                f"language such as 'Khmer (km)', {NOTE}, as 'kobo-tip translations export' wrote it."
            )
        key_at, text_at = header.index(KEY), header.index(labels[0])
        texts = {
            str(row[key_at]).strip(): _cell_text(row[text_at])
            for row in rows
            if len(row) > max(key_at, text_at) and row[key_at] not in (None, "")
        }
    finally:
        workbook.close()
    return TranslatedFile(_language(labels[0], path), {key: text for key, text in texts.items() if text})


def _cell_text(value: object) -> str:
    # A translator who types 99 in a cell gets a number back from the workbook; 99.0 is not "99".
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def _write_po(entries: list[Entry], language: Language, path: Path) -> None:
    catalogue = polib.POFile(wrapwidth=0)
    catalogue.metadata = {
        "Project-Id-Version": f"kobo-tip {__version__}",
        "Language": language.code.replace("-", "_"),
        PO_LANGUAGE_LABEL: language.label,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    for entry in entries:
        # The key is the context: "Yes" of yes_no and "Yes" of a report are separate entries.
        catalogue.append(
            polib.POEntry(
                msgctxt=entry.key,
                msgid=entry.english,
                msgstr=entry.translation,
                comment="\n".join(part for part in (entry.where, entry.note) if part),
                # Weblate and Poedit check that {k} placeholders are kept when this flag is set.
                flags=["python-brace-format"] if "{" in entry.english else [],
            )
        )
    try:
        catalogue.save(str(path))
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror}; check the folder's permissions.") from None


def _read_po(path: Path) -> TranslatedFile:
    try:
        catalogue = polib.pofile(str(path), encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read as a gettext .po file: {exc}.") from None
    label = catalogue.metadata.get(PO_LANGUAGE_LABEL, "")
    if not label:
        raise ConfigError(
            f"{path} has no {PO_LANGUAGE_LABEL} header (such as 'Khmer (km)'); add it, or import the "
            "file 'kobo-tip translations export' wrote."
        )
    # A fuzzy entry is one the tool or translator marked as needing work: not a translation yet.
    texts = {
        entry.msgctxt: entry.msgstr.strip()
        for entry in catalogue
        if entry.msgctxt and not entry.obsolete and not entry.fuzzy and entry.msgstr.strip()
    }
    return TranslatedFile(_language(label, path), texts)


def _language(label: str, path: Path) -> Language:
    try:
        return parse_language(label)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}.") from exc
