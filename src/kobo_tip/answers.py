"""Find a submission's answers by field name, whatever group path or export style leads there.

Kobo JSON uses ``group/field`` keys, ODK Central nested objects, Kobo CSV ``group/field``
headers, Central CSV ``group-field`` headers, other tools ``group.field`` or ``group:field``; bare
``field`` keys occur too. Field names are unique in the form and hold none of ``/ - . :``, so the
last path segment names the field.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kobo_tip import indicator
from kobo_tip.labels import field_labels

if TYPE_CHECKING:  # sync codes answers without numpy; only the counting read needs it
    import numpy as np

# What separates a group from a field in a key: Kobo ``/``, Central CSV ``-``, other tools ``.``,
# ``:``, ``\\`` or ``|``. Field names hold none of them.
_SEGMENT = re.compile(r"[/\-.:\\|]")
# What a key may end with that names no field: separators, blanks and repeat indexes (``[1]``).
_KEY_TAIL = re.compile(r"(?:\[\d*\]|[\s/\-.:\\|])+$")
# Apostrophes and quotes a keyboard or a word processor puts in for ' (typographic, modifier, prime).
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2018\u2019\u201b\u02bc\u02b9\u2032\u0060\u00b4", "'"))
# No submission of the form nests deeper than this (groups in groups, repeats): a deeper one is
# not read (``NestedTooDeep``), and would otherwise exhaust Python's recursion.
MAX_DEPTH = 32


class NestedTooDeep(ValueError):
    """A submission nests objects deeper than any submission of the form can."""


_FIELD_NAMES: dict[str, str] = {}  # key -> field name; forms have few distinct keys
_FIELD_NAMES_MAX = 10_000
# Folded texts (labels) that name a field although they are not its name: see ``add_field_aliases``.
_ALIASES: dict[str, str] = {}


def fold(text: str, *, case: bool = True) -> str:
    """``text`` as kobo-tip compares names and labels: NFKC (full-width letters, decomposed accents),
    invisible format characters (zero-width spaces, soft hyphens) removed, typographic apostrophes
    as ', case folded (unless ``case`` is False), blanks collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = text.translate(_invisible_and_apostrophes())
        text = unicodedata.normalize("NFKC", text.casefold() if case else text)
    elif case:
        text = text.casefold()
    return " ".join(text.split())


@functools.cache
def _invisible_and_apostrophes() -> dict[int, str | None]:
    """``str.translate``'s table: format characters (Unicode category Cf) removed, apostrophes as '.
    Made on the first text that is not ASCII, from the planes that hold format characters (the
    basic plane, a few scripts' controls, the tags), not from all 1.1 million code points."""
    planes = itertools.chain(
        range(0x10000), range(0x110B0, 0x110D0), range(0x13430, 0x13460), range(0x1BCA0, 0x1BCB0),
        range(0x1D170, 0x1D180), range(0xE0000, 0xE0080),
    )  # fmt: skip
    table: dict[int, str | None] = {code: None for code in planes if unicodedata.category(chr(code)) == "Cf"}
    table.update(_APOSTROPHES)
    return table


def _name_code_labels() -> dict[str, str]:
    """The name-code questions' labels in every shipped language: as keys (an export with labels
    as headers, a hostile push) they name the questions, so whoever drops the questions drops them
    (sync, ``person_key.strip_uic``, the store's migration scrub)."""
    return {label: part for part in indicator.UIC_PARTS for label in field_labels(part)}


def field_name(key: str) -> str:
    """The field a key addresses: ``event/event_date`` and ``event-event_date`` -> ``event_date``.

    Keys are compared folded (``fold``), without what may trail them (separators, blanks, ``[1]``),
    so ``person/UIC_GIVEN ``, ``person\\uic_given[1]`` and ``ｕｉｃ_given`` all name ``uic_given``;
    a key that is, or ends with, an alias (a field's label, ``add_field_aliases``) names its field.
    """
    name = _FIELD_NAMES.get(key)
    if name is None:
        name = _field_name(key)
        if len(_FIELD_NAMES) < _FIELD_NAMES_MAX:
            _FIELD_NAMES[key] = name
    return name


def _field_name(key: str) -> str:
    folded = _KEY_TAIL.sub("", fold(key))
    if _ALIASES:
        found = _ALIASES.get(folded)
        if found is None:
            for boundary in _SEGMENT.finditer(folded):
                found = _ALIASES.get(folded[boundary.end() :].strip())
                if found is not None:
                    break
        if found is not None:
            return found
    return _KEY_TAIL.sub("", _SEGMENT.split(folded)[-1]).strip()


def add_field_aliases(aliases: Mapping[str, str]) -> None:
    """Texts that name a field besides its name, such as the labels of the name-code questions in
    every language (a key spelled so is read, and dropped, as the field). Cached readings of keys
    are forgotten, so every key is read again with them."""
    added = {fold(text): name for text, name in aliases.items() if fold(text)}
    if all(_ALIASES.get(text) == name for text, name in added.items()):
        return
    _ALIASES.update(added)
    _FIELD_NAMES.clear()
    _KEY_MAPS.clear()
    _DOOMED.clear()


_PLAIN = frozenset({str, int, float, bool, list, type(None)})  # answer types that are never a group


def _collect(node: Mapping[str, Any], wanted: frozenset[str], found: dict[str, Any], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise NestedTooDeep(f"nested more than {MAX_DEPTH} objects deep")
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
        elif isinstance(value, Mapping) and not key.startswith("_"):
            _collect(value, wanted, found, depth + 1)  # an ODK group object


class _KeyMap:
    """For one tuple of wanted fields: which top-level keys seen so far address which field.

    Submissions of one form reuse a few dozen keys, so once they are known a submission is read
    with one lookup per wanted field instead of a walk over all its keys. Anything unusual (an
    unseen key, a group object, two keys for one field in one submission) needs the walk.
    Measured gain: ``SubmissionReader.read`` of a Kobo row 6.1 us, against 12.1 us by the walk.
    """

    def __init__(self, names: tuple[str, ...], drop: frozenset[str] = frozenset()) -> None:
        self.names = names
        self.folded = tuple(map(field_name, names))  # as field_name reads keys
        self.position = {name: index for index, name in enumerate(self.folded)}
        self.drop = frozenset(map(field_name, drop))
        self.dropped: set[str] = set()  # the keys seen that address a field of `drop`
        self.known: set[str] = set()
        self.keys: list[Any] = [_NO_KEY] * len(names)  # the first key seen for each field
        self.keys_of: dict[str, list[str]] = {}
        self.maybe_groups: list[str] = []  # keys of no wanted field: a group object could be there
        self.shared: list[tuple[int, list[str]]] = []  # fields addressed by more than one key

    def learn(self, data: Mapping[Any, Any]) -> None:
        for key in data:
            if key in self.known or not isinstance(key, str) or len(self.known) >= _KEYS_MAX:
                continue
            self.known.add(key)
            name = field_name(key)
            if name in self.drop:
                self.dropped.add(key)
            index = self.position.get(name)
            if index is not None:
                keys = self.keys_of.setdefault(name, [])
                keys.append(key)
                if len(keys) == 1:
                    self.keys[index] = key
                elif len(keys) == 2:
                    self.shared.append((index, keys))
            elif not key.startswith("_"):
                self.maybe_groups.append(key)

    def keys_in(self, data: Mapping[Any, Any]) -> list[Any] | None:
        """The key holding each field's answer in ``data`` (one it lacks where unanswered), or None
        when only ``walk`` can tell; ``data``'s keys are then learnt for the next submission."""
        # Set operations over maps: the checks run in C, as this runs for every submission.
        if (
            type(data) is not dict
            or not _PLAIN.issuperset(map(type, map(data.get, self.maybe_groups)))
            or not self.known.issuperset(data)
        ):
            self.learn(data)
            return None
        if not self.shared:
            return self.keys
        keys = self.keys.copy()
        for index, shared in self.shared:
            present = [key for key in shared if key in data]
            if len(present) > 1:
                return None  # which of two keys comes first decides: leave it to the walk
            if present:
                keys[index] = present[0]
        return keys

    def walk(self, data: Mapping[str, Any]) -> list[Any]:
        """The answers of the fields in ``data``, found by walking all of it."""
        found: dict[str, Any] = {}
        _collect(data, frozenset(self.folded), found)
        return [found.get(name) for name in self.folded]


_NO_KEY = object()  # the key of a field not seen yet: never in a submission
_KEYS_MAX = 10_000
_KEY_MAPS: dict[tuple[str, ...], _KeyMap] = {}
_KEY_MAPS_MAX = 64


def _unblank(values: Sequence[Any]) -> list[Any]:
    """A blank answer is no answer."""
    return [None if value == "" else value for value in values] if "" in values else list(values)


def find_values(data: Mapping[str, Any], names: tuple[str, ...]) -> list[Any]:
    """The answers of ``names`` in ``data`` in that order, None where unanswered; the first non-empty wins."""
    key_map = _KEY_MAPS.get(names)
    if key_map is None:
        key_map = _KeyMap(names)
        if len(_KEY_MAPS) >= _KEY_MAPS_MAX:
            return key_map.walk(data)  # no room to remember what it would learn
        _KEY_MAPS[names] = key_map
    keys = key_map.keys_in(data)
    if keys is None:
        return key_map.walk(data)
    return _unblank(list(map(data.get, keys)))


def find_answers(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Answers of ``names`` in ``data``; unanswered fields are absent. The first non-empty wins."""
    order = names if type(names) is tuple else tuple(dict.fromkeys(names))
    found = zip(order, find_values(data, order), strict=True)
    return {name: value for name, value in found if value is not None}


def without_fields(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with every key addressing one of ``names`` removed, at any depth, in
    objects and in lists of them (repeats) alike."""
    return _without(data, frozenset(map(field_name, names)))


def _without(node: Mapping[str, Any], drop: frozenset[str], depth: int = 0) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise NestedTooDeep(f"nested more than {MAX_DEPTH} objects deep")
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
            kept[key] = _without_in_list(value, drop, depth + 1)
        elif kind is dict or isinstance(value, Mapping):
            kept[key] = _without(value, drop, depth + 1)
        else:
            kept[key] = value
    return kept


def _without_in_list(items: list[Any], drop: frozenset[str], depth: int) -> list[Any]:
    if depth > MAX_DEPTH:
        raise NestedTooDeep(f"nested more than {MAX_DEPTH} lists deep")
    return [
        _without(item, drop, depth)
        if isinstance(item, Mapping)
        else _without_in_list(item, drop, depth + 1)
        if type(item) is list
        else item
        for item in items
    ]


def without_top_fields(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A shallow copy of ``data`` without the top-level keys addressing one of ``names``.

    Unlike ``without_fields`` it leaves nested objects alone, and costs little: the keys of a
    form repeat, so only keys never seen before are parsed.
    """
    drop = names if isinstance(names, frozenset) else frozenset(names)
    doomed = _DOOMED.get(drop)
    if doomed is None:
        doomed = _DOOMED[drop] = _DoomedKeys(drop)
    kept = dict(data)
    for key in doomed.of(kept):
        del kept[key]
    return kept


class _DoomedKeys:
    """For one set of fields to drop: which keys seen so far address one of them."""

    def __init__(self, drop: frozenset[str]) -> None:
        self.drop = frozenset(map(field_name, drop))
        self.seen: set[Any] = set()
        self.doomed: set[str] = set()

    def of(self, node: dict[Any, Any]) -> list[Any]:
        """The keys of ``node`` to remove."""
        if not self.seen.issuperset(node):
            unseen = node.keys() - self.seen
            found = [key for key in unseen if isinstance(key, str) and field_name(key) in self.drop]
            if len(self.seen) >= _KEYS_MAX:
                return [key for key in self.doomed if key in node] + found
            self.seen |= unseen
            self.doomed.update(found)
        return [key for key in self.doomed if key in node]


_DOOMED: dict[frozenset[str], _DoomedKeys] = {}
add_field_aliases(_name_code_labels())


def answer_key(value: Any) -> str | bytes:
    """What tells two answers apart: a string itself, anything else its JSON as bytes.

    JSON keeps 1, 1.0 and True apart, and stdlib json spells NaN and Infinity, which orjson cannot.
    """
    if type(value) is str:
        return value
    try:
        return json.dumps(value, sort_keys=True, default=repr).encode()
    except TypeError:  # keys of mixed types cannot be sorted
        return json.dumps(value, default=repr).encode()


_Pick = Callable[[Sequence[Any]], Sequence[Any]]


def _picker(positions: list[int]) -> _Pick:
    """The items at ``positions`` of a sequence, as a tuple, picked in C."""
    if len(positions) > 1:
        return operator.itemgetter(*positions)
    return lambda items: tuple(items[i] for i in positions)


class AnswerCodes:
    """Dictionary encoding of answers: each distinct answer of a field gets a code, 0 is unanswered.

    Forms produce few distinct answers, so a column of small codes plus each field's list of
    values holds every answer without one object per answer (what makes counting fast).
    """

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = tuple(fields)
        self.values: dict[str, list[Any]] = {field: [None] for field in self.fields}
        # Blanks code as 0 (find_values gives None for them; other callers may not).
        self._code_maps: list[dict[Any, int]] = [{None: 0, "": 0} for _ in self.fields]
        self.added: list[tuple[str, int, Any]] = []  # (field, code, value) since the last take_added

    def encode(self, values: Sequence[Any]) -> list[int]:
        """The codes of ``values`` (answers in field order, None unanswered); a new answer gets a new code."""
        known = self.encode_known(values)
        if known is not None:
            return known
        encoded: list[int] = []
        for field, codes, value in zip(self.fields, self._code_maps, values, strict=True):
            key = value if value is None or type(value) is str else answer_key(value)
            code = codes.get(key)
            if code is None:
                field_values = self.values[field]
                code = codes[key] = len(field_values)
                field_values.append(value)
                self.added.append((field, code, value))
            encoded.append(code)
        return encoded

    def encode_known(self, values: Sequence[Any]) -> list[int] | None:
        """The codes of ``values`` if each has one already, else None. Values past the fields are ignored."""
        try:  # known strings and blanks: every lookup in C
            known: list[Any] = list(map(dict.get, self._code_maps, values))
        except TypeError:  # an unhashable answer: answer_key makes its key
            return None
        if None in known:  # a new answer, or one that needs answer_key
            return None
        return known

    @classmethod
    def of_values(cls, fields: Iterable[str], values: Mapping[str, Sequence[Any]]) -> AnswerCodes:
        """The codes whose ``values`` (as the attribute holds them) are given: a copy made elsewhere."""
        codes = cls(fields)
        for field, field_values in values.items():
            for code, value in enumerate(field_values[1:], start=1):
                codes.restore(field, code, value)
        return codes

    def restore(self, field: str, code: int, value: Any) -> None:
        """Take back a code saved earlier; codes of a field come back in order 1, 2, 3..."""
        values = self.values[field]
        if code != len(values):
            raise ValueError(f"answer code {code} of {field} out of order")
        self._code_maps[self.fields.index(field)][answer_key(value)] = code
        values.append(value)

    def take_added(self) -> list[tuple[str, int, Any]]:
        """The codes made since the last call, for the store to save with its batch."""
        added, self.added = self.added, []
        return added


class SubmissionReader:
    """Reads the submissions of one form: the codes of ``codes``' fields, the answers of ``also``, and
    a copy without the top-level keys of ``drop``.

    One look at a submission's keys serves all three; where they are known (most submissions), each
    answer goes from its key to its code in C.
    """

    def __init__(self, codes: AnswerCodes, also: tuple[str, ...] = (), drop: Iterable[str] = ()) -> None:
        names = (*codes.fields, *(name for name in also if name not in codes.fields))
        self.codes = codes
        self._drop = frozenset(drop)
        self._key_map = _KeyMap(names, self._drop)
        self._pick_also = _picker([names.index(name) for name in also])

    def read(self, data: Mapping[str, Any]) -> tuple[list[int], list[Any], Mapping[str, Any]]:
        """``codes.encode(find_values(data, codes.fields))``, ``find_values(data, also)`` and
        ``without_top_fields(data, drop)`` (``data`` itself when nothing is dropped)."""
        key_map = self._key_map
        keys = key_map.keys_in(data)
        kept = data
        if keys is None:
            values = key_map.walk(data)
            if self._drop:
                kept = without_top_fields(data, self._drop)
        else:
            values = list(map(data.get, keys))
            if self._drop:
                kept = dict(data)
                for key in data.keys() & key_map.dropped:  # keys_in found every key of data known
                    del kept[key]
        codes = self.codes.encode_known(values)
        if codes is None:
            codes = self.codes.encode(values[: len(self.codes.fields)])
        return codes, _unblank(self._pick_also(values)), kept


@dataclass(frozen=True)
class AnswerTable:
    """Submissions column by column, as counting reads them: one list or array per column.

    ``codes[field][i]`` is the code of row ``i``'s answer and ``values[field][code]`` the answer
    (``values[field][0]`` is None: unanswered).
    """

    submission_id: list[str]
    review_status: list[str]
    submitted_at: list[str]
    form_version: list[str]
    person_key: list[str]
    key_basis: list[str]
    key_reason: list[str]
    deleted: np.ndarray
    codes: dict[str, np.ndarray]
    values: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.submission_id)
