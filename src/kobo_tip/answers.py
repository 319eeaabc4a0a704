"""Find a submission's answers by field name, whatever group path or export style leads there.

Kobo JSON uses ``group/field`` keys, ODK Central nested objects, Kobo CSV ``group/field``
headers, Central CSV ``group-field`` headers; bare ``field`` keys occur too. Field names are
unique in the form and hold neither ``/`` nor ``-``, so the last path segment names the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_SEGMENT = re.compile(r"[/\-]")


_FIELD_NAMES: dict[str, str] = {}  # key -> field name; forms have few distinct keys
_FIELD_NAMES_MAX = 10_000


def field_name(key: str) -> str:
    """The field a key addresses: ``event/event_date`` and ``event-event_date`` -> ``event_date``."""
    name = _FIELD_NAMES.get(key)
    if name is None:
        name = _SEGMENT.split(key)[-1]
        if len(_FIELD_NAMES) < _FIELD_NAMES_MAX:
            _FIELD_NAMES[key] = name
    return name


_PLAIN = frozenset({str, int, float, bool, list, type(None)})  # answer types that are never a group


def _collect(node: Mapping[str, Any], wanted: frozenset[str], found: dict[str, Any]) -> None:
    for key, value in node.items():
        name = _FIELD_NAMES.get(key)  # inlined cache hit: this loop runs for every answer
        if name is None:
            if not isinstance(key, str):
                continue
            name = field_name(key)
        if name in wanted:
            # An object under a field's own name is a malformed answer, not a group: keep it.
            if name not in found and value is not None and value != "":
                found[name] = value
        elif (
            type(value) not in _PLAIN
            and (type(value) is dict or isinstance(value, Mapping))
            and not key.startswith("_")
        ):
            _collect(value, wanted, found)  # an ODK group object


class _KeyMap:
    """For one set of wanted fields: which top-level keys seen so far address which field.

    Submissions of one form reuse a few dozen keys, so once they are known a submission is read
    with one lookup per wanted field instead of a walk over all its keys. Anything unusual (an
    unseen key, a group object, two keys for one field) returns None: the caller walks it all.
    """

    def __init__(self, wanted: frozenset[str]) -> None:
        self.wanted = wanted
        self.known: set[str] = set()
        self.keys_of: dict[str, list[str]] = {}
        self.maybe_groups: list[str] = []  # keys of no wanted field: a group object could be there
        self.shared: list[list[str]] = []  # fields addressed by more than one key
        self.answer_keys: list[str] = []
        self.field_of: dict[str, str] = {}

    def learn(self, data: dict[Any, Any]) -> None:
        for key in data:
            if key in self.known or not isinstance(key, str) or len(self.known) >= _KEYS_MAX:
                continue
            self.known.add(key)
            name = field_name(key)
            if name in self.wanted:
                keys = self.keys_of.setdefault(name, [])
                keys.append(key)
                if len(keys) == 2:
                    self.shared.append(keys)
                self.answer_keys.append(key)
                self.field_of[key] = name
            elif not key.startswith("_"):
                self.maybe_groups.append(key)

    def read(self, data: dict[Any, Any]) -> dict[str, Any] | None:
        if not data.keys() <= self.known or not {type(data.get(key)) for key in self.maybe_groups} <= _PLAIN:
            return None
        if any(sum(key in data for key in keys) > 1 for keys in self.shared):
            return None  # which of two keys comes first decides: leave it to the walk
        return {
            self.field_of[key]: value
            for key in self.answer_keys
            if (value := data.get(key)) is not None and value != ""
        }


_KEYS_MAX = 10_000
_KEY_MAPS: dict[frozenset[str], _KeyMap] = {}
_KEY_MAPS_MAX = 64


def find_answers(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Answers of ``names`` in ``data``; unanswered fields are absent. The first non-empty wins."""
    wanted = names if isinstance(names, frozenset) else frozenset(names)
    key_map = _KEY_MAPS.get(wanted)
    if key_map is None and len(_KEY_MAPS) < _KEY_MAPS_MAX:
        key_map = _KEY_MAPS[wanted] = _KeyMap(wanted)
    if key_map is not None and type(data) is dict:
        quick = key_map.read(data)
        if quick is not None:
            return quick
        key_map.learn(data)
    found: dict[str, Any] = {}
    _collect(data, wanted, found)
    return found


def without_fields(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with every key addressing one of ``names`` removed, at any depth."""
    return _without(data, frozenset(names))


def _without(node: Mapping[str, Any], drop: frozenset[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in node.items():
        name = _FIELD_NAMES.get(key)  # inlined cache hit, as in _collect
        if name is None and isinstance(key, str):
            name = field_name(key)
        if name in drop:
            continue
        kind = type(value)
        if kind in _PLAIN and kind is not list:
            kept[key] = value
        elif kind is list:
            kept[key] = [_without(item, drop) if isinstance(item, Mapping) else item for item in value]
        elif kind is dict or isinstance(value, Mapping):
            kept[key] = _without(value, drop)
        else:
            kept[key] = value
    return kept
