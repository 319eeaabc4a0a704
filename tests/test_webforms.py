"""The generated form filled in the engines enumerators use: the official ODK Web Forms engine
(@getodk/xforms-engine, on node) and JavaRosa, the engine of ODK Collect and KoboCollect.

``tests/webforms/run.mjs`` drives Web Forms as a browser would; ``tests/javarosa/Driver.java``
drives JavaRosa (from pyxform's ODK Validate jar) as Collect would, with the same protocol: both
set answers and report what the enumerator would see (relevance, requiredness, constraint
violations, choice lists, labels in the chosen language) and the submission XML the engine writes.
Every scenario runs in both engines, on the form built with English first and with Thai first.
The submissions the engines write then go through the pipeline, as ODK Central returns them (the
fake Central) and as a Kobo export holds them (the file source), and are counted as their scenario
says: form, engines and counting cannot drift.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyxform.validators import odk_validate

from conftest import REPO
from fakes.central_server import FakeCentral
from kobo_tip import indicator as ind
from kobo_tip.cod_ab import name_order
from kobo_tip.config import Language, Settings, load_settings
from kobo_tip.form import build_form
from kobo_tip.labels import load_labels
from kobo_tip.report import render_reports
from kobo_tip.report.render import count_store
from kobo_tip.sources.files import FileSource
from kobo_tip.store import open_store
from kobo_tip.sync import run_sync

ENGINE = REPO / "tests" / "webforms"
JAVAROSA_DRIVER = REPO / "tests" / "javarosa" / "Driver.java"
# JavaRosa, with the Jackson the driver reads JSON with, as pyxform ships it for ODK Validate.
VALIDATE_JAR = Path(odk_validate.__file__).parent / "bin" / "ODK_Validate.jar"
ROOT = f"/{ind.FORM_ID}"
P = {name: f"{ROOT}/{group}/{name}" for name, group in ind.FIELD_GROUPS.items()}
AS_OF = dt.date(2026, 11, 28)
THAI = Language(label="Thai (th)", name="Thai", code="th")


def engine_available() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: install Node.js 20.19.3 or later, then run 'make test'.")
    if not (ENGINE / "node_modules" / "@getodk" / "xforms-engine").is_dir():
        pytest.fail(
            f"the ODK Web Forms engine is not installed: run 'npm ci --prefix {ENGINE}' (make test does)."
        )


@pytest.fixture(scope="session")
def javarosa_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Driver.java compiled against the jar (a JDK's javac: a Java runtime alone has none)."""
    if shutil.which("javac") is None:
        pytest.fail(
            "javac is not installed: the JavaRosa tests need a JDK (apt-get install default-jdk-headless)."
        )
    classes = tmp_path_factory.mktemp("javarosa")
    done = subprocess.run(
        ["javac", "-nowarn", "-cp", str(VALIDATE_JAR), "-d", str(classes), str(JAVAROSA_DRIVER)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return classes


@pytest.fixture(scope="module", params=["webforms", "javarosa"])
def engine(request: pytest.FixtureRequest) -> list[str]:
    """The command that runs one engine's driver."""
    if request.param == "webforms":
        engine_available()
        return ["node", str(ENGINE / "run.mjs")]
    classes = request.getfixturevalue("javarosa_classes")
    return ["java", "-cp", f"{VALIDATE_JAR}:{classes}", "Driver"]


def run_in(engine: list[str], form: Path, scenarios: list[list[dict[str, Any]]]) -> dict[str, Any]:
    done = subprocess.run(
        engine,
        input=json.dumps({"form": str(form), "scenarios": scenarios}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(REPO / "config.example.toml")


@pytest.fixture(scope="module", params=["English first", "Thai first"])
def form(
    request: pytest.FixtureRequest, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The example form; and the same with Thai as its first (default) language."""
    if request.param == "Thai first":
        languages = (THAI, *settings.project.languages)
        settings = dataclasses.replace(
            settings, project=dataclasses.replace(settings.project, languages=languages)
        )
    return build_form(settings, out_dir=tmp_path_factory.mktemp("form")).files.xml_path


Runner = Callable[[Path, list[list[dict[str, Any]]]], dict[str, Any]]


@pytest.fixture(scope="module")
def run_engine(engine: list[str]) -> Runner:
    """Runs scenarios on a form in the engine of this module's parameter."""
    return lambda form, scenarios: run_in(engine, form, scenarios)


def setting(path: str, value: str) -> dict[str, str]:
    return {"op": "set", "path": path, "value": value}


def state(path: str) -> dict[str, str]:
    return {"op": "state", "path": path}


def test_the_form_loads_without_a_warning(form: Path, run_engine: Runner) -> None:
    loaded = run_engine(form, [])["load"]
    # JavaRosa 5.1 does not know pyxform's odk:xforms-version attribute: it says so and ignores it.
    warnings = [
        w
        for w in loaded["warnings"] or []
        if "Unrecognized attributes" not in w or "[xforms-version]" not in w
    ]
    assert {**loaded, "warnings": warnings or None} == {"status": "success", "warnings": None, "error": None}


def test_consent_opens_the_person_group_and_referral_the_services(form: Path, run_engine: Runner) -> None:
    scenarios = [
        [state(f"{ROOT}/person"), setting(P["consent"], "no"), state(f"{ROOT}/person")],
        [setting(P["consent"], "yes"), state(f"{ROOT}/person"), state(P["uic_given"])],
        [setting(P["action"], "identified"), state(f"{ROOT}/referral"), state(P["services"])],
        [setting(P["action"], "identified referred"), state(f"{ROOT}/referral"), state(P["services"])],
    ]
    unanswered, consented, identified, referred = run_engine(form, scenarios)["scenarios"]
    assert [s["relevant"] for s in (unanswered[0], unanswered[2])] == [False, False]
    assert consented[1]["relevant"] and consented[2]["required"]
    assert not identified[1]["relevant"]
    assert referred[1]["relevant"] and referred[2]["required"] and not referred[2]["valid"]


# The first two letters, each with its marks: Zö precomposed and with a combining diaeresis; Thai
# with vowel and tone marks and a leading vowel (เม of เมย์); Burmese မြင့် is two letters (မ with
# its medial ြ, then င with two marks); Khmer ក្ម is a letter, the subscript sign, a letter.
# A name of one letter is taken as it is (the key pads it with 9): M, 伟, the Burmese syllable မြ.
UIC_ACCEPTED = ["Ma", "Zö", "Zo\u0308", "ที่นี่", "เม", "สม", "မြင့်", "ក្ម", "ລາ", "Ηλ", "Мы", "ab"]
UIC_ACCEPTED += ["M", "伟", "မြ"]
# Digits of several scripts, punctuation, emoji, spaces; and three letters (Zoë, เมย).
UIC_REFUSED = [
    "๑๒",
    "١٢",
    "१२",
    "12",
    "ab。",
    "😀a",
    "a b",
    "a-b",
    "a.",
    "x" * 13,
    "Zoë",
    "abc",
    "เมย",
]


@pytest.mark.parametrize("field", ["uic_given", "uic_mother"])
def test_the_name_codes_take_letters_with_their_marks_in_any_script_and_nothing_else(
    form: Path, run_engine: Runner, field: str
) -> None:
    values = UIC_ACCEPTED + UIC_REFUSED + ["99", "๙๙"]
    steps = [setting(P["consent"], "yes"), *(setting(P[field], value) for value in values)]
    seen = run_engine(form, [steps])["scenarios"][0][1:]
    verdict = {value: result["valid"] for value, result in zip(values, seen, strict=True)}
    assert all(verdict[v] for v in UIC_ACCEPTED), verdict
    assert not any(verdict[v] for v in UIC_REFUSED), verdict
    assert verdict["99"] is (field == "uic_mother") and verdict["๙๙"] is False, "only ASCII 99 means unknown"


AGES = [  # birth year, age, estimated, valid
    ("2000", "26", "", True),  # event on 2026-03-01: 25 or 26
    ("2000", "25", "", True),
    ("2000", "27", "", True),  # one year of tolerance
    ("2000", "24", "", False),
    ("2000", "90", "", False),
    ("2000", "22", "yes", True),  # estimated: five years
    ("2000", "20", "yes", False),
    ("2000", "121", "", False),
]


def test_age_agrees_with_the_birth_year(form: Path, run_engine: Runner) -> None:
    scenarios = [
        [
            setting(P["consent"], "yes"),
            setting(P["event_date"], "2026-03-01"),
            setting(P["birth_year"], birth_year),
            setting(P["age_estimated"], estimated),
            setting(P["age_years"], age),
        ]
        for birth_year, age, estimated, _ in AGES
    ]
    seen = [steps[-1]["valid"] for steps in run_engine(form, scenarios)["scenarios"]]
    assert seen == [valid for *_, valid in AGES]


def test_immediate_danger_is_asked_first_and_its_instruction_does_not_stop_the_form(
    form: Path, run_engine: Runner
) -> None:
    scenarios = [
        [state(P["immediate_danger"]), state(f"{ROOT}/intro/emergency_referral")],
        [
            setting(P["immediate_danger"], "yes"),
            state(f"{ROOT}/intro/emergency_referral"),
            state(P["consent"]),
            state(P["event_date"]),
        ],
        [setting(P["immediate_danger"], "unknown"), state(f"{ROOT}/intro/emergency_referral")],
    ]
    (asked, hidden), (danger, instruction, consent, event_date), (unknown, not_shown) = run_engine(
        form, scenarios
    )["scenarios"]
    assert asked["relevant"] and asked["required"] and asked["options"] == ["yes", "no", "unknown"]
    assert not hidden["relevant"]
    assert danger["valid"] and instruction["relevant"] and instruction["label"]
    assert consent["relevant"] and event_date["relevant"], "the form goes on after the instruction"
    assert unknown["valid"] and not not_shown["relevant"]


def test_who_consented_is_asked_only_with_consent(form: Path, run_engine: Runner) -> None:
    scenarios = [
        [setting(P["consent"], "no"), state(P["consent_by"])],
        [
            setting(P["consent"], "yes"),
            state(P["consent_by"]),
            setting(P["consent_by"], "guardian_with_assent"),
        ],
    ]
    (_, refused), (_, asked, answered) = run_engine(form, scenarios)["scenarios"]
    assert not refused["relevant"]
    assert asked["relevant"] and asked["required"] and asked["violation"] == "required"
    assert asked["options"] == list(ind.CHOICES["consent_by"])
    assert answered["valid"] and answered["value"] == "guardian_with_assent"


def test_a_referral_asks_organisation_dates_and_consent_to_share(
    form: Path, run_engine: Runner, settings: Settings
) -> None:
    today = dt.date.today()
    event_day = (today - dt.timedelta(days=10)).isoformat()
    steps = [
        setting(P["event_date"], event_day),
        setting(P["action"], "referred"),
        state(P["referral_org"]),
        state(P["consent_to_share"]),
        setting(P["referral_date"], (today - dt.timedelta(days=11)).isoformat()),
        setting(P["referral_date"], (today + dt.timedelta(days=1)).isoformat()),
        setting(P["referral_date"], event_day),
        setting(P["follow_up_date"], (today - dt.timedelta(days=11)).isoformat()),
        setting(P["follow_up_date"], (today + dt.timedelta(days=30)).isoformat()),
    ]
    _, _, org, share, before, future, same_day, follow_before, follow_later = run_engine(form, [steps])[
        "scenarios"
    ][0]
    assert org["options"] == [o.id for o in settings.form.referral_directory] + [ind.NOT_LISTED]
    assert not org["required"]
    assert share["relevant"] and share["required"] and share["violation"] == "required"
    assert (before["violation"], future["violation"]) == ("constraint", "constraint")
    assert same_day["valid"]
    assert follow_before["violation"] == "constraint" and follow_later["valid"]


def test_presumed_and_confirmed_trafficking_exclude_each_other(form: Path, run_engine: Runner) -> None:
    steps = [
        setting(P["person_category"], "trafficking_presumed trafficking_confirmed"),
        setting(P["person_category"], "trafficking_confirmed gbv"),
        setting(P["person_category"], "trafficking_presumed exploitation_other"),
    ]
    both, confirmed, presumed = run_engine(form, [steps])["scenarios"][0]
    assert (both["valid"], both["violation"]) == (False, "constraint")
    assert confirmed["valid"] and presumed["valid"]


def test_a_stakeholder_not_listed_asks_for_the_organisation(form: Path, run_engine: Runner) -> None:
    steps = [
        state(P["stakeholder_other_org"]),
        setting(P["stakeholder_type"], "ngo_partner"),
        setting(P["stakeholder_id"], ind.NOT_LISTED),
        state(P["stakeholder_other_org"]),
        setting(P["stakeholder_other_org"], "x" * 81),
        setting(P["stakeholder_other_org"], "Women's shelter of Mae Sot"),
    ]
    hidden, _, _, asked, too_long, named = run_engine(form, [steps])["scenarios"][0]
    assert not hidden["relevant"]
    assert asked["relevant"] and asked["required"] and asked["violation"] == "required"
    assert too_long["violation"] == "constraint" and named["valid"]


def test_stakeholders_and_locations_cascade(form: Path, run_engine: Runner, settings: Settings) -> None:
    steps = [
        setting(P["stakeholder_type"], "border_control"),
        state(P["stakeholder_id"]),
        state(P["identification_country"]),
        state(P["location_admin1"]),
        setting(P["identification_country"], "la"),
        state(P["location_admin1"]),
    ]
    _, stakeholders, country, admin1, _, elsewhere = run_engine(form, [steps])["scenarios"][0]
    border = [s.id for s in settings.form.roster if s.type == "border_control"]
    assert stakeholders["options"] == [*border, ind.NOT_LISTED]
    assert country["value"] == settings.project.country, "the project country is the default"
    # In the order of their names (the example's locations have English names only), not codes.
    by_name = sorted(settings.form.locations, key=lambda loc: name_order("en")(loc.name))
    thai = [loc.code for loc in by_name if loc.level == 1 and loc.parent == "th"]
    assert admin1["relevant"] and admin1["options"] == thai
    assert not elsewhere["relevant"], "no admin1 list for a country the locations file lacks"


def form_languages(form: Path) -> list[Language]:
    """The languages of a built XForm, its default first."""
    translations = ET.parse(form).getroot().iter("{http://www.w3.org/2002/xforms}translation")
    ordered = sorted(translations, key=lambda t: t.get("default") is None)
    return [Language(label=t.get("lang", ""), name="", code=t.get("lang", "")[-3:-1]) for t in ordered]


def test_every_language_shows_its_own_texts(form: Path, run_engine: Runner) -> None:
    languages = form_languages(form)
    assert len(languages) >= 2
    asked = [P["consent"], P["consent_by"], P["immediate_danger"], P["identification_country"]]
    first = [setting(P["consent"], "yes"), *(state(path) for path in asked)]
    switched = [
        [
            {"op": "language", "label": language.label},
            setting(P["consent"], "yes"),
            *(state(p) for p in asked),
        ]
        for language in languages[1:]
    ]
    ran = run_engine(form, [first, *switched])["scenarios"]
    for language, steps in zip(languages, ran, strict=True):
        labels = load_labels(language)
        if language != languages[0]:
            assert steps.pop(0) == {"language": language.label}
        _, consent, consent_by, danger, country = steps
        assert consent["label"] == labels.field("consent"), language.label
        assert consent["option_labels"] == [labels.choice("yes_no", "yes"), labels.choice("yes_no", "no")]
        assert consent_by["option_labels"] == [
            labels.choice("consent_by", n) for n in ind.CHOICES["consent_by"]
        ]
        assert danger["label"] == labels.field("immediate_danger")
        thailand = country["option_labels"][country["options"].index("th")]
        assert thailand == labels.country("th"), language.label
    # French is translated, and the country names come from each language's catalogue.
    french = next(lang for lang in languages if lang.code == "fr")
    assert (
        load_labels(french).field("consent") != load_labels(languages[0]).field("consent")
        or languages[0] == french
    )


# --- the engine's submissions through the pipeline ------------------------------------------------

STAKEHOLDER = "ngo_hope"  # a roster id of type ngo_partner (forms/stakeholders.csv)
ORGANISATION = "Mekong Outreach Collective"
REFERRAL_ORG = "shelter_tak"  # an id of forms/referral_directory.csv


def event(
    date: str,
    action: str,
    *,
    consent: str = "yes",
    given: str = "Ma",
    year: str = "1990",
    organisation: str = "",
) -> list[dict[str, str]]:
    steps = [
        setting(P["immediate_danger"], "no"),
        setting(P["consent"], consent),
        *([setting(P["consent_by"], "person")] if consent == "yes" else []),
        setting(P["event_date"], date),
        setting(P["action"], action),
        setting(P["stakeholder_type"], "ngo_partner"),
        setting(P["stakeholder_id"], ind.NOT_LISTED if organisation else STAKEHOLDER),
        *([setting(P["stakeholder_other_org"], organisation)] if organisation else []),
        setting(P["location_admin1"], "TH-10"),
        setting(P["person_category"], "trafficking_presumed"),
        setting(P["exploitation_type"], "forced_labour"),
    ]
    if consent == "yes":
        steps += [
            setting(P["uic_given"], given),
            setting(P["uic_mother"], "Na"),
            setting(P["birth_year"], year),
            setting(P["gender"], "female"),
            setting(P["age_years"], str(int(date[:4]) - int(year))),
            setting(P["country_origin"], "mm"),
        ]
    if "referred" in action:
        steps += [
            setting(P["services"], "shelter medical"),
            setting(P["referral_org"], REFERRAL_ORG),
            setting(P["referral_date"], date),
            setting(P["consent_to_share"], "yes"),
        ]
    return [*steps, {"op": "payload"}]


SCENARIOS = {
    # A woman identified at the border in Q2, then referred by an NGO in Q3: one person, counted in Q2.
    "identified": event("2026-02-10", "identified"),
    "referred later": event("2026-04-20", "referred"),
    # Another person, identified and referred at once, in Q3.
    "both": event("2026-05-02", "identified referred", given="Zö", year="2001"),
    # No consent: no personal answers, counted once on its own.
    "no consent": event("2026-05-15", "identified", consent="no"),
    # A stakeholder not on the roster: not counted, named for the officer in the internal list.
    "not listed": event("2026-05-20", "identified", given="Ka", year="1985", organisation=ORGANISATION),
}


def answers_of(xml: str) -> dict[str, Any]:
    """The instance XML as ODK Central's OData returns it: groups as objects, integers as numbers."""

    def walk(element: ET.Element) -> Any:
        children = list(element)
        if not children:
            text = element.text or ""
            tag = element.tag.split("}")[-1]
            return int(text) if tag in ("birth_year", "age_years") and text.strip().isdigit() else text
        return {child.tag.split("}")[-1]: walk(child) for child in children}

    return walk(ET.fromstring(xml))


def flattened(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The same as a Kobo data-API row holds it: ``group/field`` keys, every answer a string."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flattened(value, f"{prefix}{key}/"))
        elif value != "":
            out[f"{prefix}{key}"] = str(value)
    return out


@pytest.fixture(scope="module")
def submissions(form: Path, run_engine: Runner) -> dict[str, dict[str, Any]]:
    ran = run_engine(form, list(SCENARIOS.values()))["scenarios"]
    out = {}
    for name, steps in zip(SCENARIOS, ran, strict=True):
        payload = steps[-1]
        assert payload["status"] == "ready" and payload["violations"] == [], (name, payload)
        out[name] = answers_of(payload["xml"])
    return out


def test_the_engine_serialises_what_was_entered(submissions: dict[str, dict[str, Any]]) -> None:
    both = submissions["both"]
    assert both["event"]["action"] == "identified referred"
    assert both["person"]["uic_given"] == "Zö" and both["person"]["birth_year"] == 2001
    assert both["referral"]["services"] == "shelter medical"
    assert both["intro"]["consent_by"] == "person" and both["intro"]["immediate_danger"] == "no"
    assert both["referral"]["referral_org"] == REFERRAL_ORG
    assert (both["referral"]["referral_date"], both["referral"]["consent_to_share"]) == ("2026-05-02", "yes")
    assert both["meta"]["instanceID"].startswith("uuid:")
    assert "person" not in submissions["no consent"], "a group that is not relevant is not sent"


def expected_counts() -> dict[tuple[str, str], int]:
    return {
        ("identified_or_referred", "FY2026 Q2"): 1,
        ("identified_or_referred", "FY2026 Q3"): 2,
        ("identified", "FY2026 Q2"): 1,
        ("identified", "FY2026 Q3"): 2,
        ("referred", "FY2026 Q3"): 2,  # the first woman's referral, and the second person
        ("identified_or_referred", "LOP"): 3,
    }


def assert_counted(settings: Settings) -> None:
    with open_store(settings) as store:
        result = count_store(store, settings, AS_OF).result
    counts = result.counts
    totals = counts[counts["dimension"] == "total"].set_index(["indicator", "period"])["value"]
    for key, value in expected_counts().items():
        assert totals[key] == value, key
    findings = result.findings
    assert set(findings["rule"]) == {"not_linkable", "stakeholder_not_on_roster"}, findings
    (detail,) = findings.loc[findings["rule"] == "stakeholder_not_on_roster", "detail"]
    assert ORGANISATION in detail, "the officer is told which organisation to add"
    render_reports(settings, audiences=["internal", "donor"], as_of=AS_OF)
    internal = (settings.report.out_dir / "internal" / "data_quality.csv").read_text(encoding="utf-8")
    assert ORGANISATION in internal
    # The two referrals went to the same organisation, both with consent to share: internal only.
    shelter = next(org for org in settings.form.referral_directory if org.id == REFERRAL_ORG)
    with (settings.report.out_dir / "internal" / "referrals.csv").open(encoding="utf-8") as handle:
        referrals = {row["referral_org"]: row for row in csv.DictReader(handle)}
    assert (referrals[REFERRAL_ORG]["referrals"], referrals[REFERRAL_ORG]["consent_to_share"]) == ("2", "2")
    assert sum(int(row["referrals"]) for row in referrals.values()) == 2
    assert shelter.name in (settings.report.out_dir / "internal" / "report.html").read_text(encoding="utf-8")
    assert not (settings.report.out_dir / "donor" / "referrals.csv").exists()
    for path in (settings.report.out_dir / "donor").iterdir():
        assert ORGANISATION.encode() not in path.read_bytes(), path.name
        assert shelter.name.encode() not in path.read_bytes(), path.name


def test_the_engine_s_submissions_are_counted_as_a_kobo_export(
    submissions: dict[str, dict[str, Any]], make_project: Callable[..., Path], secret: str
) -> None:
    settings = load_settings(make_project())
    rows = []
    for number, data in enumerate(submissions.values(), start=1):
        row = flattened({key: value for key, value in data.items() if key != "meta"})
        row.update(
            {
                "_id": number,
                "_uuid": data["meta"]["instanceID"][5:],
                "meta/instanceID": data["meta"]["instanceID"],
            }
        )
        row["_submission_time"] = "2026-06-01T10:00:00"
        rows.append(row)
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    settings.source.path.write_text(json.dumps(rows), encoding="utf-8")
    run_sync(settings, progress=False, source=FileSource(settings.source.path))
    assert_counted(settings)


def test_the_engine_s_submissions_are_counted_through_odk_central(
    submissions: dict[str, dict[str, Any]],
    central: FakeCentral,
    make_project: Callable[..., Path],
    secret: str,
) -> None:
    for data in submissions.values():
        answers = {key: value for key, value in data.items() if key != "meta"}
        central.add_submission(answers, instance_id=data["meta"]["instanceID"])
    config = make_project(
        source=(
            f'kind = "odk_central"\nurl = "{central.url}"\nproject_id = {central.project_id}\n'
            'username_env = "CENTRAL_TEST_EMAIL"\npassword_env = "CENTRAL_TEST_PASSWORD"'
        )
    )
    settings = load_settings(config)
    run_sync(settings, progress=False)
    assert_counted(settings)
