"""Shared fixtures: an example project in a temporary folder and the person-key secret."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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
    """An empty store as kobo-tip left it before the as-reported ledger and the release marks
    (schema 4)."""
    import sqlite3

    from kobo_tip.store import SqliteStore

    SqliteStore.open(path).close()
    with sqlite3.connect(path) as db:
        for table in ("ledger_quarters", "ledger_cells", "ledger_persons", "release_marks"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DROP TRIGGER count_outside_release")
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
