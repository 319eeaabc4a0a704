"""The seeded generator: determinism, Kobo's data-API shape, and the scenario's designed features."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from central_shape import INTEGER_FIELDS, to_central
from kobo_tip import indicator as ind
from kobo_tip import synthetic
from kobo_tip.answers import find_answers
from kobo_tip.config import (
    load_locations,
    load_referral_directory,
    load_roster,
    write_locations,
    write_roster,
)
from kobo_tip.person_key import person_key

REPO = Path(__file__).resolve().parents[1]
START, END, AS_OF = dt.date(2024, 10, 1), dt.date(2027, 9, 30), dt.date(2026, 11, 28)
SECRET = b"synthetic-test-secret"
N = 3000

KOBO_SYSTEM_KEYS = {
    "_id",
    "_uuid",
    "formhub/uuid",
    "__version__",
    "_xform_id_string",
    "_submission_time",
    "_submitted_by",
    "_status",
    "_geolocation",
    "_validation_status",
    "_attachments",
    "meta/instanceID",
    "meta/rootUuid",
}
NAIVE_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+07:00$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def roster() -> list[Any]:
    return synthetic.generate_roster(30, seed=5, project_start=START)


@pytest.fixture(scope="module")
def locations() -> tuple[Any, ...]:
    return load_locations(REPO / "forms" / "locations.csv")


@pytest.fixture(scope="module")
def options(roster: list[Any], locations: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "seed": 5,
        "roster": roster,
        "locations": locations,
        "start_date": START,
        "end_date": END,
        "as_of": AS_OF,
        "referral_orgs": [
            org.id for org in load_referral_directory(REPO / "forms" / "referral_directory.csv")
        ],
    }


@pytest.fixture(scope="module")
def subs(options: dict[str, Any]) -> list[dict[str, Any]]:
    return synthetic.generate_submissions(N, **options)


def answer(sub: dict[str, Any], field: str) -> Any:
    return sub.get(synthetic.FIELD_PATHS[field])


def is_malformed(sub: dict[str, Any], field: str) -> bool:
    return answer(sub, field) == synthetic.MALFORMED_VALUES.get(field)


# --- roster ---------------------------------------------------------------------------------


def test_roster_is_seeded_and_covers_every_type(roster: list[Any]) -> None:
    assert synthetic.generate_roster(30, seed=5, project_start=START) == roster
    assert synthetic.generate_roster(30, seed=6, project_start=START) != roster
    assert len(roster) == 30
    assert {row.type for row in roster} == set(ind.CHOICES["stakeholder_type"])
    assert len({row.id for row in roster}) == 30
    assert len({row.name for row in roster}) == 30
    untrained = [row for row in roster if row.trained_on is None]
    assert 1 <= len(untrained) <= 5
    trained = [row.trained_on for row in roster if row.trained_on]
    assert all(START <= day < START + dt.timedelta(days=365) for day in trained)
    assert max(trained) - min(trained) > dt.timedelta(days=180)  # spread over the year


def test_a_long_roster_still_has_unique_names_and_ids() -> None:
    roster = synthetic.generate_roster(300, seed=1)
    assert len({row.name for row in roster}) == len({row.id for row in roster}) == 300


def test_roster_csv_reads_back_through_the_config_loader(roster: list[Any], tmp_path: Path) -> None:
    path = write_roster(roster, tmp_path / "forms" / "stakeholders.csv")
    assert list(load_roster(path)) == roster


def test_roster_needs_room_for_every_type() -> None:
    with pytest.raises(ValueError, match="every type"):
        synthetic.generate_roster(6, seed=1)


def test_locations_csv_reads_back(locations: tuple[Any, ...], tmp_path: Path) -> None:
    path = write_locations(locations, tmp_path / "locations.csv")
    assert load_locations(path) == locations


# --- determinism and shape ------------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data(
    options: dict[str, Any], subs: list[dict[str, Any]]
) -> None:
    assert synthetic.generate_submissions(N, **options) == subs
    other = synthetic.generate_submissions(N, **{**options, "seed": 6})
    assert [s["_uuid"] for s in other] != [s["_uuid"] for s in subs]
    assert list(synthetic.Scenario(200, **options).submissions()) == synthetic.generate_submissions(
        200, **options
    )


def test_same_data_in_another_process_with_another_hash_seed(options: dict[str, Any]) -> None:
    script = (
        "import datetime as dt, json, sys\nfrom pathlib import Path\n"
        "from kobo_tip import synthetic\n"
        "from kobo_tip.config import load_locations\n"
        "start, end, as_of = (dt.date.fromisoformat(d) for d in sys.argv[2:5])\n"
        "roster = synthetic.generate_roster(30, seed=5, project_start=start)\n"
        "rows = synthetic.generate_submissions(200, seed=5, roster=roster,"
        " locations=load_locations(Path(sys.argv[1])), start_date=start, end_date=end, as_of=as_of)\n"
        "print(json.dumps(rows))\n"
    )
    args = [str(REPO / "forms" / "locations.csv"), START.isoformat(), END.isoformat(), AS_OF.isoformat()]
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    here = synthetic.generate_submissions(200, **{**options, "referral_orgs": ()})
    assert json.loads(done.stdout) == json.loads(json.dumps(here))


def test_exactly_n_records_in_id_and_submission_time_order(
    subs: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    assert len(subs) == N
    ids = [s["_id"] for s in subs]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == N
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))  # server-wide ids leave gaps
    times = [s["_submission_time"] for s in subs]
    assert times == sorted(times)
    assert synthetic.generate_submissions(0, **options) == []


def test_every_key_is_a_form_path_or_kobo_metadata(subs: list[dict[str, Any]]) -> None:
    allowed = KOBO_SYSTEM_KEYS | set(synthetic.FIELD_PATHS.values()) | set(synthetic.META_FIELDS)
    seen = set()
    for sub in subs:
        assert set(sub) <= allowed, set(sub) - allowed
        seen |= set(sub)
    # The generator exercises every group path of the form, ethnicity aside (not configured).
    expected = allowed - {synthetic.FIELD_PATHS[ind.ETHNICITY]}
    assert seen == expected


def test_system_fields_have_kobo_types_and_formats(subs: list[dict[str, Any]], roster: list[Any]) -> None:
    usernames = {row.id for row in roster}
    for sub in subs:
        assert UUID.match(sub["_uuid"])
        assert sub["meta/instanceID"] == "uuid:" + sub["_uuid"] == sub["meta/rootUuid"]
        assert NAIVE_UTC.match(sub["_submission_time"])
        assert LOCAL_TIME.match(sub["start"]) and LOCAL_TIME.match(sub["end"])
        assert sub["start"] <= sub["end"] and sub["today"] == sub["start"][:10]
        assert sub["_submission_time"] < AS_OF.isoformat()
        assert sub["_geolocation"] == [None, None] and sub["_attachments"] == []
        status = sub["_validation_status"]
        if status:
            assert set(status) == {"timestamp", "uid", "by_whom", "label"}
            assert isinstance(status["timestamp"], int) and status["uid"] in ind.KOBO_REVIEW_STATUS
        if sub["_submitted_by"] is not None:
            assert sub["_submitted_by"] == sub["username"] and sub["username"].rsplit("_", 1)[0] in usernames
    assert len({s["_xform_id_string"] for s in subs}) == 1
    assert len({s["formhub/uuid"] for s in subs}) == 1
    assert len({(s["__version__"], s[ind.FORM_VERSION]) for s in subs}) == 2


def test_every_answer_is_a_string_and_a_valid_choice(
    subs: list[dict[str, Any]], roster: list[Any], locations: tuple[Any, ...], options: dict[str, Any]
) -> None:
    lists = {
        "stakeholder": {row.id for row in roster} | {ind.NOT_LISTED},
        "referral_org": {*options["referral_orgs"], ind.NOT_LISTED},
        "admin1": {loc.code for loc in locations if loc.level == 1},
        "admin2": {loc.code for loc in locations if loc.level == 2},
        "country": {"th", "mm", "kh", "la", "vn", "my", ind.STATELESS, ind.UNKNOWN},
        **{name: set(choices) for name, choices in ind.CHOICES.items()},
    }
    for sub in subs:
        for field, path in synthetic.FIELD_PATHS.items():
            if path not in sub:
                continue
            value = sub[path]
            assert isinstance(value, str) and value == value.strip() and value, (field, value)
            if field not in ind.FIELD_LIST or is_malformed(sub, field):
                continue
            names = value.split(" ") if field in ind.SELECT_MULTIPLE_FIELDS else [value]
            assert set(names) <= lists[ind.FIELD_LIST[field]], (field, value)
            assert len(names) == len(set(names))


def test_answers_follow_the_forms_relevance(subs: list[dict[str, Any]], roster: list[Any]) -> None:
    types = {row.id: row.type for row in roster}
    person_paths = [p for p in synthetic.FIELD_PATHS.values() if p.startswith(ind.GROUP_PERSON + "/")]
    for sub in subs:
        consent = answer(sub, ind.CONSENT)
        assert consent in ("yes", "no")
        if consent == "no":
            assert not any(path in sub for path in person_paths)
        else:
            for field in (ind.UIC_GIVEN, ind.UIC_MOTHER, ind.BIRTH_YEAR, ind.GENDER, ind.COUNTRY_ORIGIN):
                assert answer(sub, field)
        referred = "referred" in answer(sub, ind.ACTION).split()
        assert (answer(sub, ind.SERVICES) is not None) == referred
        if answer(sub, ind.REFERRAL_OUTCOME) is not None:
            assert referred
        categories = answer(sub, ind.PERSON_CATEGORY).split()
        assert (answer(sub, ind.GBV_TYPE) is not None) == ("gbv" in categories)
        assert (answer(sub, ind.EXPLOITATION_TYPE) is not None) == any(c != "gbv" for c in categories)
        age = answer(sub, ind.AGE_YEARS)
        if age and age.isdigit() and int(age) < 5:
            assert answer(sub, ind.WG_FIELDS[0]) is None
        sid = answer(sub, ind.STAKEHOLDER_ID)
        if sid != ind.NOT_LISTED:
            assert answer(sub, ind.STAKEHOLDER_TYPE) == types[sid]
        if answer(sub, ind.IDENTIFICATION_COUNTRY) == "th":
            assert answer(sub, ind.LOCATION_ADMIN1)
        else:
            assert answer(sub, ind.LOCATION_ADMIN1) is None
        admin2 = answer(sub, ind.LOCATION_ADMIN2)
        if admin2:
            assert admin2.startswith(answer(sub, ind.LOCATION_ADMIN1) + "-")


def test_dates_fall_in_the_window_and_before_the_submission(subs: list[dict[str, Any]]) -> None:
    months = Counter()
    for sub in subs:
        if is_malformed(sub, ind.EVENT_DATE):
            continue
        day = dt.date.fromisoformat(answer(sub, ind.EVENT_DATE))
        assert START <= day < AS_OF
        assert day.isoformat() <= sub["today"] and day.isoformat() <= sub["_submission_time"][:10]
        months[day.strftime("%Y-%m")] += 1
    # Events are spread over the whole window: every month from start to the last one has some.
    assert len(months) == 26  # Oct 2024 .. Nov 2026


# --- the designed features ------------------------------------------------------------------


def keys(subs: list[dict[str, Any]]) -> dict[int, Any]:
    return {sub["_id"]: person_key(sub, str(sub["_id"]), SECRET) for sub in subs}


def test_people_are_seen_by_several_stakeholders_with_varied_spelling(subs: list[dict[str, Any]]) -> None:
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sub in subs:
        key = person_key(sub, str(sub["_id"]), SECRET)
        if key.linkable:
            by_key[key.key].append(sub)
    repeated = [events for events in by_key.values() if len(events) > 1]
    assert len(repeated) > N // 20
    several_stakeholders = [e for e in repeated if len({answer(s, ind.STAKEHOLDER_ID) for s in e}) > 1]
    assert len(several_stakeholders) > len(repeated) // 2
    spelled_differently = [e for e in repeated if len({answer(s, ind.UIC_GIVEN) for s in e}) > 1]
    assert spelled_differently, "no person's UIC letters were written in another case or without accents"
    # Identified first, referred later, by another stakeholder type.
    border_then_ngo = [
        e
        for e in repeated
        if "identified" in answer(e[0], ind.ACTION)
        and any(
            answer(s, ind.ACTION) == "referred"
            and answer(s, ind.EVENT_DATE) > answer(e[0], ind.EVENT_DATE)
            and answer(s, ind.STAKEHOLDER_TYPE) == "ngo_partner"
            for s in e[1:]
        )
    ]
    assert border_then_ngo


def test_consent_case_refs_and_people_look_plausible(subs: list[dict[str, Any]]) -> None:
    no_consent = [s for s in subs if answer(s, ind.CONSENT) == "no"]
    assert 0.05 * N < len(no_consent) < 0.2 * N
    assert any(answer(s, ind.CASE_REF) for s in no_consent)
    assert any(answer(s, ind.CASE_REF) is None for s in no_consent)
    genders = Counter(answer(s, ind.GENDER) for s in subs if answer(s, ind.CONSENT) == "yes")
    assert genders["female"] > genders["male"] > genders["non_binary_other"] > 0
    ages = [int(a) for s in subs if (a := answer(s, ind.AGE_YEARS)) and a.isdigit()]
    assert sum(a < 18 for a in ages) > 0.1 * len(ages)
    assert sum(a >= 60 for a in ages) > 0
    origins = {answer(s, ind.COUNTRY_ORIGIN) for s in subs}
    assert {"mm", "kh", "la", "th", "vn", ind.STATELESS, ind.UNKNOWN} <= origins
    for s in subs:
        age, year = answer(s, ind.AGE_YEARS), answer(s, ind.BIRTH_YEAR)
        if age and age.isdigit() and year:
            assert 0 <= int(answer(s, ind.EVENT_DATE)[:4]) - int(year) - int(age) <= 1 or is_malformed(
                s, ind.EVENT_DATE
            )


def test_stakeholders_reviews_and_late_entries(subs: list[dict[str, Any]], roster: list[Any]) -> None:
    untrained = {row.id for row in roster if row.trained_on is None}
    sids = Counter(answer(s, ind.STAKEHOLDER_ID) for s in subs)
    assert sids[ind.NOT_LISTED] > 0
    assert any(sids[sid] for sid in untrained)
    statuses = Counter(s["_validation_status"].get("uid", "") for s in subs)
    assert statuses[""] > N // 2
    assert all(statuses[uid] > 0 for uid in ind.KOBO_REVIEW_STATUS)
    late = [
        s
        for s in subs
        if not is_malformed(s, ind.EVENT_DATE)
        and dt.date.fromisoformat(s["_submission_time"][:10])
        - dt.date.fromisoformat(answer(s, ind.EVENT_DATE))
        > dt.timedelta(days=60)
    ]
    assert 0.01 * N < len(late) < 0.1 * N


def test_a_few_malformed_values_of_each_kind(subs: list[dict[str, Any]], options: dict[str, Any]) -> None:
    found = Counter(field for s in subs for field in synthetic.MALFORMED_VALUES if is_malformed(s, field))
    assert set(found) == set(synthetic.MALFORMED_VALUES)
    assert sum(found.values()) == max(3, N * 3 // 1000)
    clean = synthetic.generate_submissions(300, **{**options, "malformed": 0})
    assert not any(is_malformed(s, f) for s in clean for f in synthetic.MALFORMED_VALUES)


def test_bad_arguments_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="roster"):
        synthetic.generate_submissions(10, **{**options, "roster": []})
    with pytest.raises(ValueError, match="no day"):
        synthetic.generate_submissions(10, **{**options, "as_of": START})


# --- edits, revisions, Central shape, export file ---------------------------------------------


def test_edit_keeps_identity_and_replaces_the_version(subs: list[dict[str, Any]]) -> None:
    original = next(s for s in subs if answer(s, ind.AGE_ESTIMATED))
    edited = synthetic.edit_submission(original, {ind.AGE_YEARS: 41, ind.AGE_ESTIMATED: None}, seed=1)
    assert edited["_id"] == original["_id"]
    assert edited["_submission_time"] == original["_submission_time"]
    assert edited["meta/rootUuid"] == original["meta/rootUuid"]
    assert edited["_uuid"] != original["_uuid"] and UUID.match(edited["_uuid"])
    assert edited["meta/instanceID"] == "uuid:" + edited["_uuid"]
    assert edited["meta/deprecatedID"] == original["meta/instanceID"]
    assert answer(edited, ind.AGE_YEARS) == "41"
    assert answer(edited, ind.AGE_ESTIMATED) is None and answer(original, ind.AGE_ESTIMATED)
    assert synthetic.edit_submission(original, {ind.AGE_YEARS: 41}, seed=1)["_uuid"] == edited["_uuid"]
    twice = synthetic.edit_submission(edited, {"event/case_ref": "X-1"}, seed=1)
    assert twice["meta/deprecatedID"] == edited["meta/instanceID"] and twice["event/case_ref"] == "X-1"


def test_revision_edits_deletes_and_reviews(subs: list[dict[str, Any]]) -> None:
    before = subs[:1000]
    revision = synthetic.revise_submissions(before, seed=3)
    assert revision == synthetic.revise_submissions(before, seed=3)
    after = {s["_id"]: s for s in revision.submissions}
    old = {s["_id"]: s for s in before}
    assert set(revision.deleted) and not set(revision.deleted) & set(after)
    assert len(after) == len(before) - len(revision.deleted)
    assert [s["_id"] for s in revision.submissions] == sorted(after)
    for sid in revision.edited:
        assert after[sid]["meta/deprecatedID"] == old[sid]["meta/instanceID"]
        assert after[sid]["meta/rootUuid"] == old[sid]["meta/rootUuid"]
    for sid in revision.reviewed:
        assert after[sid]["_uuid"] == old[sid]["_uuid"]
        assert after[sid]["_validation_status"]["uid"] in ind.KOBO_REVIEW_STATUS
    moved = [
        sid
        for sid in revision.edited
        if answer(after[sid], ind.EVENT_DATE) < answer(old[sid], ind.EVENT_DATE)
    ]
    assert moved, "no edit moved an event earlier"
    untouched = set(after) - set(revision.edited) - set(revision.reviewed)
    assert all(after[sid] == old[sid] for sid in untouched)
    malformed_before = sum(any(is_malformed(s, f) for f in synthetic.MALFORMED_VALUES) for s in before)
    malformed_after = sum(
        any(is_malformed(s, f) for f in synthetic.MALFORMED_VALUES) for s in revision.submissions
    )
    assert malformed_after == malformed_before // 2


def test_central_shape_holds_the_same_answers(subs: list[dict[str, Any]]) -> None:
    names = list(synthetic.FIELD_PATHS)
    edited = synthetic.edit_submission(subs[0], {ind.CASE_REF: "C-9"}, seed=2)
    for sub in [*subs[:300], edited]:
        row = to_central(sub)
        assert json.loads(json.dumps(row)) == row
        assert row["__id"] == sub["meta/rootUuid"]
        assert row["meta"] == {"instanceID": sub["meta/instanceID"]}
        assert not any(key.startswith("_") and key not in ("__id", "__system") for key in row)
        assert all("/" not in key for key in row)
        system = row["__system"]
        assert system["submissionDate"] == sub["_submission_time"] + ".000Z"
        assert system["updatedAt"] is None
        assert system["formVersion"] == sub[ind.FORM_VERSION]
        uid = sub["_validation_status"].get("uid")
        expected = {
            "validation_status_approved": "approved",
            "validation_status_not_approved": "rejected",
            "validation_status_on_hold": "hasIssues",
        }.get(uid, "edited" if "meta/deprecatedID" in sub else None)
        assert system["reviewState"] == expected
        if answer(sub, ind.WG_FIELDS[0]):
            assert row[ind.GROUP_PERSON][ind.GROUP_WG] == {f: answer(sub, f) for f in ind.WG_FIELDS}
        kobo, central = find_answers(sub, names), find_answers(row, names)
        assert set(kobo) == set(central)
        for field, value in kobo.items():
            if field in INTEGER_FIELDS and value.isdigit():
                assert central[field] == int(value)
            else:
                assert central[field] == value
        assert person_key(sub, "1", SECRET) == person_key(row, "1", SECRET)
    assert to_central(edited)["__system"]["edits"] == 1


def test_export_file_is_a_kobo_page(subs: list[dict[str, Any]], tmp_path: Path) -> None:
    path = synthetic.write_export(subs[:50], tmp_path / "data" / "export.json")
    page = json.loads(path.read_text(encoding="utf-8"))
    assert page == {"count": 50, "next": None, "previous": None, "results": subs[:50]}


def test_the_intake_answers_follow_the_forms_relevance(subs: list[dict[str, Any]]) -> None:
    referral_paths = [
        synthetic.FIELD_PATHS[f] for f in (ind.REFERRAL_ORG, ind.REFERRAL_DATE, ind.CONSENT_TO_SHARE)
    ]
    for sub in subs:
        assert answer(sub, ind.IMMEDIATE_DANGER) in ind.CHOICES["yes_no_unknown"]
        assert (answer(sub, ind.CONSENT_BY) is not None) is (answer(sub, ind.CONSENT) == "yes")
        referred = "referred" in (answer(sub, ind.ACTION) or "")
        assert all((path in sub) is referred for path in referral_paths), sub
        if referred and not is_malformed(sub, ind.EVENT_DATE):
            assert answer(sub, ind.REFERRAL_DATE) >= answer(sub, ind.EVENT_DATE)
            follow_up = answer(sub, ind.FOLLOW_UP_DATE)
            assert follow_up is None or follow_up > answer(sub, ind.EVENT_DATE)
    children = [sub for sub in subs if answer(sub, ind.CONSENT_BY) not in (None, "person")]
    assert children and all(
        int(answer(sub, ind.AGE_YEARS)) < 18 for sub in children if not is_malformed(sub, ind.AGE_YEARS)
    )
