"""Shared fixtures (an example project in a temporary folder, the person-key secret, and through
the plugins below the fake servers and the PostgreSQL cluster) and the test tiers."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Every test can ask for the loopback fake servers and the throwaway PostgreSQL cluster by name.
pytest_plugins = ("fakes.fixtures", "pg_cluster")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SECRET = "test-secret-not-for-production"

# The project must work in a clone with nothing beside it: a test that opens a file in a folder
# next to the checkout (a folder of the developers' own, say) fails, in every test of this run.
_BESIDE = str(REPO.parent) + os.sep
_INSIDE = str(REPO) + os.sep
_OPENED_BESIDE: list[str] = []


def _refuse_files_beside_the_repository(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not args or isinstance(args[0], int):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if path.startswith(_BESIDE) and not path.startswith(_INSIDE):
        _OPENED_BESIDE.append(path)
        raise PermissionError(f"a test opened {path}, outside the repository")


# Where the checkout sits in the home folder or at the root, its neighbours are the machine's own.
if REPO.parent not in (Path.home(), Path(REPO.anchor)):
    sys.addaudithook(_refuse_files_beside_the_repository)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _OPENED_BESIDE:
        print(f"\nfiles opened outside the repository: {sorted(set(_OPENED_BESIDE))}")
        session.exitstatus = 1


# The tiers, by file. A file is in the tier of the most its tests need: "unit" needs nothing but the
# venv and runs in seconds (`make test-fast`); "integration" starts the loopback fake servers or a
# throwaway PostgreSQL (both back ends), or runs the pipeline through a store (sync, count, audit,
# render); "system" drives Java (ODK Validate, JavaRosa), Node.js (ODK Web Forms) or headless
# Chromium. A file named in neither set is unit. `make test` runs all three.
INTEGRATION = frozenset(
    {
        "test_benchmarks.py",
        "test_central_deploy.py",
        "test_central_sync.py",
        "test_charts_files.py",
        "test_disclosure.py",
        "test_e2e_counting.py",
        "test_files_source.py",
        "test_fuzz.py",
        "test_hooks.py",
        "test_http.py",
        "test_kobo_deploy.py",
        "test_kobo_sync.py",
        "test_labelled_exports.py",
        "test_ledger.py",
        "test_ledger_reconciliation.py",
        "test_partners.py",
        "test_pg_cluster.py",
        "test_postgres_store.py",
        "test_programme.py",
        "test_recorded_fixtures.py",
        "test_report.py",
        "test_report_cutoff.py",
        "test_report_reading.py",
        "test_report_restatements.py",
        "test_security.py",
        "test_serve.py",
        "test_serve_schedule.py",
        "test_store.py",
        "test_stored_answers.py",
        "test_sync_files.py",
        "test_targets.py",
        "test_targets_groups.py",
        "test_workbook.py",
    }
)
SYSTEM = frozenset(
    {
        "test_cod_ab.py",
        "test_demo.py",
        "test_form.py",
        "test_init.py",
        "test_report_layout.py",
        "test_report_scripts.py",
        "test_system_checks.py",
        "test_translations.py",
        "test_webforms.py",
    }
)
# Fixtures that start a server: a unit test that asks for one belongs to another tier.
_SERVER_FIXTURES = frozenset({"postgres", "pg_database", "central", "listener"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        tier = "system" if name in SYSTEM else "integration" if name in INTEGRATION else "unit"
        servers = _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if tier == "unit" and servers:
            raise pytest.UsageError(
                f"{item.nodeid} starts a server ({', '.join(sorted(servers))}) but its file is in the unit "
                "tier: add the file to INTEGRATION in tests/conftest.py."
            )
        item.add_marker(tier)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set the person-key secret for the test only."""
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    return SECRET


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Write a project folder (config, roster, locations); returns the config path.

    Keyword arguments replace or add config lines: ``make_project(source='kind = "file"\\npath = "x.json"')``
    replaces the whole ``[source]`` section body; other sections likewise.
    """

    def make(folder: str = "project", **sections: str) -> Path:
        return write_project(tmp_path / folder, **sections)

    return make


def write_project(root: Path, **sections: str) -> Path:
    """What ``make_project`` does, in any folder (for module-scoped fixtures); returns the config path."""
    (root / "forms").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "forms" / "stakeholders.csv", root / "forms" / "stakeholders.csv")
    shutil.copy(REPO / "forms" / "locations.csv", root / "forms" / "locations.csv")
    shutil.copy(REPO / "forms" / "referral_directory.csv", root / "forms" / "referral_directory.csv")
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = _replace_sections(text, {"source": 'kind = "file"\npath = "data/export.json"', **sections})
    config = root / "kobo-tip.toml"
    config.write_text(text, encoding="utf-8")
    return config


@pytest.fixture
def example_project(make_project: Callable[..., Path]) -> Path:
    """The example config with a file source at data/export.json."""
    return make_project()


def version_2_store(path: Path) -> None:
    """A store as kobo-tip 0.1 left it (schema 2): publications instead of releases, no column for
    the organisation of a stakeholder not listed, no retries in the run log."""
    import sqlite3

    version_4_store(path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE releases")
        db.execute('ALTER TABLE submissions DROP COLUMN "stakeholder_other_org"')
        db.execute("ALTER TABLE runs DROP COLUMN retries")
        db.execute("CREATE TABLE publications (id INTEGER PRIMARY KEY, audience TEXT, value TEXT)")
        db.execute("INSERT INTO publications (audience, value) VALUES ('donor', '<5')")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def version_4_store(path: Path) -> None:
    """An empty store as kobo-tip left it before the as-reported ledger, the release marks and the
    rows' change numbers (schema 4)."""
    import sqlite3

    from kobo_tip.store import SqliteStore

    SqliteStore.open(path).close()
    with sqlite3.connect(path) as db:
        for table in ("ledger_quarters", "ledger_cells", "ledger_persons", "release_marks"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DROP TRIGGER count_outside_release")
        db.execute("DROP INDEX submissions_by_change")
        db.execute("ALTER TABLE submissions DROP COLUMN changed")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")


def _replace_sections(text: str, sections: dict[str, str]) -> str:
    out: list[str] = []
    current = None
    done: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]") and not stripped.startswith("[["):
            current = stripped.strip("[]").strip()
            out.append(line)
            if current in sections:
                out.append(sections[current])
                done.add(current)
            continue
        if current in sections:
            continue
        out.append(line)
    for name, body in sections.items():
        if name not in done:
            out.append(f"\n[{name}]\n{body}")
    return "\n".join(out) + "\n"
