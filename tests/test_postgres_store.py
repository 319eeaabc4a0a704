"""The PostgreSQL store as officers use it: projects in schemas of one database, synced at once,
each role seeing its own, reports read while a sync writes, and the same reports as SQLite's.

The store's own behaviour on both back ends is in test_store.py and test_kobo_sync.py (every test
there runs on each); this module holds what only a shared database has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, SECRET
from kobo_tip.cli import main
from kobo_tip.config import load_settings
from kobo_tip.errors import ConfigError, StoreError
from kobo_tip.report import render_reports
from kobo_tip.store import SCHEMA_VERSION, SqliteStore, open_store
from kobo_tip.store.copy import checks
from kobo_tip.store.postgres import LEDGER_TABLES, PostgresStore
from kobo_tip.sync import run_sync
from pg_cluster import PostgresCluster
from report_project import AS_OF, make_project

SYNC = ("sync", "--no-report")
SCHEMA_LINE = re.compile(r"(?ms)^\[store\]\n.*?(?=^\[|\Z)")


def on_postgres(config: Path, url: str, schema: str, **more: str) -> Path:
    """The project at ``config`` with its store in schema ``schema`` of the database at ``url``."""
    lines = [f'url = "{url}"', f'schema = "{schema}"', *(f'{key} = "{value}"' for key, value in more.items())]
    text = SCHEMA_LINE.sub("[store]\n" + "\n".join(lines) + "\n\n", config.read_text(encoding="utf-8"))
    config.write_text(text, encoding="utf-8")
    return config


def kobo_tip(config: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kobo_tip", *argv, "-c", str(config)],
        env={**os.environ, "KOBO_TIP_SECRET": SECRET, "PYTHONPATH": str(REPO / "src"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    return SECRET


def test_a_project_in_postgres_reports_exactly_what_it_reports_from_sqlite(
    tmp_path: Path, pg_database: str, secret: str
) -> None:
    embedded = load_settings(make_project(tmp_path / "sqlite"))
    shared = load_settings(on_postgres(make_project(tmp_path / "postgres"), pg_database, "thailand"))
    for settings in (embedded, shared):
        run_sync(settings, progress=False)
        render_reports(settings, audiences=("internal", "donor"), as_of=AS_OF)
    for audience in ("internal", "donor"):
        for name in ("counts.csv", "restatements.csv"):
            ours = (shared.report.out_dir / audience / name).read_bytes()
            assert ours == (embedded.report.out_dir / audience / name).read_bytes(), (audience, name)
    with open_store(shared, create=False) as store:
        assert [r.audience for r in [*store.releases("donor"), *store.releases("internal")]] == [
            "donor",
            "internal",
        ]
    assert not shared.store.path.exists(), "nothing of it went to a file"


def test_two_projects_sync_at_once_into_one_database_and_each_role_sees_only_its_own(
    tmp_path: Path, postgres: PostgresCluster, pg_database: str, secret: str
) -> None:
    configs = {
        schema: on_postgres(make_project(tmp_path / schema, submissions=400), pg_database, schema)
        for schema in ("thailand", "cambodia")
    }
    for config in configs.values():  # the owner makes each project's schema, then grants it
        assert kobo_tip(config, "store", "migrate").returncode == 0
    runs: dict[str, subprocess.CompletedProcess[str]] = {}
    threads = [
        threading.Thread(
            target=lambda s=schema: runs.__setitem__(s, kobo_tip(configs[s], "sync", "--no-report"))
        )
        for schema in configs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for schema, done in runs.items():
        assert done.returncode == 0, (schema, done.stderr)
        assert "401 new" in done.stdout, done.stdout  # 400 and the hostile one of report_project
    database = pg_database.rsplit("/", 1)[1].split("?", 1)[0]
    officer = f"th_officer_{database[-6:]}"
    postgres.create_role(officer)
    postgres.execute(f"GRANT USAGE ON SCHEMA thailand TO {officer}", database=database)
    postgres.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA thailand TO {officer}",
        database=database,
    )
    as_officer = postgres.url(database, user=officer)
    thai = load_settings(on_postgres(configs["thailand"], as_officer, "thailand"))
    with open_store(thai, create=False) as store:
        assert store.counts().submissions == 401
    cambodian = load_settings(on_postgres(configs["cambodia"], as_officer, "cambodia"))
    with pytest.raises(StoreError, match=r"no right to do this on .* schema cambodia"):
        open_store(cambodian, create=False)
    with psycopg.connect(as_officer) as connection, pytest.raises(psycopg.errors.InsufficientPrivilege):
        connection.execute("SELECT count(*) FROM cambodia.submissions")


def test_a_second_sync_of_one_project_says_so_in_one_sentence(
    tmp_path: Path, pg_database: str, secret: str
) -> None:
    config = on_postgres(make_project(tmp_path / "p", submissions=50), pg_database, "laos")
    settings = load_settings(config)
    with open_store(settings) as store, store.lock_for_sync():
        done = kobo_tip(config, "sync", "--no-report")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert re.fullmatch(r".*Another kobo-tip sync \(server process \d+\) is running on .*schema laos.*", line)
    assert kobo_tip(config, "sync", "--no-report").returncode == 0, "free again once the first has ended"


def test_reports_render_while_a_sync_writes(tmp_path: Path, pg_database: str, secret: str) -> None:
    config = on_postgres(make_project(tmp_path / "p", submissions=200), pg_database, "myanmar")
    settings = load_settings(config)
    run_sync(settings, progress=False)
    big = load_settings(on_postgres(make_project(tmp_path / "big", submissions=3000), pg_database, "myanmar"))
    sync = subprocess.Popen(
        [sys.executable, "-m", "kobo_tip", "sync", "--no-report", "-c", str(big.path)],
        env={**os.environ, "KOBO_TIP_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    renders = 0
    while sync.poll() is None or renders == 0:
        render_reports(settings, audiences=("internal",), as_of=AS_OF)
        renders += 1
    _, err = sync.communicate()
    assert sync.returncode == 0, err
    assert renders >= 1 and (settings.report.out_dir / "internal" / "counts.csv").exists()


def test_a_reporting_role_reports_and_shows_status_but_cannot_sync(
    tmp_path: Path, postgres: PostgresCluster, pg_database: str, secret: str
) -> None:
    config = on_postgres(make_project(tmp_path / "p", submissions=100), pg_database, "vietnam")
    assert kobo_tip(config, "sync", "--no-report").returncode == 0
    database = pg_database.rsplit("/", 1)[1].split("?", 1)[0]
    # The README's reporting role: it reads everything, and records what each audience was shown.
    _, reader = readme_roles(postgres, database, "vietnam")
    as_reader = on_postgres(config, postgres.url(database, user=reader), "vietnam")
    report = kobo_tip(as_reader, "report", "--as-of", AS_OF.isoformat())
    assert report.returncode == 0, report.stderr
    status = kobo_tip(as_reader, "status")
    assert status.returncode == 0 and "submissions: 101" in status.stdout, status.stdout + status.stderr
    sync = kobo_tip(as_reader, "sync", "--no-report")
    assert sync.returncode == 1
    assert "no right to do this" in sync.stderr and "Traceback" not in sync.stderr


def test_a_password_never_goes_in_the_config(tmp_path: Path, pg_database: str, secret: str) -> None:
    config = make_project(tmp_path / "p", submissions=10)
    with_password = pg_database.replace("postgres@", "postgres:hunter2hunter2@")
    on_postgres(config, with_password, "peru")
    with pytest.raises(ConfigError, match="holds a password") as refused:
        load_settings(config)
    assert "hunter2" not in str(refused.value)
    # Every other way a libpq URL gives a password, or says where to read one.
    forms = [
        "?password=hunter2hunter2",
        "?pass%77ord=hunter2hunter2",
        "?host=/tmp&password=hunter2hunter2",
        "?passfile=/tmp/hunter2hunter2",
        "?sslpassword=hunter2hunter2",
    ]
    joiner = "&" if "?" in pg_database else "?"
    for form in forms:
        url = pg_database + joiner + form[1:]
        on_postgres(config, url, "peru")
        with pytest.raises(ConfigError, match="holds a password") as refused:
            load_settings(config)
        assert "hunter2" not in str(refused.value)
        on_postgres(config, pg_database, "peru")
        copied = kobo_tip(config, "store", "copy", "--to", url, "--schema", "peru_copy")
        assert copied.returncode == 2 and "holds a password" in copied.stderr, (form, copied.stderr)
        assert "hunter2" not in copied.stderr and len(copied.stderr.strip().splitlines()) == 1
    on_postgres(config, pg_database, "peru", password_env="KOBO_TIP_TEST_PG_PASSWORD")
    done = kobo_tip(config, "sync", "--no-report")
    assert done.returncode == 2 and "KOBO_TIP_TEST_PG_PASSWORD is not set" in done.stderr


def test_a_schema_named_like_postgres_own_is_refused_in_one_sentence(
    tmp_path: Path, pg_database: str, secret: str
) -> None:
    config = on_postgres(make_project(tmp_path / "p", submissions=10), pg_database, "pg_project")
    done = kobo_tip(config, "sync", "--no-report")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "starts with 'pg_', which PostgreSQL keeps for its own schemas" in line
    assert "ReservedName" not in line


def test_a_schema_of_another_version_is_a_clear_error_never_a_silent_change(
    tmp_path: Path, pg_database: str, secret: str
) -> None:
    config = on_postgres(make_project(tmp_path / "p", submissions=10), pg_database, "chile")
    created = kobo_tip(config, "store", "migrate")
    assert created.returncode == 0 and f"schema chile is at schema version {SCHEMA_VERSION}" in created.stdout
    store = PostgresStore.connect(pg_database, "chile")
    store._db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    done = kobo_tip(config, "sync", "--no-report")
    assert (
        done.returncode == 1
        and f"schema version 99, this kobo-tip reads version {SCHEMA_VERSION}" in done.stderr
    )
    assert main(["status", "-c", str(config)]) == 1


def test_a_sqlite_store_copied_into_postgres_and_back_loses_nothing(
    tmp_path: Path, pg_database: str, secret: str
) -> None:
    config = make_project(tmp_path / "p", submissions=300)
    settings = load_settings(config)
    run_sync(settings, progress=False)
    render_reports(settings, audiences=("internal", "donor"), as_of=AS_OF)
    before = (settings.report.out_dir / "donor" / "counts.csv").read_bytes()
    copied = kobo_tip(config, "store", "copy", "--to", pg_database, "--schema", "moved")
    assert copied.returncode == 0, copied.stderr
    assert "submissions 301" in copied.stdout and "counts and SHA-256 agree" in copied.stdout
    again = kobo_tip(config, "store", "copy", "--to", pg_database, "--schema", "moved")
    assert again.returncode == 1 and "already holds a store" in again.stderr
    moved = load_settings(on_postgres(config, pg_database, "moved"))
    with open_store(moved, create=False) as store:
        assert store.counts().submissions == 301
        assert [r.audience for r in store.releases("donor")] == ["donor"]
        run = store.begin_run("after the copy")  # the run ids go on after the copied ones
        assert run > max(r.id for r in store.runs(50) if r.id != run)
        store.finish_run(run, seconds=0)
    # The next donor release is audited against the copied history: the same cells again.
    render_reports(moved, audiences=("internal", "donor"), as_of=AS_OF)
    assert (moved.report.out_dir / "donor" / "counts.csv").read_bytes() == before
    back = kobo_tip(
        on_postgres(config, pg_database, "moved"), "store", "copy", "--to", str(tmp_path / "b.sqlite")
    )
    assert back.returncode == 0, back.stderr
    with SqliteStore.open(tmp_path / "b.sqlite") as returned, open_store(moved, create=False) as store:
        assert checks(returned) == checks(store)


def readme_roles(postgres: PostgresCluster, database: str, schema: str) -> tuple[str, str]:
    """The README's two roles of ``schema`` (the officer's sync role and the reporting role)."""
    sync, report = f"sync_{database[-6:]}", f"report_{database[-6:]}"
    for role in (sync, report):
        postgres.create_role(role)
    for grant in (
        f"GRANT USAGE ON SCHEMA {schema} TO {sync}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {sync}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {sync}",
        f"GRANT USAGE ON SCHEMA {schema} TO {report}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {report}",
        f"GRANT INSERT, DELETE ON {schema}.releases TO {report}",
        f"GRANT INSERT ON {', '.join(f'{schema}.{table}' for table in LEDGER_TABLES)} TO {report}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {report}",
    ):
        postgres.execute(grant, database=database)
    return sync, report


def test_no_project_role_can_remove_an_outside_release_and_a_cut_history_stops_the_next_release(
    tmp_path: Path, postgres: PostgresCluster, pg_database: str, secret: str
) -> None:
    config = on_postgres(make_project(tmp_path / "p", submissions=200), pg_database, "ghana")
    assert kobo_tip(config, "store", "migrate").returncode == 0  # as the owner
    owner = load_settings(config)
    run_sync(owner, progress=False)
    render_reports(owner, audiences=("internal", "donor"), as_of=AS_OF)
    database = pg_database.rsplit("/", 1)[1].split("?", 1)[0]
    sync, report = readme_roles(postgres, database, "ghana")

    def count(where: str) -> int:
        found = postgres.execute(f"SELECT count(*) FROM ghana.releases WHERE {where}", database=database)
        return int(found[0][0])

    # The reporting role renders (it records releases and prunes its internal renders) ...
    as_reporter = on_postgres(config, postgres.url(database, user=report), "ghana")
    for _ in range(7):
        done = kobo_tip(as_reporter, "report", "--as-of", AS_OF.isoformat(), "--audience", "internal")
        assert done.returncode == 0, done.stderr
    assert count("k = 0") == 5, "internal renders are still pruned to the last five"
    # ... but neither it nor the sync role can remove, alter or uncount an outside release.
    for role in (report, sync):
        with psycopg.connect(postgres.url(database, user=role), autocommit=True) as connection:
            assert connection.execute("DELETE FROM ghana.releases WHERE audience = 'donor'").rowcount == 0
            if role == sync:  # it holds UPDATE on every table; the row policies give it no row
                assert connection.execute("UPDATE ghana.releases SET k = 0").rowcount == 0
                assert connection.execute("UPDATE ghana.release_marks SET released = 0").rowcount == 0
                assert connection.execute("DELETE FROM ghana.release_marks").rowcount == 0
                # Nor unfreeze a quarter released outside (contract section 4, as reported).
                for table in ("ledger_quarters", "ledger_cells", "ledger_persons"):
                    assert connection.execute(f"DELETE FROM ghana.{table}").rowcount == 0
                    assert connection.execute(f"UPDATE ghana.{table} SET quarter = 'x'").rowcount == 0
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    connection.execute("ALTER TABLE ghana.releases DISABLE ROW LEVEL SECURITY")
            else:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    connection.execute("UPDATE ghana.release_marks SET released = 0")
    assert count("audience = 'donor'") == 1
    frozen = postgres.execute("SELECT count(*) FROM ghana.ledger_persons", database=database)
    assert int(frozen[0][0]) > 0, "the donor release froze its quarters in the ledger"
    status = kobo_tip(as_reporter, "status")
    assert status.returncode == 0 and "RELEASES MISSING" not in status.stdout
    # Cut by the owner's hand (or a role made before these policies): status says so, to any role,
    # and the next donor release is refused rather than audited against what is left.
    postgres.execute("DELETE FROM ghana.releases WHERE audience = 'donor'", database=database)
    status = kobo_tip(as_reporter, "status")
    assert status.returncode == 0, status.stderr
    assert "RELEASES MISSING: The donor release history of" in status.stdout
    assert "1 outside release(s) were recorded, 0 are left" in status.stdout
    refused = kobo_tip(as_reporter, "report", "--as-of", AS_OF.isoformat(), "--audience", "donor")
    assert refused.returncode == 1 and "release history of" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_another_projects_role_cannot_take_this_projects_locks(
    tmp_path: Path, postgres: PostgresCluster, pg_database: str, secret: str
) -> None:
    import hashlib

    config = on_postgres(make_project(tmp_path / "p", submissions=20), pg_database, "kenya")
    assert kobo_tip(config, "sync", "--no-report").returncode == 0
    database = pg_database.rsplit("/", 1)[1].split("?", 1)[0]
    stranger = f"stranger_{database[-6:]}"
    postgres.create_role(stranger)  # it may connect, and nothing of kenya is granted to it
    with psycopg.connect(postgres.url(database, user=stranger), autocommit=True) as connection:
        # The keys as they were: the first from the schema's name alone, which anyone can compute.
        named = int.from_bytes(hashlib.sha256(b"kenya").digest()[:4], "big", signed=True)
        for second in (1, 2, 3, 4):
            connection.execute("SELECT pg_advisory_lock(%s, %s)", (named, second))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT value FROM kenya.meta")
        # Held while the project's sync, report and serve lock run: none of them waits for it.
        done = kobo_tip(config, "sync", "--no-report")
        assert done.returncode == 0, done.stderr
        report = kobo_tip(config, "report", "--as-of", AS_OF.isoformat(), "--audience", "internal")
        assert report.returncode == 0, report.stderr
    settings = load_settings(config)
    with open_store(settings, create=False) as store, store.lock_for_sync():
        # Two processes of the project still exclude each other.
        second = kobo_tip(config, "sync", "--no-report")
        assert second.returncode == 1 and "Another kobo-tip sync" in second.stderr


def test_a_version_4_schema_migrates_to_guarded_releases_and_its_own_lock_key(
    tmp_path: Path, postgres: PostgresCluster, pg_database: str, secret: str
) -> None:
    config = on_postgres(make_project(tmp_path / "p", submissions=20), pg_database, "nepal")
    settings = load_settings(config)
    run_sync(settings, progress=False)
    render_reports(settings, audiences=("internal", "donor"), as_of=AS_OF)
    store = PostgresStore.connect(pg_database, "nepal")
    for statement in (  # the schema as version 4 made it
        "DROP TABLE release_marks",
        "DROP TRIGGER count_outside_release ON releases",
        "DROP FUNCTION count_outside_release()",
        "ALTER TABLE releases DISABLE ROW LEVEL SECURITY",
        "DROP POLICY releases_read ON releases",
        "DROP POLICY releases_recorded ON releases",
        "DROP POLICY internal_renders_pruned ON releases",
        *(f"DROP TABLE {table}" for table in LEDGER_TABLES),  # version 5's
        "DROP INDEX submissions_by_change",  # version 7's
        "ALTER TABLE submissions DROP COLUMN changed",
        "DELETE FROM meta WHERE key = 'lock_key'",
        "UPDATE meta SET value = '4' WHERE key = 'schema_version'",
    ):
        store._db.execute(statement)
    store.close()
    done = kobo_tip(config, "sync", "--no-report")
    assert done.returncode == 1 and "run 'kobo-tip store migrate'" in done.stderr
    migrated = kobo_tip(config, "store", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    with open_store(settings, create=False) as opened:
        assert opened.schema_version() == SCHEMA_VERSION and opened.lost_releases() == {}
        assert len(opened.meta_value("lock_key") or "") == 64
    database = pg_database.rsplit("/", 1)[1].split("?", 1)[0]
    marks = postgres.execute("SELECT audience, released FROM nepal.release_marks", database=database)
    assert marks == [("donor", 1)], "the outside releases held at the migration are counted"
    _, report = readme_roles(postgres, database, "nepal")
    with psycopg.connect(postgres.url(database, user=report), autocommit=True) as connection:
        assert connection.execute("DELETE FROM nepal.releases WHERE k > 0").rowcount == 0
    assert kobo_tip(config, "sync", "--no-report").returncode == 0
