"""The restatement log: a late submission, an edit and a deletion change published cells."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest

from kobo_tip.config import Settings
from kobo_tip.report import render_reports
from kobo_tip.store import open_store
from report_project import AS_OF, make_project, read_export, sync, write_export

TOTAL_Q2 = ("identified_or_referred", "FY2026 Q2", "total", "all")


def restatements(settings: Settings, audience: str) -> dict[tuple[str, str, str, str], dict[str, str]]:
    path = settings.report.out_dir / audience / "restatements.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            (r["indicator"], r["period"], r["dimension"], r["category"]): r for r in csv.DictReader(handle)
        }


def counted_row(rows: list[dict], settings: Settings) -> dict:
    roster = {s.id for s in settings.form.roster}
    return next(
        r
        for r in rows
        if r.get("intro/consent") == "yes"
        and r.get("event/stakeholder_id") in roster
        and r.get("event/person_category")
        and not r.get("_validation_status")
    )


def late_submission(rows: list[dict], settings: Settings) -> dict:
    """A new person identified in FY2026 Q2 whose record reaches the server only now."""
    late = copy.deepcopy(counted_row(rows, settings))
    late.update(
        {
            "_id": max(r["_id"] for r in rows) + 5,
            "_uuid": "late-0001",
            "meta/instanceID": "uuid:late-0001",
            "event/event_date": "2026-02-10",
            "event/action": "identified referred",
            "person/uic_given": "Zq",
            "person/uic_mother": "Xw",
            "person/birth_year": "1991",
            "person/gender": "female",
            "person/age_years": "34",
            "_submission_time": "2027-02-01T08:00:00",
            "_validation_status": {},
        }
    )
    return late


@pytest.fixture
def published_once(tmp_path: Path, secret: str) -> Settings:
    """Released once to internal and donor, outside audiences counting by event date: the release
    rule of contract section 6 (``test_ledger`` holds the as-reported basis)."""
    config = make_project(tmp_path / "project", submissions=400, dhis2=False)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("[report]\n", '[report]\noutside_basis = "event_date"\n', 1), encoding="utf-8"
    )
    settings = sync(config)
    render_reports(settings, audiences=["internal", "donor"], as_of=AS_OF)
    return settings


def value(settings: Settings, audience: str, key: tuple[str, str, str, str]) -> str:
    with (settings.report.out_dir / audience / "counts.csv").open(encoding="utf-8", newline="") as handle:
        return next(
            r["value"]
            for r in csv.DictReader(handle)
            if (r["indicator"], r["period"], r["dimension"], r["category"]) == key
        )


def test_late_submission_is_listed_with_old_and_new_value(published_once: Settings) -> None:
    settings = published_once
    assert restatements(settings, "internal") == {}
    before = int(value(settings, "internal", TOTAL_Q2))
    rows = read_export(settings.path)
    write_export(settings.path, [*rows, late_submission(rows, settings)])
    sync(settings.path)
    render_reports(settings, audiences=["internal", "donor"], as_of=AS_OF)

    log = restatements(settings, "internal")
    row = log[TOTAL_Q2]
    assert (int(row["old"]), int(row["new"])) == (before, before + 1)
    assert row["reason"].startswith("1 new submissions synced since ")
    for period in ("FY2026", "LOP"):
        changed = log[("identified_or_referred", period, "total", "all")]
        assert int(changed["new"]) == int(changed["old"]) + 1
    assert ("identified_or_referred", "FY2027", "total", "all") not in log, "FY2027 did not change"
    assert all(key[1] != "FY2027 Q2" for key in log), "the running quarter is never restated"
    html = (settings.report.out_dir / "internal" / "report.html").read_text(encoding="utf-8")
    assert "1 new submissions synced since" in html.split('id="restatements"')[1]

    # One more person in an ended quarter is a revision of 1: the donor is not shown it (contract section
    # 6), the quarter keeps the value first published and the internal report says it is held back.
    assert value(settings, "donor", TOTAL_Q2) in (str(before), "<5", "x")
    assert restatements(settings, "donor") == {}
    held = html.split('id="held-revisions"')[1]
    assert "FY2026 Q2" in held and "a period total would move by fewer than" in held

    render_reports(settings, audiences=["internal"], as_of=AS_OF)
    assert restatements(settings, "internal") == {}, "nothing changed since the last report"


def test_edit_and_deletion_are_reasons(published_once: Settings) -> None:
    settings = published_once
    rows = read_export(settings.path)
    edited = counted_row(rows, settings)
    gone = counted_row([r for r in rows if r is not edited], settings)
    edited["person/gender"] = "male" if edited.get("person/gender") != "male" else "female"
    edited["_uuid"] = "edited-0001"
    write_export(settings.path, [r for r in rows if r is not gone])
    sync(settings.path)
    render_reports(settings, audiences=["internal"], as_of=AS_OF)
    log = restatements(settings, "internal")
    assert log, "an edit and a deletion of counted submissions change published cells"
    reasons = {r["reason"] for r in log.values()}
    assert len(reasons) == 1
    assert "1 edited, 1 deleted submissions synced since" in reasons.pop()
    with open_store(settings) as store:
        (saved,) = store.releases("internal", last=True)
    cells = zip(*(saved.cells[c] for c in ("indicator", "period", "dimension", "category")), strict=True)
    published = dict(zip(cells, saved.cells["published"], strict=True))
    assert published[TOTAL_Q2] == value(settings, "internal", TOTAL_Q2)


def test_donor_report_says_published_figures_were_revised(published_once: Settings) -> None:
    """Ten late persons alike move every cell they touch by 10: a revision the donor is shown,
    and its report says so, pointing at the list."""
    settings = published_once
    rows = read_export(settings.path)
    first = late_submission(rows, settings)
    late = []
    for number in range(10):
        row = copy.deepcopy(first)
        row.update(
            {
                "_id": first["_id"] + number,
                "_uuid": f"late-{number:04d}",
                "meta/instanceID": f"uuid:late-{number:04d}",
                "person/uic_given": "Zq",
                "person/uic_mother": f"X{'abcdefghij'[number]}",
            }
        )
        late.append(row)
    write_export(settings.path, [*rows, *late])
    sync(settings.path)
    render_reports(settings, audiences=["internal", "donor"], as_of=AS_OF)
    revised = restatements(settings, "donor")
    assert revised, "a revision of 10 in every cell it touches is published"
    for audience in ("donor",):
        html = (settings.report.out_dir / audience / "report.html").read_text(encoding="utf-8")
        banner = (
            f'<a href="restatements.csv">{len(revised)} figure(s) published in an earlier edition changed'
        )
        assert banner in html
        markdown = (settings.report.out_dir / audience / "report.md").read_text(encoding="utf-8")
        assert f"> {len(revised)} figure(s) published in an earlier edition changed" in markdown
    render_reports(settings, audiences=["donor"], as_of=AS_OF)
    html = (settings.report.out_dir / "donor" / "report.html").read_text(encoding="utf-8")
    assert "published in an earlier edition changed" not in html, "nothing changed since that edition"
