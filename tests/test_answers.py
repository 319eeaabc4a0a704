"""Finding answers by field name: the key-map fast path gives what a walk over every key gives."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kobo_tip.answers import AnswerCodes, SubmissionReader, find_values

FIELDS = ("consent", "action", "gender")
ALSO = ("gender", "uic_given")
DROP = ("uic_given", "_validation_status")
VALUES = st.sampled_from(["", None, "yes", "no", "female", 1, 1.0, True, ["a", "b"], {"o": 1}])
FIELD_KEYS = st.sampled_from(
    [
        *(f"{group}/{field}" for group in ("intro", "event") for field in (*FIELDS, "uic_given")),
        *FIELDS,
        "uic_given",
        "person-gender",
        "person/other",
        "start",
        "_validation_status",
        "_id",
    ]
)


def reference_values(data: dict[Any, Any], names: tuple[str, ...]) -> list[Any]:
    """The contract, written plainly: the first non-empty answer under a key whose last segment
    names the field, at any depth of group objects (keys starting with _ are not groups)."""
    found: dict[str, Any] = {}

    def walk(node: dict[Any, Any]) -> None:
        for key, value in node.items():
            if not isinstance(key, str):
                continue
            name = re.split(r"[/\-]", key)[-1]
            if name in names:
                if name not in found and value is not None and value != "":
                    found[name] = value
            elif isinstance(value, dict) and not key.startswith("_"):
                walk(value)

    walk(data)
    return [found.get(name) for name in names]


@st.composite
def submissions(draw: st.DrawFn) -> dict[Any, Any]:
    data: dict[Any, Any] = draw(st.dictionaries(FIELD_KEYS, VALUES, max_size=8))
    if draw(st.booleans()):  # an ODK group object, sometimes under a key seen plain before
        group = draw(st.sampled_from(["person", "start", "event"]))
        data[group] = draw(st.dictionaries(st.sampled_from([*FIELDS, "uic_given", "x"]), VALUES, max_size=3))
    return data


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), min_size=1, max_size=25))
def test_a_reader_gives_what_a_walk_gives_whatever_came_before(corpus: list[dict[Any, Any]]) -> None:
    reader = SubmissionReader(AnswerCodes(FIELDS), ALSO, DROP)
    expected_codes = AnswerCodes(FIELDS)
    for data in corpus:
        codes, also, kept = reader.read(data)
        assert codes == expected_codes.encode(reference_values(data, FIELDS))
        assert also == reference_values(data, ALSO)
        assert kept == {key: value for key, value in data.items() if re.split(r"[/\-]", key)[-1] not in DROP}
        assert find_values(data, FIELDS) == reference_values(data, FIELDS)
    assert reader.codes.values == expected_codes.values


def test_nothing_to_drop_gives_the_submission_itself() -> None:
    data = {"intro/consent": "yes", "uic_given": "Ma"}
    reader = SubmissionReader(AnswerCodes(FIELDS))
    for _ in range(2):  # the walk, then the known keys
        codes, also, kept = reader.read(data)
        assert (codes, also, kept) == ([1, 0, 0], [], data) and kept is data
