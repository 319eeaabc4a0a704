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


def field_name(key: str) -> str:
    """The field a key addresses: ``event/event_date`` and ``event-event_date`` -> ``event_date``."""
    return _SEGMENT.split(key)[-1]


def _walk(data: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, Mapping) and not key.startswith("_"):
            yield from _walk(value)  # an ODK group object
        else:
            yield key, value


def find_answers(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Answers of ``names`` in ``data``; unanswered fields are absent. The first non-empty wins."""
    wanted = set(names)
    found: dict[str, Any] = {}
    for key, value in _walk(data):
        name = field_name(key)
        if name in wanted and name not in found and value is not None and value != "":
            found[name] = value
    return found


def without_fields(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with every key addressing one of ``names`` removed, at any depth."""
    drop = set(names)

    def clean(node: Mapping[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(key, str) and field_name(key) in drop:
                continue
            if isinstance(value, Mapping):
                kept[key] = clean(value)
            elif isinstance(value, list):
                kept[key] = [clean(item) if isinstance(item, Mapping) else item for item in value]
            else:
                kept[key] = value
        return kept

    return clean(data)
