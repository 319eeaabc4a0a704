"""Reading a config file: TOML in, every section checked, ``Settings`` out."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from kobo_tip.config.reader import Reader, closest, field_defaults
from kobo_tip.config.sections import (
    _dhis2,
    _form,
    _indicator,
    _privacy,
    _project,
    _report,
    _serve,
    _source,
    _store,
    _targets,
)
from kobo_tip.config.settings import (
    DEFAULT_CONFIG_NAME,
    Dhis2Settings,
    PrivacySettings,
    ReportSettings,
    ServeSettings,
    Settings,
    SourceSettings,
    StoreSettings,
    TargetSettings,
)
from kobo_tip.errors import ConfigError

_SCHEMA: dict[str, tuple[str, ...]] = {
    "project": (
        "name",
        "country",
        "start_date",
        "end_date",
        "fiscal_year_start_month",
        "languages",
        "report_language",
    ),
    "form": ("form_id", "title", "roster", "locations", "disability", "ethnicities", "referral_directory"),
    "indicator": (
        "merges",
        "person_categories",
        "require_approved",
        "require_event_after_training",
        "age_bands",
        "location_level",
    ),
    "source": (
        "kind",
        "url",
        "asset_uid",
        "token_env",
        "reconcile_hours",
        "project_id",
        "form_id",
        "username_env",
        "password_env",
        "path",
        "page_size",
    ),
    "store": ("path", "url", "schema", "password_env"),
    "privacy": ("secret_env", "min_cell"),
    "report": (
        "out_dir",
        "audiences",
        "formats",
        "group",
        "share_with_group",
        "stale_after_days",
        "max_unreadable_percent",
        "outside_basis",
    ),
    "dhis2": (
        "data_elements",
        "org_unit",
        "attribute_option_combo",
        "category_option_combos",
        "data_set",
        "target_attribute_option_combo",
    ),
    "targets": ("path", "sheet", "margin_percent"),
    "serve": tuple(ServeSettings.__dataclass_fields__),
}
_REQUIRED_SECTIONS = ("project", "form")


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate a config file. Raises ConfigError naming the key or file at fault."""
    config_path = Path(path or DEFAULT_CONFIG_NAME).absolute()
    if not config_path.is_file():
        raise ConfigError(
            f"Config file {config_path} not found (pass -c CONFIG, or run 'kobo-tip init' to write one)."
        )
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {config_path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {config_path} is not UTF-8 text.") from None
    return settings_from_dict(raw, config_path)


def settings_from_dict(raw: dict[str, Any], config_path: Path) -> Settings:
    """Validate a parsed config; relative paths resolve against ``config_path``'s folder."""
    base = config_path.parent
    _check_keys(raw)
    for section in _REQUIRED_SECTIONS:
        if section not in raw:
            raise ConfigError(f"Section [{section}] is missing from {config_path}.")

    def reader(section: str, settings_class: type | None = None) -> Reader:
        defaults = field_defaults(settings_class) if settings_class else {}
        return Reader(section, raw.get(section, {}), base, defaults)

    project = _project(reader("project"))
    form = _form(reader("form"), project)
    ind = _indicator(reader("indicator"))
    if ind.location_level == 2 and not any(loc.level == 2 for loc in form.locations):
        raise ConfigError(
            "[indicator] location_level = 2 needs admin2 rows in the locations file ([form] locations)."
        )
    source = _source(reader("source", SourceSettings), form)
    store = _store(reader("store", StoreSettings))
    privacy = _privacy(reader("privacy", PrivacySettings))
    report = _report(reader("report", ReportSettings), privacy)
    dhis2 = _dhis2(reader("dhis2", Dhis2Settings)) if "dhis2" in raw else None
    targets = _targets(reader("targets", TargetSettings)) if "targets" in raw else None
    serve = _serve(reader("serve", ServeSettings))
    return Settings(
        path=config_path,
        project=project,
        form=form,
        indicator=ind,
        source=source,
        store=store,
        privacy=privacy,
        report=report,
        dhis2=dhis2,
        targets=targets,
        serve=serve,
    )


def _check_keys(raw: dict[str, Any]) -> None:
    for section, table in raw.items():
        if section not in _SCHEMA:
            raise ConfigError(f"Unknown section [{section}]{closest(section, tuple(_SCHEMA))}.")
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table of keys.")
        for key in table:
            if key not in _SCHEMA[section]:
                raise ConfigError(f"Unknown key '{key}' in [{section}]{closest(key, _SCHEMA[section])}.")
