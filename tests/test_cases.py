"""Stored submissions -> typed case records and data-quality findings (never an exception)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kobo_tip import indicator as ind
from kobo_tip.cases import READ_FIELDS, build_cases, choice_bit
from kobo_tip.config import Settings, load_settings
from kobo_tip.counting import count_indicator


@pytest.fixture
def project(example_project: Path) -> Settings:
    return load_settings(example_project)


def row(sid: str, data: Any, **meta: Any) -> SimpleNamespace:
    fields = {
        "submission_id": sid,
        "version_id": f"uuid-{sid}",
        "review_status": "unreviewed",
        "submitted_at": "2025-11-10T08:30:00",
        "form_version": "1",
        "person_key": f"key-{sid}",
        "key_basis": "uic",
        "key_reason": "",
        "deleted": False,
        "data": data,
    }
    return SimpleNamespace(**(fields | meta))


KOBO = {
    "intro/consent": "yes",
    "event/event_date": "2025-11-10",
    "event/action": "identified referred",
    "event/stakeholder_type": "border_control",
    "event/stakeholder_id": "bc_maesot",
    "event/identification_country": "th",
    "event/location_admin1": "TH-63",
    "event/person_category": "trafficking_presumed gbv",
    "event/gbv_type": "rape",
    "person/birth_year": "1990",
    "person/gender": "female",
    "person/age_years": "35",
    "person/country_origin": "mm",
    "person/wg/wg_seeing": "no_difficulty",
    "referral/services": "shelter legal_aid",
}


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """The same answers as ODK Central JSON: nested group objects, integers as numbers."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *groups, name = key.split("/")
        node = out
        for group in groups:
            node = node.setdefault(group, {})
        node[name] = int(value) if name in (ind.AGE_YEARS, ind.BIRTH_YEAR) else value
    return out


def test_every_key_style_gives_the_same_typed_row(project):
    styles = [
        KOBO,
        nested(KOBO),
        {key.split("/")[-1]: value for key, value in KOBO.items()},
        {key.replace("/", "-"): value for key, value in KOBO.items()},
    ]
    cases = build_cases([row(str(i), data) for i, data in enumerate(styles)], project)
    assert cases.findings.empty
    frame = cases.frame.drop(columns=["submission_id", "id_number", "person_key"])
    for i in range(1, len(styles)):
        assert frame.iloc[i].equals(frame.iloc[0])
    first = cases.frame.iloc[0]
    assert first.event_date == pd.Timestamp("2025-11-10")
    assert first.submitted_at == pd.Timestamp("2025-11-10T08:30:00", tz="UTC")
    assert (first.identified, first.referred) == (True, True)
    assert first.person_category == choice_bit("person_category", "trafficking_presumed") | choice_bit(
        "person_category", "gbv"
    )
    assert first.services == choice_bit("service", "shelter") | choice_bit("service", "legal_aid")
    assert (first.age_years, first.birth_year, first.gender, first.country_origin) == (
        35,
        1990,
        "female",
        "mm",
    )
    assert (first.stakeholder_id, first.location_admin1, first.gbv_type) == ("bc_maesot", "TH-63", "rape")
    assert first.disability == "unknown"  # only one of six answers


def test_the_first_non_empty_key_of_a_field_wins_in_every_layout(project):
    layouts = [
        {"event/event_date": "2025-11-10"},
        {"event_date": "2025-11-11"},
        {"event/event_date": "", "event_date": "2025-11-12"},
        {"event_date": "2025-11-13", "event/event_date": "2025-11-14"},
        {"event": {"event_date": "2025-11-15"}, "event_date": "2025-11-16"},
        {"event/event_date": "2025-11-17"},
    ]
    frame = build_cases([row(str(i), data) for i, data in enumerate(layouts)], project).frame
    assert [day.day for day in frame.event_date] == [10, 11, 12, 13, 15, 17]


def test_typed_columns(project):
    frame = build_cases([row("12", KOBO), row("uuid:abc", KOBO)], project).frame
    assert str(frame.event_date.dtype).startswith("datetime64")
    assert str(frame.submitted_at.dt.tz) == "UTC"
    assert frame.age_years.dtype == "float64"
    assert frame.id_number.iloc[0] == 12 and math.isnan(frame.id_number.iloc[1])
    for column in ("gender", "country_origin", "stakeholder_type", "review_status", "person_key", "consent"):
        assert frame[column].dtype == "category", column
    assert list(frame.gender.cat.categories) == list(ind.CHOICES["gender"])


def findings_of(project: Settings, data: Any, **meta: Any) -> list[tuple[str, str, str]]:
    cases = build_cases([row("7", data, **meta)], project)
    return [(f.rule, f.field, f.detail) for f in cases.findings.itertuples()]


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"person/age_years": "thirty"}, "age_years", "'thirty' is not a whole number"),
        ({"person/age_years": "130"}, "age_years", "130 is outside 0..120"),
        ({"person/age_years": 12.5}, "age_years", "12.5 is not a whole number"),
        ({"person/age_years": "--5"}, "age_years", "'--5' is not a whole number"),
        ({"person/age_years": "²"}, "age_years", "'²' is not a whole number"),
        (
            {"event/event_date": "２０２６-01-05"},
            "event_date",
            "'２０２６-01-05' is not a date written YYYY-MM-DD",
        ),
        ({"event/event_date": "2026-13-45"}, "event_date", "'2026-13-45' is not a date written YYYY-MM-DD"),
        ({"event/event_date": "10/11/2025"}, "event_date", "'10/11/2025' is not a date written YYYY-MM-DD"),
        ({"person/gender": "woman"}, "gender", "unknown gender choice 'woman'"),
        ({"person/gender": ["female"]}, "gender", "['female'] is not a choice name"),
        ({"person/gender": {"x": "female"}}, "gender", "{'x': 'female'} is not a choice name"),
        ({"event/action": "identified found"}, "action", "unknown choice(s) 'found'"),
        ({"event/action": 3}, "action", "3 is not a space-separated list of choice names"),
        ({"event/location_admin1": "TH-99"}, "location_admin1", "unknown admin1 code 'TH-99'"),
        ({"person/country_origin": "xx"}, "country_origin", "unknown country code 'xx'"),
        ({"event/stakeholder_id": ["bc_maesot"]}, "stakeholder_id", "['bc_maesot'] is not a choice name"),
        ({"event/stakeholder_id": "bc_gone"}, "stakeholder_id", "unknown stakeholder id 'bc_gone'"),
        ({"person/birth_year": True}, "birth_year", "True is not a whole number"),
    ],
)
def test_malformed_values_are_findings(project, change, field, detail):
    assert findings_of(project, KOBO | change) == [("malformed", field, detail)]


def test_malformed_values_become_missing_but_keep_the_rest(project):
    cases = build_cases([row("1", KOBO | {"person/age_years": "x", "event/action": "referred zzz"})], project)
    first = cases.frame.iloc[0]
    assert math.isnan(first.age_years)
    assert (first.identified, first.referred, first.gender) == (False, True, "female")


def test_structural_problems(project):
    assert findings_of(project, {}) == [("malformed", "data", "the submission has no answers")]
    assert findings_of(project, ["not", "a", "dict"]) == [
        ("malformed", "data", "['not', 'a', 'dict'] is not an object")
    ]
    no_event = {key: value for key, value in KOBO.items() if not key.startswith("event/")}
    assert findings_of(project, no_event) == [
        ("malformed", "event", "group 'event' is missing: no answers in it")
    ]
    no_person = {key: value for key, value in KOBO.items() if not key.startswith("person/")}
    assert findings_of(project, no_person) == [
        ("malformed", "person", "group 'person' is missing: no answers in it")
    ]
    without_consent = no_person | {"intro/consent": "no"}
    assert findings_of(project, without_consent) == []  # the person group is not shown then


def test_meta_problems_and_not_linkable(project):
    found = findings_of(
        project,
        KOBO,
        submitted_at="yesterday",
        review_status="pending",
        key_basis="case_ref",
        key_reason="no consent recorded",
    )
    assert found == [
        ("not_linkable", "person_key", "no consent recorded"),
        ("malformed", "submitted_at", "'yesterday' is not a UTC time"),
        ("malformed", "review_status", "unknown review status 'pending'"),
    ]
    frame = build_cases([row("1", KOBO, review_status="pending")], project).frame
    assert frame.review_status.iloc[0] == "unreviewed"


def test_long_values_are_cut_short_in_details(project):
    (finding,) = findings_of(project, KOBO | {"person/gender": "x" * 500})
    assert len(finding[2]) < 100 and finding[2].endswith("...")


def test_rows_keep_their_order_and_findings_their_row(project):
    rows = [row(str(i), KOBO | {"person/age_years": str(i)}) for i in range(10)]
    rows[4].data = KOBO | {"person/age_years": "old"}
    cases = build_cases(rows, project)
    assert list(cases.frame.submission_id) == [str(i) for i in range(10)]
    assert list(cases.frame.age_years.fillna(-1)) == [0, 1, 2, 3, -1, 5, 6, 7, 8, 9]
    assert list(cases.findings.submission_id) == ["4"]


# --- fuzzed corpus of broken submissions --------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)
# Values no field can read: containers, booleans, fractions and strings no choice, date or number has.
BROKEN = st.one_of(
    st.lists(NESTED, max_size=3),
    st.dictionaries(st.text(max_size=5), NESTED, max_size=3),
    st.booleans(),
    st.floats().filter(lambda number: not number.is_integer()),
    st.text(max_size=10).map(lambda text: "~" + text),
)
GROUP_OF = {
    field: "person/wg" if field in ind.WG_FIELDS else "person" if key.startswith("person/") else "event"
    for key in KOBO
    for field in [key.split("/")[-1]]
} | {ind.CONSENT: "intro", ind.SERVICES: "referral"}


@st.composite
def broken_submissions(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    # Free text (the organisation of a stakeholder not listed) takes any string: nothing to break.
    readable = [field for field in READ_FIELDS if field != ind.STAKEHOLDER_OTHER_ORG]
    broken_fields = set(draw(st.sets(st.sampled_from(readable), min_size=1, max_size=6)))
    answers = {field: draw(BROKEN) for field in broken_fields}
    style = draw(st.sampled_from(["kobo", "central", "bare"]))
    data: dict[str, Any] = {}
    for field, value in answers.items():
        group = GROUP_OF.get(field, "event")
        if style == "kobo":
            data[f"{group}/{field}"] = value
        elif style == "bare":
            data[field] = value
        else:
            node = data
            for part in group.split("/"):
                node = node.setdefault(part, {})
            node[field] = value
    return data, broken_fields


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(broken_submissions(), min_size=1, max_size=4))
def test_fuzzed_broken_submissions_never_raise_and_name_each_field(project, corpus):
    rows = [row(str(i), data) for i, (data, _) in enumerate(corpus)]
    cases = build_cases(rows, project)
    assert len(cases.frame) == len(rows)
    for i, (_, broken_fields) in enumerate(corpus):
        named = set(cases.findings[cases.findings.submission_id == str(i)].field)
        assert broken_fields <= named, (broken_fields - named, corpus[i])
    result = count_indicator(cases, project, dt.date(2026, 11, 28))
    assert (result.counts.value == 0).all()
