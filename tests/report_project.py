"""A synced example project for the report tests: synthetic submissions through the file source.

Config strings and one submission carry hostile values (markup, spreadsheet formulas) so the
tests can check that every output escapes or neutralises them.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime as dt
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, _replace_sections
from kobo_tip import synthetic, targets
from kobo_tip.config import Settings, load_settings
from kobo_tip.sync import run_sync

AS_OF = dt.date(2027, 2, 15)  # FY2027 Q2 is running; FY2027 Q1 is the headline quarter
FIRST_ID = 700_000  # six-digit submission ids cannot be mistaken for counts
SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '" onmouseover="alert(2)'
FORMULA = '=HYPERLINK("http://example.invalid")'
HOSTILE_CASE_REF = "CASE-REF-SHOULD-STAY-INTERNAL"
HOSTILE_NAMES = (SCRIPT, ATTRIBUTE, FORMULA)  # given to the three busiest locations
DHIS2 = """data_set = "dsUid"
org_unit = "ouUid"
attribute_option_combo = "aocUid"
target_attribute_option_combo = "aocTarget"
[dhis2.data_elements]
identified_or_referred = "deHeadline"
identified = "deIdentified"
referred = "deReferred"
[dhis2.category_option_combos]
"total:all" = "cocTotal"
"gender:female" = "cocFemale"
"gender:male" = "cocMale"
"""


# Targets for the headline total and two gender cells; a note carries a spreadsheet formula.
TARGETS: list[list[object]] = [
    *(["identified_or_referred", f"FY2026 Q{q}", "total", "all", 60, ""] for q in (1, 2, 3, 4)),
    ["identified_or_referred", "FY2026", "total", "all", 240, FORMULA],
    ["identified_or_referred", "FY2027 Q1", "total", "all", 60, ""],
    ["identified_or_referred", "LOP", "total", "all", 720, "plan"],
    ["identified_or_referred", "LOP", "gender", "female", 300, ""],
    ["identified_or_referred", "FY2027 Q1", "gender", "male", 3, ""],
]


def write_targets(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([list(targets.COLUMNS), *rows])
    return path


def make_project(
    root: Path,
    *,
    submissions: int = 600,
    dhis2: bool = True,
    report_language: str = "English (en)",
    with_targets: bool = False,
    languages: tuple[str, ...] = ("English (en)", "French (fr)"),
) -> Path:
    """Write config, roster, locations (the busiest with hostile names) and a synthetic export;
    ``with_targets`` adds ``TARGETS`` as the project's targets file."""
    (root / "forms").mkdir(parents=True)
    (root / "data").mkdir()
    shutil.copy(REPO / "forms" / "stakeholders.csv", root / "forms" / "stakeholders.csv")
    shutil.copy(REPO / "forms" / "locations.csv", root / "forms" / "locations.csv")
    shutil.copy(REPO / "forms" / "referral_directory.csv", root / "forms" / "referral_directory.csv")
    sections = {
        "project": (
            f'name = {json.dumps("Safe Migration " + SCRIPT + ATTRIBUTE)}\ncountry = "th"\n'
            "start_date = 2025-10-01\nend_date = 2028-09-30\nfiscal_year_start_month = 10\n"
            f"languages = {json.dumps(list(languages), ensure_ascii=False)}\n"
            f'report_language = "{report_language}"'
        ),
        "source": 'kind = "file"\npath = "data/export.json"',
        "report": 'out_dir = "reports"\naudiences = ["internal", "donor"]',
    }
    if dhis2:
        sections["dhis2"] = DHIS2
    if with_targets:
        sections["targets"] = 'path = "targets.csv"'
        write_targets(root / "targets.csv", TARGETS)
    text = _replace_sections((REPO / "config.example.toml").read_text(encoding="utf-8"), sections)
    config = root / "kobo-tip.toml"
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)
    rows_out = synthetic.generate_submissions(
        submissions,
        seed=7,
        roster=settings.form.roster,
        locations=settings.form.locations,
        start_date=settings.project.start_date,
        end_date=settings.project.end_date,
        as_of=AS_OF,
        first_id=FIRST_ID,
    )
    hostile = copy.deepcopy(rows_out[-1])
    hostile.update(
        {
            "_id": rows_out[-1]["_id"] + 1,
            "_uuid": "hostile-0001",
            "person/country_origin": SCRIPT,
            "event/case_ref": HOSTILE_CASE_REF,
        }
    )
    rows_out.append(hostile)
    write_export(config, rows_out)
    busiest = Counter(row.get("event/location_admin1") for row in rows_out).most_common(3)
    rename_locations(
        root / "forms" / "locations.csv", dict(zip((c for c, _ in busiest), HOSTILE_NAMES, strict=True))
    )
    return config


def rename_locations(path: Path, names: dict[str, str]) -> None:
    """Give the locations with these codes new names (the codes, which the data use, stay)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["name"] = names.get(row["code"], row["name"])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["level", "code", "name", "parent"])
        writer.writeheader()
        writer.writerows(rows)


def write_export(config: Path, rows: list[dict[str, Any]]) -> None:
    (config.parent / "data" / "export.json").write_text(json.dumps(rows), encoding="utf-8")


def read_export(config: Path) -> list[dict[str, Any]]:
    return json.loads((config.parent / "data" / "export.json").read_text(encoding="utf-8"))


@contextlib.contextmanager
def rendered_project(
    root: Path, audiences: tuple[str, ...] = ("internal", "donor"), *, with_targets: bool = False
) -> Iterator[Settings]:
    """A project made, synced and rendered at ``AS_OF`` (for module-scoped fixtures)."""
    from conftest import SECRET
    from kobo_tip.report import render_reports

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOBO_TIP_SECRET", SECRET)
        settings = sync(make_project(root, dhis2=with_targets, with_targets=with_targets))
        render_reports(settings, audiences=audiences, as_of=AS_OF)
        yield settings


def sync(config: Path) -> Settings:
    settings = load_settings(config)
    run_sync(settings, progress=False)
    return settings
