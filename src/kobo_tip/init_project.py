"""``kobo-tip init``: a starter config, an example roster and referral directory, and the
country's locations."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import pycountry

from kobo_tip.cod_ab import hdx_address, in_use_names
from kobo_tip.config import (
    DEFAULT_CONFIG_NAME,
    Location,
    ReferralOrg,
    Stakeholder,
    default_locations,
    load_locations,
    write_locations,
    write_referral_directory,
    write_roster,
)
from kobo_tip.errors import ConfigError
from kobo_tip.labels import shipped_languages

STARTER_CONFIG = Path(__file__).resolve().parent / "starter" / "kobo-tip.toml"
ROSTER_NAME = "forms/stakeholders.csv"
LOCATIONS_NAME = "forms/locations.csv"
REFERRAL_DIRECTORY_NAME = "forms/referral_directory.csv"

# Example roster: two stakeholders of every type, for the M&E officer to replace.
_EXAMPLE_ROSTER = tuple(
    Stakeholder(sid, name, kind, dt.date.fromisoformat(day) if day else None)
    for sid, name, kind, day in (
        ("bc_north", "Northern Border Checkpoint", "border_control", "2025-10-15"),
        ("bc_airport", "International Airport Immigration", "border_control", "2025-11-03"),
        ("li_province", "Provincial Labour Inspectorate", "labour_inspector", "2025-10-20"),
        ("li_fisheries", "Fisheries Labour Inspection Unit", "labour_inspector", ""),
        ("ngo_shelter", "Safe Shelter Foundation", "ngo_partner", "2025-10-10"),
        ("ngo_migrant", "Migrant Workers Support Network", "ngo_partner", "2025-12-01"),
        ("ps_garments", "Garment Manufacturers Association", "private_sector", "2026-01-15"),
        ("ps_recruiter", "Licensed Recruitment Agency", "private_sector", ""),
        ("cm_volunteers", "Community Watch Volunteers", "community_member", "2025-11-20"),
        ("cm_women", "Women's Village Committee", "community_member", "2026-02-10"),
        ("og_police", "Anti-Trafficking Police Unit", "other_government", "2025-10-25"),
        ("og_social", "Provincial Social Welfare Office", "other_government", "2026-02-01"),
        ("ot_health", "District Hospital", "other", "2026-03-05"),
        ("ot_faith", "Interfaith Council", "other", ""),
    )
)

# Example referral directory: one organisation for each kind of service people are referred to.
EXAMPLE_REFERRAL_DIRECTORY = (
    ReferralOrg(
        "shelter",
        "Provincial Shelter for Children and Families",
        ("shelter", "basic_needs", "child_protection"),
    ),
    ReferralOrg("hospital", "Provincial Hospital", ("medical", "psychosocial", "emergency_transport")),
    ReferralOrg("legal_aid", "Legal Aid Clinic", ("legal_aid", "documentation", "interpretation")),
    ReferralOrg(
        "social_welfare", "Social Welfare Office", ("return_repatriation", "reintegration", "livelihood")
    ),
)


def write_starter(folder: Path, country: str = "th", locations_file: Path | None = None) -> list[Path]:
    """Write kobo-tip.toml, forms/stakeholders.csv, forms/locations.csv (a copy of
    ``locations_file``, such as the country's COD-AB table, when given; else the ISO 3166-2
    subdivisions) and forms/referral_directory.csv into ``folder``.

    Raises ConfigError for an unknown country, a locations file that is not one of the
    country's, or when one of those files already exists.
    """
    code = country.strip().lower()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code.upper()) is None:
        raise ConfigError(f"Unknown country '{country}': give an ISO 3166-1 alpha-2 code such as 'th'.")
    folder = Path(folder)
    config, roster = folder / DEFAULT_CONFIG_NAME, folder / ROSTER_NAME
    locations = folder / LOCATIONS_NAME
    if locations_file is not None:
        _check_country(load_locations(locations_file), code, locations_file)
        locations = locations.with_suffix(locations_file.suffix.lower())
    directory = folder / REFERRAL_DIRECTORY_NAME
    for path in (config, roster, locations, directory):
        if path.exists():
            raise ConfigError(
                f"{path} already exists: kobo-tip init never overwrites it; choose another folder."
            )
    text, replaced = re.subn(
        r'^country = "[a-z]{2}"',
        f'country = "{code}"',
        STARTER_CONFIG.read_text(encoding="utf-8"),
        count=1,
        flags=re.MULTILINE,
    )
    if replaced != 1:
        raise ConfigError(f"The starter config {STARTER_CONFIG} has no 'country = \"..\"' line to fill in.")
    text = text.replace(
        f'locations = "{LOCATIONS_NAME}"', f'locations = "{locations.relative_to(folder).as_posix()}"'
    )
    try:
        roster.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text, encoding="utf-8")
        write_roster(_EXAMPLE_ROSTER, roster)
        if locations_file is None:
            write_locations(subdivision_locations(code), locations)
        else:
            locations.write_bytes(locations_file.read_bytes())
        write_referral_directory(EXAMPLE_REFERRAL_DIRECTORY, directory)
    except OSError as exc:
        raise ConfigError(f"Cannot write the starter files in {folder}: {exc.strerror}.") from None
    return [config, roster, locations, directory]


def _check_country(locations: tuple[Location, ...], country: str, path: Path) -> None:
    others = sorted({loc.parent for loc in locations if loc.level == 1} - {country})
    if others:
        raise ConfigError(
            f"Locations file {path} has places of {', '.join(others)}, not only of '{country}': "
            "give the table of the project's country, or its --country."
        )


def locations_note(country: str, *, given: bool) -> str:
    """Where the officer gets the names and codes staff use: OCHA's COD-AB table on HDX."""
    if given:
        return (
            "Locations: the form shows each place's name in every form language its table has an "
            "ADMn_<code> column for (ADM1_KM for Khmer), and the English name otherwise."
        )
    return (
        f"Locations: {LOCATIONS_NAME} lists ISO 3166-2 subdivisions, in English only and in ISO's "
        "spelling, which may not be the names staff use. For the official names and codes in the "
        f"country's languages, download the COD-AB admin-boundary table (adm1 or adm2, CSV or XLSX) "
        f"from {hdx_address(country)} and run 'kobo-tip init --country {country} --locations FILE' "
        "in a new folder, or set [form] locations to that file."
    )


def translations_note(country: str) -> str:
    """What the starter's form languages are, which translations kobo-tip ships, and how to add
    the country's language."""
    shipped = ", ".join(shipped_languages())
    country_name = pycountry.countries.get(alpha_2=country.upper()).name  # type: ignore[union-attr]
    starter = tomllib.loads(STARTER_CONFIG.read_text(encoding="utf-8"))["project"]["languages"]
    return (
        f"Form languages: {', '.join(starter)} (kobo-tip ships translations for {shipped}). To add the "
        f'language of {country_name}, add "Name (code)" to [project] languages, run kobo-tip translations '
        'export --language "Name (code)", have the XLSX (or .po) file translated, and bring it back with '
        "kobo-tip translations import FILE: it writes translations/<code>.toml beside kobo-tip.toml."
    )


def subdivision_locations(country: str) -> list[Location]:
    """ISO 3166-2 subdivisions of ``country``: the top level as admin1, their children as admin2."""
    admin1 = list(default_locations(country))
    top = {loc.code for loc in admin1}
    children = sorted(
        (s for s in pycountry.subdivisions.get(country_code=country.upper()) or () if s.parent_code in top),
        key=lambda s: (s.parent_code, s.code),
    )
    return in_use_names(admin1 + [Location(2, s.code, s.name, s.parent_code) for s in children])
