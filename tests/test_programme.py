"""Programme reports: two projects counted together, each person once at their first event.

The reference is one project holding both projects' submissions: counted by the same rules, its
counts are what the programme must report, cell for cell."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from conftest import SECRET
from kobo_tip.cli import main
from kobo_tip.config import load_settings
from kobo_tip.errors import ConfigError, StoreError
from kobo_tip.programme import load_programme, render_programme
from kobo_tip.report import render_reports
from kobo_tip.sync import run_sync
from pg_cluster import pg_database as pg_database_fixture  # noqa: F401
from pg_cluster import postgres as postgres_fixture  # noqa: F401
from report_project import AS_OF, make_project, read_export, write_export
from test_postgres_store import on_postgres


def moved(rows: list[dict[str, Any]], shift: int, days: int = 0) -> list[dict[str, Any]]:
    """The same people, submitted again elsewhere: other ids, events ``days`` later."""
    out = []
    for row in copy.deepcopy(rows):
        row["_id"] += shift
        row["_uuid"] = f"moved-{row['_uuid']}"
        if days and isinstance(row.get("event/event_date"), str):
            day = dt.date.fromisoformat(row["event/event_date"]) + dt.timedelta(days=days)
            row["event/event_date"] = min(day, AS_OF).isoformat()
        out.append(row)
    return out


def programme_config(folder: Path, *projects: Path, **rules: str) -> Path:
    names = ", ".join(f'"{p.relative_to(folder)}"' for p in projects)
    lines = ['name = "Counter-trafficking programme"', f"projects = [{names}]"]
    lines += [f"{key} = {value}" for key, value in rules.items()]
    config = folder / "programme.toml"
    config.write_text("[programme]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return config


@pytest.fixture
def projects(tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Thailand (SQLite) and Cambodia (PostgreSQL) share 100 people, some seen first in one and
    some in the other; 'both' holds every submission of the two as one project."""
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET)
    configs = {
        name: make_project(tmp_path / name, submissions=500) for name in ("thailand", "cambodia", "both")
    }
    rows = read_export(configs["thailand"])
    thai, cambodian = (
        rows[:300],
        moved(rows[200:250], 10_000_000, days=40) + moved(rows[250:], 20_000_000, -60),
    )
    write_export(configs["thailand"], thai)
    write_export(configs["cambodia"], cambodian)
    write_export(configs["both"], thai + cambodian)
    on_postgres(configs["cambodia"], pg_database, "cambodia")
    for config in configs.values():
        run_sync(load_settings(config), progress=False)
    return configs


def counts_of(out_dir: Path) -> bytes:
    return (out_dir / "internal" / "counts.csv").read_bytes()


def test_a_person_in_two_projects_counts_once_at_the_first_event(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    both = load_settings(projects["both"])
    render_reports(both, audiences=("internal",), as_of=AS_OF)
    config = programme_config(tmp_path, projects["thailand"], projects["cambodia"])
    assert main(["report", "--programme", "-c", str(config), "--as-of", AS_OF.isoformat()]) == 0
    programme = counts_of(tmp_path / "reports")
    assert programme == counts_of(both.report.out_dir), "the programme counts as one project of all"
    single = []
    for name in ("thailand", "cambodia"):
        settings = load_settings(projects[name])
        render_reports(settings, audiences=("internal",), as_of=AS_OF)
        single.append(total(counts_of(settings.report.out_dir)))
    assert total(programme) < sum(single), "the shared people are not counted twice"
    assert total(programme) > max(single)


def total(counts: bytes) -> int:
    for line in counts.decode().splitlines():
        parts = line.split(",")
        if parts[:2] == ["identified_or_referred", "LOP"] and parts[4:6] == ["total", "all"]:
            return int(parts[6])
    raise AssertionError("no LOP total")


def test_a_project_counting_by_other_rules_is_refused_naming_the_key(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    config = programme_config(tmp_path, projects["thailand"], projects["cambodia"], age_bands="[0, 18]")
    with pytest.raises(
        ConfigError, match=r"counts by age_bands = \[0, 5, 12, 18, 60\], the programme .* by \[0, 18\]"
    ):
        load_programme(config)
    assert main(["report", "--programme", "-c", str(config)]) == 2


def test_a_store_keyed_with_another_secret_is_refused(
    projects: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = programme_config(tmp_path, projects["thailand"], projects["cambodia"])
    monkeypatch.setenv("KOBO_TIP_SECRET", SECRET + "-another")
    with pytest.raises(StoreError, match="was not keyed with the programme's secret"):
        render_programme(load_programme(config), AS_OF)


def test_outside_programme_reports_say_they_are_not_built_yet(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    config = programme_config(tmp_path, projects["thailand"], projects["cambodia"])
    assert main(["report", "--programme", "-c", str(config), "--audience", "donor"]) == 2
    assert not (tmp_path / "reports").exists()
