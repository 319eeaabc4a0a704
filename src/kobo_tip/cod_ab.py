"""OCHA's common operational admin-boundary tables (COD-AB, published on HDX) as the locations
file: place codes (``ADM1_PCODE``, ``ADM2_PCODE``) with their names in each language
(``ADM1_EN``, ``ADM1_TH``, ...), and the order people look names up in."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pycountry

from kobo_tip.config import Location, decode_text
from kobo_tip.errors import ConfigError

_PCODE_RE = re.compile(r"^ADM(\d)_PCODE$")
# ``ADM1_EN``, ``ADM1_TH``: a name column per ISO 639-1 language; ``ADM1_REF`` and the
# alternative-name columns (``ADM1ALT1EN``) do not match.
_NAME_RE = re.compile(r"^ADM(\d)_([A-Z]{2})$")
_CODE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_ENGLISH = "en"

# English names people use for the ISO 3166-2 subdivisions of the countries kobo-tip's demo and
# starter cover, taken from the COD-AB ``ADM1_EN`` column: ISO's transliterations ("Krung Thep
# Maha Nakhon", "Baat Dambang") are not the names staff read or write.
ISO_NAMES_IN_USE: dict[str, str] = {
    "TH-10": "Bangkok",
    "TH-S": "Pattaya",
    "KH-1": "Banteay Meanchey",
    "KH-2": "Battambang",
    "KH-3": "Kampong Cham",
    "KH-5": "Kampong Speu",
    "KH-6": "Kampong Thom",
    "KH-8": "Kandal",
    "KH-9": "Koh Kong",
    "KH-10": "Kratie",
    "KH-11": "Mondul Kiri",
    "KH-14": "Prey Veng",
    "KH-15": "Pursat",
    "KH-16": "Ratanak Kiri",
    "KH-17": "Siemreap",
    "KH-19": "Stung Treng",
    "KH-20": "Svay Rieng",
    "KH-21": "Takeo",
    "KH-22": "Oddar Meanchey",
    "KH-23": "Kep",
    "KH-25": "Tboung Khmum",
}


def hdx_address(country: str) -> str:
    """The HDX page of ``country``'s COD-AB tables (lower-case alpha-2 in, ISO alpha-3 in the
    address, as OCHA names them: ``cod-ab-khm``)."""
    found = pycountry.countries.get(alpha_2=country.upper())
    alpha_3 = found.alpha_3.lower() if found else country.lower()
    return f"https://data.humdata.org/dataset/cod-ab-{alpha_3}"


def is_cod_ab(path: Path) -> bool:
    """Whether ``path`` is a COD-AB table (an ``.xlsx`` workbook, or a CSV whose header names
    ``ADM1_PCODE``) rather than kobo-tip's own ``level,code,name,parent`` CSV."""
    if path.suffix.lower() == ".xlsx":
        return True
    try:
        # The whole file: a cut in the middle of a character would not decode.
        first = decode_text(path.read_bytes(), f"Locations file {path}").split("\n", 1)[0]
    except (OSError, ConfigError):
        return False
    return "ADM1_PCODE" in first


def load_cod_ab(path: Path) -> tuple[Location, ...]:
    """Admin1 and admin2 locations of a COD-AB table: a CSV of one level, or the workbook with a
    sheet per level. Admin1 rows also come from an admin2 table (it repeats ``ADM1_*``), so an
    admin2 table alone is enough. Names: one per ``ADMn_<language>`` column; the English one is
    the location's name, and a row without a name in some language falls back to it."""
    tables = _xlsx_tables(path) if path.suffix.lower() == ".xlsx" else [_csv_table(path)]
    found: dict[str, Location] = {}
    for rows in tables:
        for line, row in enumerate(rows, start=2):
            where = f"Locations file {path} line {line}"
            country = row.get("ADM0_PCODE", "").lower()
            for level in (1, 2):
                code = row.get(f"ADM{level}_PCODE", "")
                if not code or code in found:
                    continue
                parent = country if level == 1 else row.get("ADM1_PCODE", "")
                found[code] = _location(row, level=level, parent=parent, where=where)
    admin1 = [loc for loc in found.values() if loc.level == 1]
    if not admin1:
        raise ConfigError(
            f"Locations file {path} has no ADM1_PCODE rows: use the COD-AB table of level 1 or 2 "
            "(for example xxx_admbnda_adm1 or _adm2) as published on HDX."
        )
    return (*admin1, *(loc for loc in found.values() if loc.level == 2))


def _location(row: dict[str, str], *, level: int, parent: str, where: str) -> Location:
    code = row[f"ADM{level}_PCODE"]
    if not _CODE_RE.match(code):
        raise ConfigError(f"{where}: ADM{level}_PCODE '{code}' must be letters, digits, '_', '-' or '.'.")
    if level == 1 and pycountry.countries.get(alpha_2=parent.upper()) is None:
        raise ConfigError(
            f"{where}: ADM0_PCODE must be the country's ISO alpha-2 code (as COD-AB writes it), "
            f"got '{row.get('ADM0_PCODE', '')}'."
        )
    names = {
        match.group(2).lower(): text
        for column, text in row.items()
        if (match := _NAME_RE.match(column)) and int(match.group(1)) == level and text
    }
    if not names:
        raise ConfigError(f"{where}: ADM{level}_PCODE '{code}' has no name in any ADM{level}_xx column.")
    name = names.get(_ENGLISH) or next(iter(names.values()))
    return Location(level, code, name, parent, names=tuple(sorted(names.items())))


def _csv_table(path: Path) -> list[dict[str, str]]:
    try:
        text = decode_text(path.read_bytes(), f"Locations file {path}")
    except OSError as exc:
        raise ConfigError(f"Locations file {path} cannot be read: {exc.strerror}.") from exc
    first = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=max(",;\t", key=first.count))
    return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _xlsx_tables(path: Path) -> list[list[dict[str, str]]]:
    """The sheets of the workbook that have a ``ADMn_PCODE`` column, each as rows."""
    import openpyxl  # only a workbook needs it  # noqa: PLC0415

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"Locations file {path} is not a readable .xlsx workbook: {exc}.") from exc
    tables = []
    for sheet in book.worksheets:
        rows = sheet.iter_rows(values_only=True)
        header = [str(cell or "").strip() for cell in next(rows, ())]
        if not any(_PCODE_RE.match(column) for column in header):
            continue
        tables.append(
            [
                {
                    column: "" if cell is None else str(cell).strip()
                    for column, cell in zip(header, row, strict=False)
                }
                for row in rows
            ]
        )
    book.close()
    return tables


def name_order(language: str) -> Callable[[str], object]:
    """A sort key putting names in the order a reader of ``language`` looks them up: ICU's
    collation for the language when PyICU is installed; otherwise case-folded text with runs of
    digits compared as numbers ("District 2" before "District 10")."""
    try:
        import icu  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        return _natural_key
    collator = icu.Collator.createInstance(icu.Locale(language))
    key: Callable[[str], object] = collator.getSortKey
    return key


def _natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, int(part), "") if part.isdecimal() else (1, 0, part)
        for part in re.split(r"(\d+)", name.casefold())
        if part
    )


def in_use_names(locations: Iterable[Location]) -> list[Location]:
    """``locations`` with the ISO transliterations replaced by the names people use."""
    return [
        Location(loc.level, loc.code, ISO_NAMES_IN_USE.get(loc.code, loc.name), loc.parent)
        for loc in locations
    ]
