"""Sync from a fake ODK Central on loopback into the real SQLite store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from fakes import tip_answers
from fakes.central_server import FakeCentral, from_kobo, nested
from fakes.fixtures import CENTRAL_EMAIL_ENV, CENTRAL_PASSWORD_ENV
from kobo_tip import indicator
from kobo_tip.cli import main
from kobo_tip.config import Settings, load_settings
from kobo_tip.errors import ServerError
from kobo_tip.sources.odk_central import CHANGED, CURSOR, CentralSource
from kobo_tip.store import StoredSubmission, open_store
from kobo_tip.sync import SyncSummary, run_sync

HOUR = 3600


def central_section(fake: FakeCentral, page_size: int = 10) -> str:
    return (
        f'kind = "odk_central"\nurl = "{fake.url}"\nproject_id = {fake.project_id}\n'
        f'username_env = "{CENTRAL_EMAIL_ENV}"\npassword_env = "{CENTRAL_PASSWORD_ENV}"\n'
        f"page_size = {page_size}"
    )


@pytest.fixture
def settings(make_project: Callable[..., Path], central: FakeCentral, secret: str) -> Settings:
    return load_settings(make_project(source=central_section(central)))


def sync(settings: Settings, *, full: bool = False) -> SyncSummary:
    """One sync with short timeouts and no backoff, so fault tests stay fast."""
    source = dataclasses.replace(
        CentralSource.from_settings(settings), timeout=(2.0, 0.5), retries=2, backoff=0.0
    )
    return run_sync(settings, full=full, progress=False, source=source)


def stored(settings: Settings) -> dict[str, StoredSubmission]:
    with open_store(settings) as store:
        return {row.submission_id: row for row in store.submissions()}


def watermark(settings: Settings, name: str) -> str | None:
    with open_store(settings) as store:
        return store.watermark(name)


def add(central: FakeCentral, n: int, seed: int = 1, **options: object) -> list[str]:
    rng = random.Random(seed)
    return [central.add_submission(nested(tip_answers(rng)), **options) for _ in range(n)]


def test_first_sync_follows_next_links_and_stores_every_row(central: FakeCentral, settings: Settings) -> None:
    ids = add(central, 25)
    central.review(ids[3], "approved")
    central.review(ids[4], "hasIssues")
    central.review(ids[5], "rejected")
    summary = sync(settings)
    rows = stored(settings)
    assert set(rows) == set(ids) and summary.new == 25
    queries = central.odata_requests()
    pages = [q for q in queries if "$expand" in q]
    assert len(pages) == 3  # 10 + 10 + 5 rows
    assert all(q["$expand"] == ["*"] and q["$count"] == ["true"] and q["$top"] == ["10"] for q in pages)
    assert "$skiptoken" not in pages[0] and all("$skiptoken" in q for q in pages[1:])
    assert not any("$orderby" in q for q in queries)
    assert {rows[i].review_status for i in ids[3:6]} == {"approved", "on_hold", "rejected"}
    assert rows[ids[0]].review_status == "unreviewed"
    first = rows[ids[0]]
    assert first.version_id == ids[0]  # meta/instanceID of the first version
    assert first.submitted_at == "2026-01-05T08:00:01"
    assert first.form_version == "20251001000000"  # the form_version answer
    assert isinstance(first.data["person"]["age_years"], int)  # nested groups kept as sent
    assert indicator.UIC_GIVEN not in json.dumps(first.data)
    assert first.key_basis in ("uic", "case_ref", "submission")
    assert watermark(settings, CURSOR) == ""


def test_second_sync_fetches_only_what_changed(central: FakeCentral, settings: Settings) -> None:
    ids = add(central, 25)
    central.tick(HOUR)  # older than the overlap window of the next pull
    central.review(ids[7], "hasIssues")
    sync(settings)
    central.tick(HOUR)
    new_version = central.edit(ids[7], lambda data: data["event"].update(action="referred"))
    central.review(ids[8], "approved")
    (new_id,) = add(central, 1, seed=9)
    summary = sync(settings)
    last = [q for q in central.odata_requests() if "$expand" in q][-1]
    assert (
        "__system/submissionDate gt" in last["$filter"][0] and "__system/updatedAt gt" in last["$filter"][0]
    )
    assert summary.new == 1 and summary.edited == 1 and summary.fetched == 3
    rows = stored(settings)
    assert rows[ids[7]].version_id == new_version
    assert rows[ids[7]].data["event"]["action"] == "referred"
    assert rows[ids[7]].review_status == "unreviewed"  # 'edited': the new version is not reviewed
    assert rows[ids[8]].review_status == "approved"
    assert new_id in rows and len(rows) == 26


def persons(settings: Settings) -> int:
    """The LOP headline: distinct persons identified or referred, as counting gives it."""
    from kobo_tip.cases import cases_from_table
    from kobo_tip.counting import count_indicator

    with open_store(settings) as store:
        cases = cases_from_table(store.answer_table(), settings)
    counts = count_indicator(cases, settings, dt.date(2026, 9, 1)).counts
    headline = counts[
        (counts.indicator == indicator.HEADLINE_VARIANT)
        & (counts.period == "LOP")
        & (counts.dimension == "total")
    ]
    return int(headline.value.iloc[0])


def three_persons(central: FakeCentral) -> list[str]:
    """Three eligible submissions of three different persons (each consents, has its own UIC)."""
    ids = []
    for number, given in enumerate(("AN", "BO", "CU")):
        answers = tip_answers(random.Random(number))
        answers.update({"intro/consent": "yes", "person/uic_given": given, "event/event_date": "2025-11-03"})
        ids.append(central.add_submission(nested(answers)))
    return ids


def test_an_edited_approved_submission_counts_again_only_once_approved(
    central: FakeCentral, make_project: Callable[..., Path]
) -> None:
    config = make_project(
        source=central_section(central), indicator="require_approved = true\nage_bands = [0, 5, 12, 18, 60]"
    )
    settings = load_settings(config)
    first, second, _ = three_persons(central)
    central.review(first, "approved")
    central.review(second, "approved")
    central.tick(HOUR)
    sync(settings)
    assert persons(settings) == 2  # the third is unreviewed
    central.tick(HOUR)
    central.edit(first, lambda data: data["event"].update(action="identified referred"))
    summary = sync(settings)
    assert summary.edited == 1 and stored(settings)[first].review_status == "unreviewed"
    assert persons(settings) == 1  # Central shows the edit as not reviewed: it waits for approval
    central.tick(HOUR)
    central.review(first, "approved")
    sync(settings)
    assert stored(settings)[first].review_status == "approved" and persons(settings) == 2


def test_deletions_and_purges(central: FakeCentral, settings: Settings) -> None:
    ids = add(central, 12)
    central.tick(HOUR)
    add(central, 1, seed=2)  # the newest stamp: ids are now older than the overlap window
    sync(settings)
    central.tick(HOUR)
    central.delete(ids[0])
    summary = sync(settings)
    assert summary.deleted == 1 and stored(settings)[ids[0]].deleted
    deletions = [q for q in central.odata_requests() if "deletedAt gt" in q.get("$filter", [""])[0]]
    assert deletions and deletions[-1]["$select"] == ["__id,__system"]
    central.tick(HOUR)
    central.purge(ids[1])  # gone without a trace: only the full id check finds it
    summary = sync(settings, full=True)
    rows = stored(settings)
    assert rows[ids[0]].deleted and rows[ids[1]].deleted
    assert summary.deleted == 1


def restore_queries(central: FakeCentral, before: int) -> list[str]:
    return [
        q["$filter"][0]
        for q in central.odata_requests()[before:]
        if q.get("$filter", [""])[0].startswith("__system/deletedAt eq null")
    ]


def test_a_restore_on_central_is_seen_by_the_next_incremental_sync(
    central: FakeCentral, settings: Settings
) -> None:
    ids = add(central, 6)
    central.tick(HOUR)
    add(central, 1, seed=2)  # the newest stamp: ids are now older than the overlap window
    sync(settings)
    assert persons(settings) == 7  # seven distinct persons
    before = len(central.odata_requests())
    sync(settings)
    assert restore_queries(central, before) == [], "nothing deleted: no restore query"
    central.tick(HOUR)
    for sid in ids[:3]:
        central.delete(sid)
    assert sync(settings).deleted == 3 and persons(settings) == 4
    central.tick(HOUR)
    stamps = (central.submissions[ids[0]].updated_at, central.submissions[ids[0]].submission_date)
    central.restore(ids[0])  # Central clears deletedAt and nothing else
    assert (central.submissions[ids[0]].updated_at, central.submissions[ids[0]].submission_date) == stamps
    before = len(central.odata_requests())
    summary = sync(settings)  # incremental: no reconcile is due
    rows = stored(settings)
    assert not rows[ids[0]].deleted and rows[ids[1]].deleted and rows[ids[2]].deleted
    assert summary.new == summary.restored == 1 and persons(settings) == 5
    assert " 1 new (1 of them restored after a deletion), 0 edited" in summary.line()
    # One query, for the ids the store holds as deleted; Central answers with the restored row only.
    (query,) = restore_queries(central, before)
    prefix = "__system/deletedAt eq null and ("
    assert query.startswith(prefix) and query.endswith(")")
    assert sorted(query[len(prefix) : -1].split(" or ")) == sorted(f"__id eq '{sid}'" for sid in ids[:3])
    before = len(central.odata_requests())
    again = sync(settings)  # asked again, nothing more restored
    assert (again.new, again.restored) == (0, 0) and "restored" not in again.line()
    assert len(restore_queries(central, before)) == 1


def test_only_deletions_within_centrals_purge_window_are_asked_about(
    central: FakeCentral, settings: Settings
) -> None:
    ids = add(central, 3)
    central.tick(HOUR)
    add(central, 1, seed=2)
    sync(settings)
    central.tick(HOUR)
    central.delete(ids[0])
    central.delete(ids[1])
    sync(settings)
    with open_store(settings) as store:  # deleted 32 days ago: purged on Central by now
        long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=32)).strftime("%Y-%m-%dT%H:%M:%SZ")
        store._db.execute("UPDATE submissions SET deleted_at = ? WHERE submission_id = ?", (long_ago, ids[0]))
        store._db.commit()
    before = len(central.odata_requests())
    sync(settings)
    assert restore_queries(central, before) == [f"__system/deletedAt eq null and (__id eq '{ids[1]}')"]


def test_reconcile_repairs_drifted_rows_and_fetches_only_those(
    central: FakeCentral, make_project: Callable[..., Path]
) -> None:
    settings = load_settings(make_project(source=central_section(central) + "\nreconcile_hours = 0"))
    ids = add(central, 3)
    central.tick(HOUR)
    add(central, 1, seed=2)  # the newest stamp: ids are older than the next pull's overlap window
    sync(settings)
    with open_store(settings) as store:  # drift, e.g. a store restored from a backup
        store._db.execute(
            "UPDATE submissions SET review_status = 'approved' WHERE submission_id = ?", (ids[0],)
        )
        store._db.execute("UPDATE submissions SET version_id = 'uuid:old' WHERE submission_id = ?", (ids[1],))
        store._db.commit()
    before = len(central.odata_requests())
    summary = sync(settings)  # a due reconcile (reconcile_hours = 0), not --full
    rows = stored(settings)
    assert rows[ids[0]].review_status == "unreviewed" and rows[ids[1]].version_id == ids[1]
    assert summary.status_changed == 1 and summary.edited == 1
    refetch = [
        q["$filter"] for q in central.odata_requests()[before:] if "__id eq" in q.get("$filter", [""])[0]
    ]
    assert refetch == [[f"__id eq '{ids[1]}'"]]


def test_repeats_come_expanded(central: FakeCentral, settings: Settings) -> None:
    rng = random.Random(3)
    data = nested(tip_answers(rng))
    data["household"] = [{"member_age": 4}, {"member_age": 40}]
    sid = central.add_submission(data)
    sync(settings)
    assert stored(settings)[sid].data["household"] == [{"member_age": 4}, {"member_age": 40}]


def test_a_change_made_while_paging_is_not_lost(central: FakeCentral, settings: Settings) -> None:
    """Pages come newest first: an edit to a row on a page already read, followed by a change to a
    row on a later page, must not push the watermark past the edit."""
    ids = add(central, 25)  # pages: ids[24..15], ids[14..5], ids[4..0]
    edits: dict[str, str] = {}

    def meddle(served: int) -> None:
        if served == 1:  # page 1 was read
            central.tick(HOUR)
            edits["newest"] = central.edit(ids[24], lambda data: data["event"].update(action="identified"))
            central.tick(HOUR)
            central.review(ids[0], "approved")  # sits on page 3: the newest stamp this pass sees

    central.before_odata = meddle
    sync(settings)
    central.before_odata = None
    assert stored(settings)[ids[24]].version_id == ids[24]  # page 1 was read before the edit
    central.tick(HOUR)
    sync(settings)
    assert stored(settings)[ids[24]].version_id == edits["newest"]


def test_expired_sessions_are_renewed_during_a_long_run(central: FakeCentral, settings: Settings) -> None:
    ids = add(central, 25)
    central.token_uses = 2  # every session dies after two requests
    sync(settings)
    assert set(stored(settings)) == set(ids)
    assert central.logins >= 3


def test_a_401_right_after_logging_in_again_fails_clearly(central: FakeCentral, settings: Settings) -> None:
    add(central, 3)
    central.inject(".svc/Submissions", status=401, count=2)
    with pytest.raises(ServerError, match=rf"HTTP 401.*{CENTRAL_EMAIL_ENV}.*{CENTRAL_PASSWORD_ENV}"):
        sync(settings)
    assert central.logins == 2


def test_server_errors_and_timeouts_are_retried(central: FakeCentral, settings: Settings) -> None:
    ids = add(central, 15)
    central.inject(".svc/Submissions", status=503, count=2)
    central.inject(".svc/Submissions", status=0, delay=1.0, count=1, after=1)  # a read timeout
    sync(settings)
    assert set(stored(settings)) == set(ids)


def test_a_server_that_never_answers_in_time_fails_clearly(central: FakeCentral, settings: Settings) -> None:
    add(central, 3)
    central.inject(".svc/Submissions", status=0, delay=1.0, count=10)
    with pytest.raises(ServerError, match="in time"):
        sync(settings)
    assert stored(settings) == {}


def test_a_failed_page_keeps_earlier_pages_and_the_next_sync_resumes(
    central: FakeCentral, settings: Settings
) -> None:
    ids = add(central, 25)
    central.inject(".svc/Submissions", status=500, count=10, after=1)
    with pytest.raises(ServerError, match=r"HTTP 500"):
        sync(settings)
    assert len(stored(settings)) == 10
    cursor = watermark(settings, CURSOR)
    assert cursor and "skiptoken" in cursor and watermark(settings, CHANGED) is None
    central.faults.clear()
    before = len(central.odata_requests())
    summary = sync(settings)
    resumed = central.odata_requests()[before]
    assert "$skiptoken" in resumed  # went on from page 2, not from the top
    assert set(stored(settings)) == set(ids) and summary.new == 15


def test_a_project_central_does_not_have_is_named_in_one_sentence(
    central: FakeCentral, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_project(source=central_section(central).replace("project_id = 1", "project_id = 9"))
    assert main(["sync", "-c", str(config)]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: ODK Central answered 'not found' to the request for the submissions of form tip_victims "
        "in project 9 (HTTP 404, error 404.1: Could not find the resource you were looking for): "
        "check [source] url, project_id and form_id."
    )


def test_kobo_tip_sync_command(central: FakeCentral, make_project: Callable[..., Path]) -> None:
    ids = add(central, 4)
    config = make_project(source=central_section(central))
    assert main(["sync", "-c", str(config), "--no-report"]) == 0
    settings = load_settings(config)
    assert set(stored(settings)) == set(ids)
    with open_store(settings) as store:
        store._db.execute("PRAGMA wal_checkpoint(FULL)")
    saved = b"".join(path.read_bytes() for path in settings.store.path.parent.iterdir() if path.is_file())
    assert central.password.encode() not in saved
    assert central.issued and not any(token.encode() in saved for token in central.issued)
    assert central.tokens == {}  # logged out at the end of the sync


def test_same_scenario_from_kobo_and_from_central_gives_identical_counts(
    central: FakeCentral, make_project: Callable[..., Path]
) -> None:
    from kobo_tip.report import render_reports
    from kobo_tip.synthetic import generate_submissions

    csv_only = 'out_dir = "reports"\naudiences = ["internal", "donor"]\nformats = ["csv"]'
    kobo_config = make_project("kobo", source='kind = "file"\npath = "data/export.json"', report=csv_only)
    kobo_settings = load_settings(kobo_config)
    as_of = dt.date(2026, 7, 1)
    rows = generate_submissions(
        300,
        seed=11,
        roster=kobo_settings.form.roster,
        locations=kobo_settings.form.locations,
        start_date=kobo_settings.project.start_date,
        end_date=kobo_settings.project.end_date,
        as_of=as_of,
    )
    export = kobo_config.parent / "data" / "export.json"
    export.parent.mkdir()
    export.write_text(json.dumps(rows), encoding="utf-8")
    central.now = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    for row in rows:
        data, received, review = from_kobo(row)
        central.add_submission(data, submitted=received, review_state=review, form_version="20251001000000")
    central_settings = load_settings(
        make_project("central", source=central_section(central, page_size=100), report=csv_only)
    )

    run_sync(kobo_settings, progress=False)
    sync(central_settings)
    kobo_rows, central_rows = stored(kobo_settings), stored(central_settings)
    assert len(kobo_rows) == len(central_rows) == 300

    def linked(rows: dict[str, StoredSubmission]) -> list[tuple[str, str]]:
        # A record that cannot be linked is keyed on its own id, which differs between servers.
        return sorted(
            (r.key_basis, r.person_key if r.key_basis != "submission" else "") for r in rows.values()
        )

    assert linked(kobo_rows) == linked(central_rows)
    assert sorted(r.review_status for r in kobo_rows.values()) == sorted(
        r.review_status for r in central_rows.values()
    )

    outputs = []
    for settings in (kobo_settings, central_settings):
        written = render_reports(settings, audiences=["internal", "donor"], as_of=as_of)
        outputs.append({p.relative_to(settings.report.out_dir): p for p in written if p.name == "counts.csv"})
    assert set(outputs[0]) == set(outputs[1]) == {Path("internal/counts.csv"), Path("donor/counts.csv")}
    for name, kobo_path in outputs[0].items():
        kobo_counts = kobo_path.read_text(encoding="utf-8")
        assert kobo_counts == outputs[1][name].read_text(encoding="utf-8")
        assert len(kobo_counts.splitlines()) > 100
    totals = [
        line
        for line in outputs[0][Path("internal/counts.csv")].read_text(encoding="utf-8").splitlines()
        if line.startswith("identified_or_referred,LOP,") and ",total,all," in line
    ]
    assert totals and int(totals[0].rsplit(",", 1)[1]) > 0


def test_progress_bar_has_the_total_central_counts(
    central: FakeCentral, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    add(central, 25)
    source = dataclasses.replace(CentralSource.from_settings(settings), page_size=10)
    run_sync(settings, progress=True, source=source)
    assert "25/25" in capsys.readouterr().err, "the bar counts towards @odata.count"
