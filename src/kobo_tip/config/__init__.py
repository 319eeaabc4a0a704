"""TOML configuration -> typed, validated settings. Secrets only from the environment.

One module per job: ``settings`` (the dataclasses), ``secret`` (reading secrets from the
environment), ``reader`` (typed access to one TOML table), ``sections`` (each section checked),
``files`` (the roster, locations and referral directory CSVs) and ``load`` (a file to ``Settings``).
The names other modules use are re-exported here, so ``from kobo_tip.config import X`` is the
one way in.
"""

from kobo_tip.config.files import (
    LOCATION_COLUMNS,
    REFERRAL_DIRECTORY_COLUMNS,
    ROSTER_COLUMNS,
    decode_text,
    default_locations,
    load_locations,
    load_referral_directory,
    load_roster,
    write_locations,
    write_referral_directory,
    write_roster,
)
from kobo_tip.config.load import load_settings, settings_from_dict
from kobo_tip.config.secret import MIN_SECRET_CHARS, read_secret
from kobo_tip.config.sections import TRANSLATIONS_FOLDER, check_store_location, parse_language
from kobo_tip.config.settings import (
    AS_REPORTED,
    DEFAULT_CONFIG_NAME,
    EVENT_DATE,
    HOOK_AUTH,
    OUTSIDE_BASES,
    REPORT_FORMATS,
    SOURCE_KINDS,
    Dhis2Settings,
    FormSettings,
    HookCredentials,
    IndicatorSettings,
    Language,
    Location,
    PrivacySettings,
    ProjectSettings,
    ReferralOrg,
    ReportSettings,
    ServeSettings,
    Settings,
    SourceSettings,
    Stakeholder,
    StoreSettings,
    TargetSettings,
)

__all__ = [
    "AS_REPORTED",
    "DEFAULT_CONFIG_NAME",
    "EVENT_DATE",
    "HOOK_AUTH",
    "LOCATION_COLUMNS",
    "MIN_SECRET_CHARS",
    "OUTSIDE_BASES",
    "REFERRAL_DIRECTORY_COLUMNS",
    "REPORT_FORMATS",
    "ROSTER_COLUMNS",
    "SOURCE_KINDS",
    "TRANSLATIONS_FOLDER",
    "Dhis2Settings",
    "FormSettings",
    "HookCredentials",
    "IndicatorSettings",
    "Language",
    "Location",
    "PrivacySettings",
    "ProjectSettings",
    "ReferralOrg",
    "ReportSettings",
    "ServeSettings",
    "Settings",
    "SourceSettings",
    "Stakeholder",
    "StoreSettings",
    "TargetSettings",
    "check_store_location",
    "decode_text",
    "default_locations",
    "load_locations",
    "load_referral_directory",
    "load_roster",
    "load_settings",
    "parse_language",
    "read_secret",
    "settings_from_dict",
    "write_locations",
    "write_referral_directory",
    "write_roster",
]
