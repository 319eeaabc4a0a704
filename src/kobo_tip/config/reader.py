"""Typed reading of one TOML table, with errors that name the section and key at fault."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kobo_tip.errors import ConfigError


def closest(name: str, options: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


@dataclass(frozen=True)
class Section:
    """One section's table of keys, used both to read it (``Reader`` reads no other key) and to
    refuse a key the config has beyond it; and the defaults of those keys."""

    keys: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, settings_class: type) -> Section:
        """The section read field by field into ``settings_class``: its fields and their defaults."""
        names = tuple(item.name for item in dataclasses.fields(settings_class))
        return cls(names, field_defaults(settings_class))


def field_defaults(settings_class: type) -> dict[str, Any]:
    """The defaults a settings dataclass declares, by field name: the one place each is written."""
    defaults = {}
    for item in dataclasses.fields(settings_class):
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
    return defaults


class Reader:
    """Typed access to one TOML table, with errors that name the key. It reads only the keys of its
    section's table; a key read without a default takes the table's, else it is required."""

    def __init__(self, section: str, table: dict[str, Any], base: Path, spec: Section) -> None:
        self.section = section
        self.table = table
        self.base = base
        self.spec = spec
        self.defaults = spec.defaults
        self.read: set[str] = set()  # the keys asked for: the tests hold them to the table

    def key(self, name: str) -> str:
        return f"[{self.section}] {name}"

    def fail(self, name: str, expected: str) -> ConfigError:
        value = self.table.get(name)
        return ConfigError(f"{self.key(name)} must be {expected}, got {value!r}.")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, expected: str) -> Any:
        if name not in self.spec.keys:  # a reader and its table disagree: the code is wrong, not the config
            raise LookupError(f"{self.key(name)} is read but not in the section's table of keys")
        self.read.add(name)
        if name not in self.table:
            if default is ...:
                default = self.defaults.get(name, ...)
            if default is ...:
                raise ConfigError(f"{self.key(name)} is missing: it must be {expected}.")
            return default
        value = self.table[name]
        # TOML booleans are ints in Python: keep them apart.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(name, expected)
        if not isinstance(value, kind):
            raise self.fail(name, expected)
        return value

    def text(self, name: str, default: Any = ..., *, expected: str = "a string") -> str:
        return self.get(name, str, default, expected=expected)

    def boolean(self, name: str, default: Any = ...) -> bool:
        return self.get(name, bool, default, expected="true or false")

    def integer(self, name: str, default: Any = ..., *, low: int, high: int) -> int:
        expected = f"an integer from {low} to {high}"
        value = self.get(name, int, default, expected=expected)
        if not low <= value <= high:
            raise self.fail(name, expected)
        return value

    def date(self, name: str) -> dt.date:
        expected = "a date written YYYY-MM-DD"
        value = self.get(name, (dt.date, str), expected=expected)
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self.fail(name, expected) from None

    def text_list(
        self, name: str, default: Any = ..., *, expected: str = "a list of strings"
    ) -> tuple[str, ...]:
        value = self.get(name, list, default, expected=expected)
        if not all(isinstance(item, str) for item in value):
            raise self.fail(name, expected)
        return tuple(value)

    def path(
        self, name: str, default: Any = ..., *, must_exist: bool = False, what: str = "file"
    ) -> Path | None:
        value = self.text(name, default, expected="a path (relative to the config file)")
        if not value:
            return None
        path = (self.base / value).resolve()
        if must_exist and not path.exists():
            raise ConfigError(f"{self.key(name)}: {what} {path} does not exist.")
        return path
