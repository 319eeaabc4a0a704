"""The generated form filled in the official ODK Web Forms engine (@getodk/xforms-engine, node).

``tests/webforms/run.mjs`` drives the engine as a browser would: it sets answers and reports what
the enumerator would see (relevance, requiredness, constraint violations, choice lists, labels in
the chosen language) and the submission XML the engine writes. The submissions it writes then go
through the pipeline, as ODK Central returns them (the fake Central) and as a Kobo export holds
them (the file source), and are counted as their scenario says: form and counting cannot drift.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from fakes.central_server import FakeCentral
from kobo_tip import indicator as ind
from kobo_tip.config import Settings, load_settings
from kobo_tip.form import build_form
from kobo_tip.labels import load_labels
from kobo_tip.report import render_reports
from kobo_tip.report.render import count_store
from kobo_tip.sources.files import FileSource
from kobo_tip.store import Store
from kobo_tip.sync import run_sync

ENGINE = REPO / "tests" / "webforms"
ROOT = f"/{ind.FORM_ID}"
P = {name: f"{ROOT}/{group}/{name}" for name, group in ind.FIELD_GROUPS.items()}
AS_OF = dt.date(2026, 11, 28)


def engine_available() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: install Node.js 20.19.3 or later, then run 'make test'.")
    if not (ENGINE / "node_modules" / "@getodk" / "xforms-engine").is_dir():
        pytest.fail(
            f"the ODK Web Forms engine is not installed: run 'npm ci --prefix {ENGINE}' (make test does)."
        )


def run_engine(form: Path, scenarios: list[list[dict[str, Any]]]) -> dict[str, Any]:
    engine_available()
    done = subprocess.run(
        ["node", str(ENGINE / "run.mjs")],
        input=json.dumps({"form": str(form), "scenarios": scenarios}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(REPO / "config.example.toml")


@pytest.fixture(scope="module")
def form(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_form(settings, out_dir=tmp_path_factory.mktemp("form")).files.xml_path


def setting(path: str, value: str) -> dict[str, str]:
    return {"op": "set", "path": path, "value": value}


def state(path: str) -> dict[str, str]:
    return {"op": "state", "path": path}


def test_the_form_loads_without_a_warning(form: Path) -> None:
    loaded = run_engine(form, [])["load"]
    assert loaded == {"status": "success", "warnings": None, "error": None}


def test_consent_opens_the_person_group_and_referral_the_services(form: Path) -> None:
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


UIC_ACCEPTED = ["Ma", "Zoë", "ที่นี่", "เม", "สม", "မြ", "ក្ម", "ລາ", "Ηλ", "Мы", "ab"]
UIC_REFUSED = ["๑๒", "١٢", "१२", "12", "ab。", "😀a", "a b", "a-b", "a.", "x" * 13]


@pytest.mark.parametrize("field", ["uic_given", "uic_mother"])
def test_the_name_codes_take_letters_with_their_marks_in_any_script_and_nothing_else(
    form: Path, field: str
) -> None:
    values = UIC_ACCEPTED + UIC_REFUSED + ["99", "๙๙"]
    steps = [setting(P["consent"], "yes"), *(setting(P[field], value) for value in values)]
    seen = run_engine(form, [steps])["scenarios"][0][1:]
    verdict = {value: result["valid"] for value, result in zip(values, seen, strict=True)}
    assert all(verdict[v] for v in UIC_ACCEPTED), verdict
    assert not any(verdict[v] for v in UIC_REFUSED), verdict
    assert verdict["99"] is (field == "uic_mother") and verdict["๙๙"] is False, "only ASCII 99 means unknown"


@pytest.mark.parametrize(
    ("birth_year", "age", "estimated", "valid"),
    [
        ("2000", "26", "", True),  # event on 2026-03-01: 25 or 26
        ("2000", "25", "", True),
        ("2000", "27", "", True),  # one year of tolerance
        ("2000", "24", "", False),
        ("2000", "90", "", False),
        ("2000", "22", "yes", True),  # estimated: five years
        ("2000", "20", "yes", False),
        ("2000", "121", "", False),
    ],
)
def test_age_agrees_with_the_birth_year(
    form: Path, birth_year: str, age: str, estimated: str, valid: bool
) -> None:
    steps = [
        setting(P["consent"], "yes"),
        setting(P["event_date"], "2026-03-01"),
        setting(P["birth_year"], birth_year),
        setting(P["age_estimated"], estimated),
        setting(P["age_years"], age),
    ]
    assert run_engine(form, [steps])["scenarios"][0][-1]["valid"] is valid


def test_presumed_and_confirmed_trafficking_exclude_each_other(form: Path) -> None:
    steps = [
        setting(P["person_category"], "trafficking_presumed trafficking_confirmed"),
        setting(P["person_category"], "trafficking_confirmed gbv"),
        setting(P["person_category"], "trafficking_presumed exploitation_other"),
    ]
    both, confirmed, presumed = run_engine(form, [steps])["scenarios"][0]
    assert (both["valid"], both["violation"]) == (False, "constraint")
    assert confirmed["valid"] and presumed["valid"]


def test_a_stakeholder_not_listed_asks_for_the_organisation(form: Path) -> None:
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


def test_stakeholders_and_locations_cascade(form: Path, settings: Settings) -> None:
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
    thai = [loc.code for loc in settings.form.locations if loc.level == 1 and loc.parent == "th"]
    assert admin1["relevant"] and admin1["options"] == thai
    assert not elsewhere["relevant"], "no admin1 list for a country the locations file lacks"


def test_french_labels(form: Path, settings: Settings) -> None:
    french = next(lang for lang in settings.project.languages if lang.code == "fr")
    labels = load_labels(french)
    steps = [{"op": "language", "label": french.label}, state(P["consent"]), state(P["uic_given"])]
    switched, consent, uic = run_engine(form, [steps])["scenarios"][0]
    assert switched == {"language": french.label}
    assert consent["label"] == labels.field("consent")
    assert consent["option_labels"] == [labels.choice("yes_no", "yes"), labels.choice("yes_no", "no")]
    assert uic["label"] == labels.field("uic_given")


# --- the engine's submissions through the pipeline ------------------------------------------------

STAKEHOLDER = "ngo_hope"  # a roster id of type ngo_partner (forms/stakeholders.csv)
ORGANISATION = "Mekong Outreach Collective"


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
        setting(P["consent"], consent),
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
        steps.append(setting(P["services"], "shelter medical"))
    return [*steps, {"op": "payload"}]


SCENARIOS = {
    # A woman identified at the border in Q2, then referred by an NGO in Q3: one person, counted in Q2.
    "identified": event("2026-02-10", "identified"),
    "referred later": event("2026-04-20", "referred"),
    # Another person, identified and referred at once, in Q3.
    "both": event("2026-05-02", "identified referred", given="Zoë", year="2001"),
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
def submissions(form: Path) -> dict[str, dict[str, Any]]:
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
    assert both["person"]["uic_given"] == "Zoë" and both["person"]["birth_year"] == 2001
    assert both["referral"]["services"] == "shelter medical"
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
    with Store.open(settings.store_path) as store:
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
    for path in (settings.report.out_dir / "donor").iterdir():
        assert ORGANISATION.encode() not in path.read_bytes(), path.name


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


@pytest.fixture
def central(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCentral]:
    with FakeCentral() as fake:
        monkeypatch.setenv("CENTRAL_TEST_EMAIL", fake.email)
        monkeypatch.setenv("CENTRAL_TEST_PASSWORD", fake.password)
        yield fake


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
