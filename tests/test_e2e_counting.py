"""End to end: `kobo-tip sync` then `kobo-tip report --audience internal` on a Kobo JSON export.

The expected numbers are what an M&E officer computes by hand from the seven submissions below;
counts.csv is checked cell by cell (every cell not listed must be 0, and no cell may be missing).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kobo_tip import indicator as ind

SECRET = "e2e-secret-not-for-production"
AS_OF = "2026-11-28"
GROUP = {
    "consent": "intro",
    **dict.fromkeys(
        ["event_date", "action", "stakeholder_type", "stakeholder_id", "identification_country"], "event"
    ),
    **dict.fromkeys(["location_admin1", "person_category", "gbv_type"], "event"),
    **dict.fromkeys(
        ["uic_given", "uic_mother", "birth_year", "gender", "age_years", "country_origin"], "person"
    ),
    "services": "referral",
}
KOBO_STATUS = {"approved": "validation_status_approved", "rejected": "validation_status_not_approved"}


def kobo(sid: int, status: str = "", **answers: str) -> dict[str, Any]:
    """One submission as Kobo's data API sends it: strings, ``group/field`` keys, meta fields."""
    row: dict[str, Any] = {"_id": sid, "_uuid": f"uuid-{sid}", "_submission_time": f"2026-06-0{sid}T10:00:00"}
    row |= {f"{GROUP[name]}/{name}": value for name, value in answers.items()}
    row |= {
        "form_version": "20251001000000",
        "meta/instanceID": f"uuid:uuid-{sid}",
        "_validation_status": {"uid": KOBO_STATUS[status]} if status else {},
    }
    return row


PERSON_A = {
    "consent": "yes",
    "uic_given": "Maria",
    "uic_mother": "Ana",
    "birth_year": "1990",
    "gender": "female",
}
PERSON_B = {"consent": "yes", "uic_given": "Jo", "uic_mother": "Li", "birth_year": "1985", "gender": "male"}
PERSON_C = {"consent": "yes", "uic_given": "Su", "uic_mother": "Ta", "birth_year": "1970", "gender": "female"}
EXPORT = [
    kobo(1, "approved", **PERSON_A, age_years="30", country_origin="mm", event_date="2025-11-10",
         action="identified", stakeholder_type="border_control", stakeholder_id="bc_maesot",
         identification_country="th", location_admin1="TH-63", person_category="trafficking_presumed"),
    # The same person (case and accents differ), referred by an NGO in the next quarter.
    kobo(2, **PERSON_A | {"uic_given": "MARÍA", "uic_mother": "ána"}, age_years="30", country_origin="mm",
         event_date="2026-02-10", action="referred", stakeholder_type="ngo_partner",
         stakeholder_id="ngo_hope", identification_country="th", location_admin1="TH-74",
         person_category="trafficking_presumed",
         services="shelter"),
    kobo(3, **PERSON_B, age_years="16", country_origin="kh", event_date="2026-01-05", action="identified",
         stakeholder_type="labour_inspector", stakeholder_id="li_tak", identification_country="th",
         location_admin1="TH-74", person_category="trafficking_presumed"),
    kobo(4, consent="no", event_date="2026-04-20", action="identified referred",
         stakeholder_type="other_government", stakeholder_id="og_police", identification_country="th",
         location_admin1="TH-10", person_category="gbv", gbv_type="rape", services="medical"),
    kobo(5, "rejected", **PERSON_C, age_years="55", country_origin="la", event_date="2026-01-07",
         action="identified", stakeholder_type="border_control", stakeholder_id="bc_aranya",
         identification_country="th", location_admin1="TH-27", person_category="trafficking_presumed"),
    kobo(6, **PERSON_C, age_years="55", country_origin="la", event_date="2026-03-07", action="identified",
         stakeholder_type="other", stakeholder_id="not_listed", identification_country="th",
         location_admin1="TH-27", person_category="trafficking_presumed"),
    kobo(7, **PERSON_C, age_years="55", country_origin="la", event_date="2026-12-15", action="identified",
         stakeholder_type="border_control", stakeholder_id="bc_aranya", identification_country="th",
         location_admin1="TH-27", person_category="trafficking_presumed"),
]  # fmt: skip

PERIODS = {
    "FY2026 Q1": ("2025-10-01", "2025-12-31"),
    "FY2026 Q2": ("2026-01-01", "2026-03-31"),
    "FY2026 Q3": ("2026-04-01", "2026-06-30"),
    "FY2026 Q4": ("2026-07-01", "2026-09-30"),
    "FY2026": ("2025-10-01", "2026-09-30"),
    "FY2027 Q1": ("2026-10-01", "2026-12-31"),
    "FY2027": ("2026-10-01", "2027-09-30"),
    "LOP": ("2025-10-01", "2028-09-30"),
}
PERSON_A_Q1 = {  # index event 1
    "total": "all", "age_band": "18-59", "gender": "female", "location": "TH-63", "country_of_origin": "mm",
    "stakeholder_type": "border_control", "disability": "unknown", "age_band_x_gender": "18-59|female",
    "person_category": "trafficking_presumed", "exploitation_type": "unknown", "gbv_type": "unknown",
}  # fmt: skip
PERSON_A_REFERRED_Q2 = PERSON_A_Q1 | {  # index event 2 for `referred`
    "location": "TH-74", "stakeholder_type": "ngo_partner", "services": "shelter",
}  # fmt: skip
PERSON_B_Q2 = {  # index event 3
    "total": "all", "age_band": "12-17", "gender": "male", "location": "TH-74", "country_of_origin": "kh",
    "stakeholder_type": "labour_inspector", "disability": "unknown", "age_band_x_gender": "12-17|male",
    "person_category": "trafficking_presumed", "exploitation_type": "unknown", "gbv_type": "unknown",
}  # fmt: skip
NO_CONSENT_Q3 = {  # index event 4
    "total": "all", "age_band": "not_recorded", "gender": "not_recorded", "location": "TH-10",
    "country_of_origin": "not_recorded", "stakeholder_type": "other_government", "disability": "not_recorded",
    "age_band_x_gender": "not_recorded|not_recorded", "person_category": "gbv",
    "exploitation_type": "unknown", "gbv_type": "rape", "services": "medical",
}  # fmt: skip
COUNTED = {  # variant -> (quarter, the person's categories) per counted person
    "identified_or_referred": [
        ("FY2026 Q1", PERSON_A_Q1),
        ("FY2026 Q2", PERSON_B_Q2),
        ("FY2026 Q3", NO_CONSENT_Q3),
    ],
    "identified": [("FY2026 Q1", PERSON_A_Q1), ("FY2026 Q2", PERSON_B_Q2), ("FY2026 Q3", NO_CONSENT_Q3)],
    "referred": [("FY2026 Q2", PERSON_A_REFERRED_Q2), ("FY2026 Q3", NO_CONSENT_Q3)],
}


def expected_cells() -> dict[tuple[str, str, str, str], int]:
    """Every cell of counts.csv with its value: the full grid of contract section 7, zeros included."""
    bands = ["0-4", "5-11", "12-17", "18-59", "60+", "unknown"]
    genders = list(ind.CHOICES["gender"])
    categories = {
        "total": ["all"],
        "age_band": [*bands, "not_recorded"],
        "gender": [*genders, "not_recorded"],
        "location": ["TH-10", "TH-63", "TH-74", "unknown"],  # seen among counted persons
        "country_of_origin": ["kh", "mm", "unknown", "not_recorded"],
        "stakeholder_type": [*ind.CHOICES["stakeholder_type"], "unknown"],
        "disability": list(ind.DISABILITY_CATEGORIES),
        "age_band_x_gender": [*(f"{b}|{g}" for b in bands for g in genders), "not_recorded|not_recorded"],
        "person_category": [*ind.CHOICES["person_category"], "unknown"],
        "exploitation_type": [*ind.CHOICES["exploitation_type"], "unknown"],
        "gbv_type": [*ind.CHOICES["gbv_type"], "unknown"],
        "services": [*ind.CHOICES["service"], "unknown"],
    }
    cells = {}
    for variant, persons in COUNTED.items():
        for period in PERIODS:
            for dimension, names in categories.items():
                if dimension == "services" and variant != "referred":
                    continue
                for name in names:
                    cells[(variant, period, dimension, name)] = 0
        for quarter, person in persons:
            fiscal_year = quarter.split(" ")[0]
            for dimension, name in person.items():
                if (variant, quarter, dimension, name) in cells:
                    for period in (quarter, fiscal_year, "LOP"):
                        cells[(variant, period, dimension, name)] += 1
    return cells


def kobo_tip(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"KOBO_TIP_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "kobo_tip", *argv, "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    config = make_project(report='out_dir = "reports"\naudiences = ["internal"]\nformats = ["csv"]')
    export = config.parent / "data" / "export.json"
    export.parent.mkdir(parents=True)
    export.write_text(json.dumps({"count": len(EXPORT), "next": None, "results": EXPORT}), encoding="utf-8")
    return config


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_sync_then_internal_report_counts_every_cell(project: Path) -> None:
    synced = kobo_tip(project, "sync")
    assert synced.returncode == 0, synced.stderr
    reported = kobo_tip(project, "report", "--audience", "internal", "--as-of", AS_OF)
    assert reported.returncode == 0, reported.stderr
    folder = project.parent / "reports" / "internal"
    rows = read_csv(folder / "counts.csv")
    assert list(rows[0]) == list(ind.COUNTS_COLUMNS)
    got = {(r["indicator"], r["period"], r["dimension"], r["category"]): int(r["value"]) for r in rows}
    assert len(got) == len(rows)  # no cell twice
    expected = expected_cells()
    assert set(got) == set(expected)
    wrong = {cell: (got[cell], value) for cell, value in expected.items() if got[cell] != value}
    assert wrong == {}
    for row in rows:
        assert (row["period_start"], row["period_end"]) == PERIODS[row["period"]]
    quality = {(r["submission_id"], r["rule"], r["field"]) for r in read_csv(folder / "data_quality.csv")}
    assert quality == {
        ("4", "not_linkable", "person_key"),
        ("5", "rejected", "review_status"),
        ("6", "stakeholder_not_on_roster", "stakeholder_id"),
        ("7", "date_in_future", "event_date"),
    }
    text = "\n".join(path.read_text(encoding="utf-8") for path in folder.iterdir() if path.suffix == ".csv")
    assert "Maria" not in text and "MARÍA" not in text and SECRET not in text
