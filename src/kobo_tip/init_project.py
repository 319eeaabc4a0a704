"""``kobo-tip init``: a starter config, an example roster and referral directory, and the
country's locations."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import pycountry

from kobo_tip.config import (
    DEFAULT_CONFIG_NAME,
    Location,
    ReferralOrg,
    Stakeholder,
    default_locations,
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


def write_starter(folder: Path, country: str = "th") -> list[Path]:
    """Write kobo-tip.toml, forms/stakeholders.csv, forms/locations.csv and
    forms/referral_directory.csv into ``folder``.

    Raises ConfigError for an unknown country, or when one of those files already exists.
    """
    code = country.strip().lower()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code.upper()) is None:
        raise ConfigError(f"Unknown country '{country}': give an ISO 3166-1 alpha-2 code such as 'th'.")
    folder = Path(folder)
    config, roster, locations = folder / DEFAULT_CONFIG_NAME, folder / ROSTER_NAME, folder / LOCATIONS_NAME
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
    try:
        roster.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text, encoding="utf-8")
        write_roster(_EXAMPLE_ROSTER, roster)
        write_locations(subdivision_locations(code), locations)
        write_referral_directory(EXAMPLE_REFERRAL_DIRECTORY, directory)
    except OSError as exc:
        raise ConfigError(f"Cannot write the starter files in {folder}: {exc.strerror}.") from None
    return [config, roster, locations, directory]


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
    return admin1 + [Location(2, s.code, s.name, s.parent_code) for s in children]
