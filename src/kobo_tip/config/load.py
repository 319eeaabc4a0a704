"""Reading a config file: TOML in, every section checked, ``Settings`` out."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from kobo_tip.config.reader import Reader, closest
from kobo_tip.config.sections import (
    SECTIONS,
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
from kobo_tip.config.settings import DEFAULT_CONFIG_NAME, Settings
from kobo_tip.errors import ConfigError

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

    def reader(section: str) -> Reader:
        return Reader(section, raw.get(section, {}), base, SECTIONS[section])

    project = _project(reader("project"))
    form = _form(reader("form"), project)
    ind = _indicator(reader("indicator"))
    if ind.location_level == 2 and not any(loc.level == 2 for loc in form.locations):
        raise ConfigError(
            "[indicator] location_level = 2 needs admin2 rows in the locations file ([form] locations)."
        )
    source = _source(reader("source"), form)
    store = _store(reader("store"))
    privacy = _privacy(reader("privacy"))
    report = _report(reader("report"), privacy)
    dhis2 = _dhis2(reader("dhis2")) if "dhis2" in raw else None
    targets = _targets(reader("targets")) if "targets" in raw else None
    serve = _serve(reader("serve"))
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
        if section not in SECTIONS:
            raise ConfigError(f"Unknown section [{section}]{closest(section, tuple(SECTIONS))}.")
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table of keys.")
        for key in table:
            keys = SECTIONS[section].keys
            if key not in keys:
                raise ConfigError(f"Unknown key '{key}' in [{section}]{closest(key, keys)}.")
