"""Partner organisations on the demo: the internal breakdown against a hand count, and a partner's
own report (its stakeholders only, protected as the donor report, audited by the intruder)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from attack import Held, attack, exposed
from conftest import SECRET
from kobo_tip import demo, indicator, synthetic
from kobo_tip.cli import main
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import UsageError
from kobo_tip.partners import (
    ALL_STAKEHOLDERS,
    PARTNER_COLUMNS,
    VARIANT_COLUMNS,
    find_organisation,
    folder_name,
)
from kobo_tip.report.partner import render_partner_report
from kobo_tip.report.render import stored_release
from kobo_tip.store import open_store
from report_project import AS_OF as REPORT_AS_OF
from report_project import make_project, read_export, write_export

AS_OF = dt.date(2026, 11, 28)  # the last ended quarter is FY2026 Q4
SECRET_ENV = "KOBO_TIP_SECRET"
LAYOUT = ["indicator", "period", "period_start", "period_end", "dimension", "category"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[demo.DemoResult, Settings]]:
    with pytest.MonkeyPatch.context() as patch:
        # The demo's secret for the run, kept so that partner reports can be rendered after it.
        patch.setattr(demo.secrets, "token_hex", lambda nbytes: "partners-test-secret")
        result = demo.run_demo(tmp_path_factory.mktemp("demo") / "kobo-tip-demo", as_of=AS_OF)
        patch.setenv(SECRET_ENV, "partners-test-secret")
        yield result, load_settings(result.config_path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def hand_count(settings: Settings, internal: Path) -> dict[tuple[str, str, str, str], int]:
    """(organisation, stakeholder id or 'all', quarter, column) -> persons, from the stored
    submissions and the internal data-quality list of excluded ones, by the rule of contract
    section 7: once per organisation, at the organisation's first eligible event."""
    organisation_of = {member.id: member.organisation for member in settings.form.roster}
    excluded = {
        row["submission_id"]
        for row in read_csv(internal / "data_quality.csv")
        if row["rule"] in indicator.EXCLUSION_RULES
    }
    quarters = [
        (row["period"], row["period_start"], row["period_end"])
        for row in read_csv(internal / "partners.csv")
        if " Q" in row["period"]
    ]
    first: dict[tuple[str, str, str], tuple[str, str, int, str]] = {}
    with open_store(settings, create=False) as store:
        for sub in store.submissions(include_deleted=False):
            if sub.submission_id in excluded:
                continue
            date, stakeholder = sub.data["event/event_date"], sub.data["event/stakeholder_id"]
            actions = sub.data["event/action"].split()
            for column, wanted in (
                ("new_persons", {"identified", "referred"}),
                ("identified", {"identified"}),
                ("referred", {"referred"}),
            ):
                if not wanted & set(actions):
                    continue
                key = (organisation_of[stakeholder], sub.person_key, column)
                event = (date, sub.submitted_at, int(sub.submission_id), stakeholder)
                if key not in first or event < first[key]:
                    first[key] = event
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for (organisation, _, column), (date, _, _, stakeholder) in first.items():
        quarter = next(label for label, start, end in quarters if start <= date <= end)
        counts[(organisation, ALL_STAKEHOLDERS, quarter, column)] += 1
        counts[(organisation, stakeholder, quarter, column)] += 1
    return counts


def test_demo_roster_names_partner_organisations(project: tuple[demo.DemoResult, Settings]) -> None:
    _, settings = project
    named = {member.organisation for member in settings.form.roster}
    assert named - {""} == set(synthetic.PARTNER_ORGANISATIONS)
    assert "" in named  # a few stakeholders belong to no organisation


def test_partner_breakdown_matches_a_hand_count(project: tuple[demo.DemoResult, Settings]) -> None:
    result, settings = project
    internal = result.internal_report.parent
    rows = read_csv(internal / "partners.csv")
    assert list(rows[0]) == list(PARTNER_COLUMNS)
    expected = hand_count(settings, internal)
    assert sum(expected.values()) > 1000
    by_period: dict[tuple[str, str, str], dict[str, int]] = {}
    for row in rows:
        for column in VARIANT_COLUMNS.values():
            value = int(row[column])
            by_period.setdefault((row["organisation"], row["stakeholder_id"], column), {})[row["period"]] = (
                value
            )
            if " Q" in row["period"]:
                assert value == expected.get(
                    (row["organisation"], row["stakeholder_id"], row["period"], column), 0
                ), row
    # Quarters add up to their fiscal year and to LOP, and an organisation's stakeholders to it.
    for (organisation, sid, column), values in by_period.items():
        quarters = {p: v for p, v in values.items() if " Q" in p}
        assert values["LOP"] == sum(quarters.values())
        for year in {p.split()[0] for p in quarters}:
            assert values[year] == sum(v for p, v in quarters.items() if p.startswith(year + " "))
        if sid == ALL_STAKEHOLDERS:
            mine = [v for (o, s, c), v in by_period.items() if o == organisation and c == column and s != sid]
            assert values["LOP"] == sum(v["LOP"] for v in mine)
    # A person reached by two organisations counts in both: organisations add up to more than the project.
    headline = {
        r["period"]: int(r["value"])
        for r in read_csv(internal / "counts.csv")
        if r["indicator"] == "identified_or_referred" and r["dimension"] == "total"
    }
    lop = sum(
        int(r["new_persons"])
        for r in rows
        if r["stakeholder_id"] == ALL_STAKEHOLDERS and r["period"] == "LOP"
    )
    assert lop > headline["LOP"]


def test_internal_report_workbook_and_markdown_show_partners(
    project: tuple[demo.DemoResult, Settings],
) -> None:
    result, _ = project
    internal = result.internal_report.parent
    html = result.internal_report.read_text(encoding="utf-8")
    assert 'id="partners"' in html and "Mekong Migrant Aid" in html
    assert "Mekong Migrant Aid" in (internal / "report.md").read_text(encoding="utf-8")
    sheet = openpyxl.load_workbook(internal / "counts.xlsx")["partners"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(PARTNER_COLUMNS)
    assert len(rows) - 1 == len(read_csv(internal / "partners.csv"))
    assert all(isinstance(value, int) for row in rows[1:] for value in row[6:])
    for audience in ("donor", "public"):
        folder = result.internal_report.parent.parent / audience
        assert not (folder / "partners.csv").exists()
        assert "partners" not in openpyxl.load_workbook(folder / "counts.xlsx").sheetnames
        assert "Mekong Migrant Aid" not in (folder / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("organisation", ["Mekong Migrant Aid", "safe-journeys-foundation"])
def test_partner_report_is_its_own_protected_and_audited(
    project: tuple[demo.DemoResult, Settings], organisation: str
) -> None:
    result, settings = project
    name = find_organisation(settings.form.roster, organisation)
    written = render_partner_report(settings, organisation, as_of=AS_OF)
    folder = settings.report.out_dir / folder_name(name)
    assert written and all(path.parent == folder for path in written)
    assert {path.name for path in written} >= {"counts.csv", "report.html", "report.md", "counts.xlsx"}
    assert not {"partners.csv", "data_quality.csv", "iptt.csv", "referrals.csv"} & {p.name for p in written}
    # No submission id, uuid or case reference; no stakeholder name, and none of another partner.
    page = json.loads((result.folder / "data" / "export.json").read_text(encoding="utf-8"))["results"]
    secrets = {str(sub["_id"]) for sub in page} | {sub["_uuid"] for sub in page}
    secrets |= {sub["event/case_ref"] for sub in page if "event/case_ref" in sub}
    others = [m for m in settings.form.roster if m.organisation != name]
    assert any(m.organisation for m in others)
    for path in written:
        if path.suffix == ".png":  # drawn from the .svg beside it, which is read below
            continue
        if path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path, read_only=True)
            text = "\n".join(
                str(c) for s in book.worksheets for r in s.iter_rows(values_only=True) for c in r
            )
        else:
            text = path.read_text(encoding="utf-8")
        assert not set(re.findall(r"[\w-]+", text)) & secrets, path
        assert not [m.name for m in settings.form.roster if m.name in text], path
        assert not [m.id for m in others if re.search(rf"\b{re.escape(m.id)}\b", text)], path
        assert not [o for o in synthetic.PARTNER_ORGANISATIONS if o != name and o in text], path
    published = pd.read_csv(folder / "counts.csv", dtype=str, keep_default_na=False)
    assert published["value"].str.fullmatch(r"0|<5|x|[5-9]|\d\d+").all()
    assert (published["value"] == "<5").any()  # small cells exist and are protected
    # The truth of the release is the partner's own count: the internal breakdown's organisation row.
    with open_store(settings, create=False) as store:
        release = stored_release(store.releases(folder_name(name), last=True)[0])
    truth = release.table
    internal = {
        (r["period"], c): int(r[column])
        for r in read_csv(result.internal_report.parent / "partners.csv")
        if r["organisation"] == name and r["stakeholder_id"] == ALL_STAKEHOLDERS
        for c, column in VARIANT_COLUMNS.items()
    }
    totals = truth[(truth["dimension"] == "total") & (truth["period_kind"] == "quarter")]
    assert len(totals) > 0
    for row in totals.itertuples(index=False):
        assert int(row.value) == internal[(row.period, row.indicator)], row
    # The intruder holding the partner report alone narrows no small cell below ceil(k/2) values.
    held = Held(
        truth[LAYOUT].assign(value=truth["published"].to_numpy()),
        truth[[*LAYOUT, "value"]],
        5,
        release.through,
    )
    findings = attack([held], 5)
    assert findings and not exposed(findings, 5)


def test_cli_partner_report_and_an_unknown_organisation(
    project: tuple[demo.DemoResult, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    result, settings = project
    code = main(
        [
            "report",
            "-c",
            str(result.config_path),
            "--partner",
            "Provincial Protection Office",
            "--as-of",
            AS_OF.isoformat(),
        ]
    )
    assert code == 0
    assert "partner-provincial-protection-office/report.html" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"choose one of: .*Mekong Migrant Aid"):
        find_organisation(settings.form.roster, "Nobody")
    assert main(["report", "-c", str(result.config_path), "--partner", "Nobody"]) == 2
    assert "Nobody" in capsys.readouterr().err


# -- the unreadable-share hold, as for a donor report (kobo_tip.readability) -----------------------


def unreadable_partner(root: Path, rows: int) -> tuple[Path, int]:
    """A small project whose roster splits its stakeholders between two organisations, with
    ``rows`` of Alpha Aid's submissions coded Y for consent (not a choice of the form); returns the
    config and how many submissions Alpha Aid has."""
    config = make_project(root, submissions=300, dhis2=False)
    roster = root / "forms" / "stakeholders.csv"
    with roster.open(encoding="utf-8", newline="") as handle:
        members = list(csv.DictReader(handle))
    for number, member in enumerate(members):
        member["organisation"] = "Alpha Aid" if number % 2 == 0 else "Beta Network"
    with roster.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(members[0]))
        writer.writeheader()
        writer.writerows(members)
    alpha = {member["id"] for member in members if member["organisation"] == "Alpha Aid"}
    export = read_export(config)
    mine = [sub for sub in export if sub.get("event/stakeholder_id") in alpha]
    for sub in mine[:rows]:
        sub["intro/consent"] = "Y"
    write_export(config, export)
    return config, len(mine)


def test_a_partner_report_is_held_when_its_own_submissions_are_too_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config, alpha_rows = unreadable_partner(tmp_path, 8)
    as_of = ["--as-of", REPORT_AS_OF.isoformat()]

    def run(*args: str) -> tuple[int, str]:
        code = main([*args, "-c", str(config)])
        said = capsys.readouterr()
        return code, said.out + said.err

    code, said = run("sync", "--no-report")
    # The store as a whole is readable enough (the synthetic data's own few and Alpha's eight).
    assert code == 0 and "cannot be read" not in said, said
    code, said = run("report", "--partner", "Alpha Aid", *as_of)
    assert code == 1
    sentence = said.strip().splitlines()[-1]
    assert re.search(
        rf"Alpha Aid: \d+ of {alpha_rows} submissions \([\d.]+%\) cannot be read for counting", said
    )
    assert "more than the 5% that [report] max_unreadable_percent allows" in sentence
    assert "no report for Alpha Aid was written" in sentence
    assert "'kobo-tip report --partner \"Alpha Aid\" --accept-unreadable'" in sentence
    reports = tmp_path / "reports"
    assert not (reports / "partner-alpha-aid").exists()
    # The other partner's own submissions read well: its report is not held.
    code, said = run("report", "--partner", "Beta Network", *as_of)
    assert code == 0 and (reports / "partner-beta-network" / "counts.csv").exists(), said
    # The officer has looked: released, and recorded, so the next release of the same store needs no flag.
    code, said = run("report", "--partner", "Alpha Aid", "--accept-unreadable", *as_of)
    assert code == 0 and (reports / "partner-alpha-aid" / "counts.csv").exists(), said
    code, said = run("report", "--partner", "Alpha Aid", *as_of)
    assert code == 0, said
    # What the officer accepted for Alpha Aid is its own: the store's check, which status shows, is
    # the whole store's, and the donor report was never held.
    code, said = run("status")
    assert code == 0 and "HELD" not in said and f"of {alpha_rows} submissions" not in said
    # More of Alpha Aid's rows unreadable: held again until the officer looks again.
    unreadable_partner(tmp_path / "again", 20)
    (tmp_path / "data" / "export.json").write_bytes(
        (tmp_path / "again" / "data" / "export.json").read_bytes()
    )
    code, said = run("sync", "--no-report")
    assert code == 0, said
    code, said = run("report", "--partner", "Alpha Aid", *as_of)
    assert code == 1 and "--accept-unreadable" in said.strip().splitlines()[-1]
