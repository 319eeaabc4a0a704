"""The project's CSV files beside the config: the roster, the locations and the referral directory."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pycountry

from kobo_tip import indicator
from kobo_tip.config.reader import closest
from kobo_tip.config.settings import Location, ReferralOrg, Stakeholder
from kobo_tip.errors import ConfigError

CHOICE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """The rows of a small CSV file saved by a spreadsheet: UTF-8 (with or without BOM) or UTF-16,
    separated by commas, semicolons (Excel in many locales) or tabs, as its header line shows."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}.") from None
    text = decode_text(data, f"{what} {path}")
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = list(reader)
    header = reader.fieldnames or []
    missing = [c for c in columns if c not in header]
    if missing:
        raise ConfigError(
            f"{what} {path} lacks the column(s) {', '.join(missing)}; its first line must be the header "
            f"{','.join(columns)} (found {first.strip()[:80]!r})."
        )
    return [{k: (v or "").strip() for k, v in row.items() if k} for row in rows]


def decode_text(data: bytes, what: str) -> str:
    """``data`` as text: UTF-8 (a BOM is dropped) or UTF-16 with its BOM; anything else is an
    error that says what the file seems to be and how to save it as UTF-8."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        looks = "UTF-16 without a byte-order mark" if b"\x00" in data[:200] else "Latin-1 or Windows-1252"
        raise ConfigError(
            f"{what} is not UTF-8 text: line {line} holds the byte 0x{data[exc.start]:02X}, as {looks} "
            "files do. Save it again as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'; LibreOffice: "
            "character set 'Unicode (UTF-8)')."
        ) from None


ROSTER_COLUMNS = ("id", "name", "type", "trained_on")
ROSTER_ORGANISATION = "organisation"  # optional: the partner organisation (contract section 7)
LOCATION_COLUMNS = ("level", "code", "name", "parent")
REFERRAL_DIRECTORY_COLUMNS = ("id", "name", "services")


def write_roster(roster: Iterable[Stakeholder], path: Path) -> Path:
    """Write a roster as the CSV that ``load_roster`` reads (with ``organisation`` when one is set)."""
    rows = [
        (s.id, s.name, s.type, s.trained_on.isoformat() if s.trained_on else "", s.organisation)
        for s in roster
    ]
    if any(row[-1] for row in rows):
        return _write_csv(path, (*ROSTER_COLUMNS, ROSTER_ORGANISATION), rows)
    return _write_csv(path, ROSTER_COLUMNS, (row[:-1] for row in rows))


def write_locations(locations: Iterable[Location], path: Path) -> Path:
    """Write locations as the CSV that ``load_locations`` reads."""
    return _write_csv(path, LOCATION_COLUMNS, ((x.level, x.code, x.name, x.parent) for x in locations))


def write_referral_directory(directory: Iterable[ReferralOrg], path: Path) -> Path:
    """Write a referral directory as the CSV that ``load_referral_directory`` reads."""
    return _write_csv(
        path, REFERRAL_DIRECTORY_COLUMNS, ((o.id, o.name, " ".join(o.services)) for o in directory)
    )


def _write_csv(path: Path, header: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _new_choice_id(value: str, seen: set[str], where: str, not_listed: str) -> str:
    """A roster's or directory's id, checked as a choice name of the form and added to ``seen``;
    ``not_listed`` says whom the reserved ``not_listed`` choice stands for."""
    if not CHOICE_NAME_RE.match(value):
        raise ConfigError(f"{where}: id '{value}' must be letters, digits, '_', '-' or '.', without spaces.")
    if value == indicator.NOT_LISTED:
        raise ConfigError(f"{where}: id '{value}' is reserved for {not_listed}.")
    if value in seen:
        raise ConfigError(f"{where}: duplicate id '{value}'.")
    seen.add(value)
    return value


def _id_rows(
    path: Path, columns: tuple[str, ...], what: str, not_listed: str
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Each row of the ``what`` CSV at ``path`` (the roster, the referral directory) with where it
    stands, for errors, and its id, checked as a new choice name (``_new_choice_id``); a row whose
    name is empty is refused."""
    seen: set[str] = set()
    for line, row in enumerate(_read_csv(path, columns, what), start=2):
        where = f"{what} {path} line {line}"
        row_id = _new_choice_id(row["id"], seen, where, not_listed)
        if not row["name"]:
            raise ConfigError(f"{where}: name is empty.")
        yield where, row_id, row


def load_roster(path: Path) -> tuple[Stakeholder, ...]:
    """Read and check the roster CSV: ``id,name,type,trained_on`` and optionally ``organisation``."""
    types = indicator.CHOICES["stakeholder_type"]
    roster = []
    for where, sid, row in _id_rows(path, ROSTER_COLUMNS, "Roster", "stakeholders not on the roster"):
        if row["type"] not in types:
            raise ConfigError(
                f"{where}: type '{row['type']}' is not a stakeholder type{closest(row['type'], types)}; "
                f"choose from {', '.join(types)}."
            )
        trained_on = None
        if row["trained_on"]:
            try:
                trained_on = dt.date.fromisoformat(row["trained_on"])
            except ValueError:
                raise ConfigError(
                    f"{where}: trained_on '{row['trained_on']}' is not a date written YYYY-MM-DD."
                ) from None
        organisation = " ".join(row.get(ROSTER_ORGANISATION, "").split())
        roster.append(Stakeholder(sid, row["name"], row["type"], trained_on, organisation))
    if not roster:
        raise ConfigError(f"Roster {path} has no stakeholders.")
    return tuple(roster)


def load_referral_directory(path: Path) -> tuple[ReferralOrg, ...]:
    """Read and check the referral directory CSV: ``id,name,services`` (services: names of the
    ``service`` choice list separated by spaces, or empty)."""
    known = indicator.CHOICES["service"]
    directory = []
    rows = _id_rows(
        path, REFERRAL_DIRECTORY_COLUMNS, "Referral directory", "organisations not in the directory"
    )
    for where, oid, row in rows:
        services = tuple(row["services"].split())
        for service in services:
            if service not in known:
                raise ConfigError(
                    f"{where}: service '{service}' is not a service{closest(service, known)}; "
                    f"choose from {', '.join(known)}, separated by spaces."
                )
        directory.append(ReferralOrg(oid, row["name"], services))
    if not directory:
        raise ConfigError(f"Referral directory {path} has no organisations: add some, or leave the key out.")
    return tuple(directory)


def load_locations(path: Path) -> tuple[Location, ...]:
    """Read and check the locations CSV: ``level,code,name,parent``, or an OCHA COD-AB table."""
    from kobo_tip.cod_ab import is_cod_ab, load_cod_ab  # it builds on this package  # noqa: PLC0415

    if is_cod_ab(path):
        return load_cod_ab(path)
    rows = _read_csv(path, LOCATION_COLUMNS, "Locations file")
    locations: list[Location] = []
    codes: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        where = f"Locations file {path} line {line}"
        if row["level"] not in ("1", "2"):
            raise ConfigError(f"{where}: level must be 1 (admin1) or 2 (admin2), got '{row['level']}'.")
        level = int(row["level"])
        code = row["code"]
        if not CHOICE_NAME_RE.match(code):
            raise ConfigError(
                f"{where}: code '{code}' must be letters, digits, '_', '-' or '.', without spaces."
            )
        if code in codes:
            raise ConfigError(f"{where}: duplicate code '{code}'.")
        if not row["name"]:
            raise ConfigError(f"{where}: name is empty.")
        parent = row["parent"]
        if level == 1:
            parent = parent.lower()
            if pycountry.countries.get(alpha_2=parent.upper()) is None:
                raise ConfigError(
                    f"{where}: an admin1 row's parent must be an ISO alpha-2 country code, "
                    f"got '{row['parent']}'."
                )
        elif codes.get(parent) != 1:
            raise ConfigError(
                f"{where}: an admin2 row's parent must be the code of an admin1 row above it, got '{parent}'."
            )
        codes[code] = level
        locations.append(Location(level, code, row["name"], parent))
    return tuple(locations)


def default_locations(country: str) -> tuple[Location, ...]:
    """Admin1 entries from pycountry's ISO 3166-2 subdivisions (top level) of ``country``."""
    subdivisions = pycountry.subdivisions.get(country_code=country.upper()) or []
    top = sorted((s for s in subdivisions if s.parent_code is None), key=lambda s: s.code)
    return tuple(Location(1, s.code, s.name, country.lower()) for s in top)
