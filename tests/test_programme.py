"""Programme reports: two projects counted together, each person once at their first event.

The reference is one project holding both projects' submissions: counted by the same rules, its
counts are what the programme must report, cell for cell."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from attack import Held, Programme, attack, exposed
from conftest import SECRET
from kobo_tip import privacy
from kobo_tip.cli import main
from kobo_tip.config import load_settings
from kobo_tip.errors import ConfigError, StoreError
from kobo_tip.privacy.relations import scope_of
from kobo_tip.programme import count_programme, load_programme, render_programme
from kobo_tip.report import cutoff, render_reports
from kobo_tip.report.render import stored_release
from kobo_tip.store import SqliteStore, open_store
from kobo_tip.sync import run_sync
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


OWN_AS_OF = dt.date(2026, 8, 15)  # each project on its own: through FY2026 Q3
JOINT_AS_OF = dt.date(2026, 11, 15)  # the programme and its projects together: through FY2026 Q4


def held_releases(store_path: Path, scopes: list[str], audience: str) -> tuple[list[Held], list[Programme]]:
    """Every joint release of ``audience`` in the programme's store, as the intruder holds it: the
    programme's table and each project's, and the link between them."""
    held: list[Held] = []
    links: list[Programme] = []
    with SqliteStore.open(store_path) as store:
        for stored in store.releases(audience):
            release = stored_release(stored)
            first = len(held)
            for scope in ["", *scopes]:
                part = release.table[release.table["indicator"].map(lambda n: scope_of(n)[0]) == scope]
                part = part.assign(indicator=part["indicator"].map(lambda n: scope_of(n)[1]))
                held.append(as_held(part, release.k, release.through, scope))
            links.append((first, list(range(first + 1, len(held)))))
    return held, links


def as_held(table: pd.DataFrame, k: int, through: str, scope: str) -> Held:
    """The intruder of contract section 6 knows a left-out cell exists: its "" reads as 0 or more
    (attack.py), so it stays in the relations rather than being dropped."""
    layout = ["indicator", "period", "period_start", "period_end", "dimension", "category"]
    return Held(
        table[layout].assign(value=table["published"].astype(str).to_numpy()),
        table[[*layout, "value"]],
        k,
        through,
        scope,
    )


def own_releases(config: Path, scope: str, audience: str) -> list[Held]:
    settings = load_settings(config)
    with open_store(settings, create=False) as store:
        found = [stored_release(r) for r in store.releases(audience)]
    return [as_held(r.table, r.k, r.through, scope) for r in found]


def test_outside_programme_releases_keep_every_small_cell_of_every_project_out_of_reach(
    projects: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each project released on its own first; then the programme releases itself and both
    projects together. An intruder holding every file of every release, and solving the relations
    between the programme and its projects as well as each one's own, narrows no small cell. From
    then on a project leaves its outside releases to the programme."""
    names = ["thailand", "cambodia"]
    for name in names:
        settings = load_settings(projects[name])
        render_reports(settings, audiences=("donor",), as_of=OWN_AS_OF)
    config = programme_config(tmp_path, projects["thailand"], projects["cambodia"])
    render_programme(load_programme(config), ("internal", "donor", "public"), JOINT_AS_OF)
    k = {"donor": 5, "public": 10}
    store_path = tmp_path / "data" / "programme.sqlite"
    joint, links = held_releases(store_path, names, "donor")
    public, public_links = held_releases(store_path, names, "public")
    assert len(joint) == 3 and len(public) == 3, "one joint release of each audience"
    folders = [tmp_path / "reports", *(load_settings(projects[n]).report.out_dir for n in names)]
    for table, folder in zip(joint, folders, strict=True):
        on_file = pd.read_csv(folder / "donor" / "counts.csv", dtype=str, keep_default_na=False)
        # The files leave out what the release left out (a breakdown by fiscal year and LOP only);
        # the intruder's copy keeps those cells, as "".
        shown = table.published[table.published["value"] != ""]
        assert on_file["value"].tolist() == shown["value"].tolist(), "the files are the audit's"
        assert (folder / "donor" / "report.html").exists()
    published = pd.concat([h.published for h in joint])
    assert published["value"].str.startswith("<").any(), "small cells are hidden"
    own = [h for n in names for h in own_releases(projects[n], n, "donor")]
    assert own, "the projects released on their own before"
    donor_held = [*own, *joint, *public]
    donor_links = links + [(a + len(joint), [b + len(joint) for b in bs]) for a, bs in public_links]
    shifted = [(a + len(own), [b + len(own) for b in bs]) for a, bs in donor_links]
    for held, link, audience in ((donor_held, shifted, "donor"), (public, public_links, "public")):
        findings = attack(held, k[audience], programmes=link)
        assert findings, f"the {audience} releases hold small cells to attack"
        broken = exposed(findings, k[audience])
        assert not broken, f"{len(broken)} {audience} cells narrowed: {broken[:3]}"

    thailand = load_settings(projects["thailand"])
    assert main(["report", "-c", str(projects["thailand"]), "--audience", "donor"]) == 2
    with open_store(thailand) as store:
        assert len(store.releases("donor")) == 1, "the project released nothing more on its own"
    written = render_reports(thailand, as_of=JOINT_AS_OF)  # [report] audiences: internal and donor
    assert {path.parent.name for path in written} == {"internal"}
    assert "released with its programme's" in caplog.text
    capsys.readouterr()
    assert main(["status", "-c", str(projects["thailand"])]) == 0
    assert f"outside releases: with its programme (kobo-tip report --programme -c {config})" in (
        capsys.readouterr().out
    )


def test_without_the_joint_audit_the_programme_gives_project_cells_away(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    """The attack has teeth: the programme's release protected alone, beside the projects' own
    releases protected alone, lets the same intruder narrow small cells."""
    names = ["thailand", "cambodia"]
    held = []
    for name in names:
        settings = load_settings(projects[name])
        render_reports(settings, audiences=("donor",), as_of=JOINT_AS_OF)
        held += own_releases(projects[name], name, "donor")
    config = programme_config(tmp_path, *(projects[n] for n in names))
    count = count_programme(load_programme(config), JOINT_AS_OF)
    through = held[0].through
    table = cutoff.counts_through(count.programme.result.counts, dt.date.fromisoformat(through))
    alone = privacy.protect(table, {"donor": 5, "public": 10}, {}, through).releases["donor"]
    held.append(as_held(alone.table, 5, through, ""))
    findings = attack(held, 5, programmes=[(2, [0, 1])])
    assert exposed(findings, 5), "protected apart, the programme and its projects narrow a small cell"
    assert not exposed(attack(held, 5), 5), "each release alone is safe"


@pytest.mark.slow
def test_programme_quarters_and_its_projects_freeze_as_reported(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    """Thailand releases alone through FY2026 Q3, then the programme releases both projects through
    FY2026 Q4 and, after a late Thai person and a Cambodian deletion, through FY2027 Q1: no true value
    of a released quarter changes in any scope (Thailand's own quarters included), the late person
    counts in FY2027 Q1, and the intruder holding every release narrows no small cell."""
    thailand = load_settings(projects["thailand"])
    render_reports(thailand, audiences=("donor",), as_of=OWN_AS_OF)
    with open_store(thailand) as store:
        (alone,) = [stored_release(r) for r in store.releases("donor")]
        own_persons = {(i, key) for i, key, *_ in store.ledger().persons}
    assert own_persons, "the project kept its ledger while it released alone"
    config = programme_config(tmp_path, projects["thailand"], projects["cambodia"])
    render_programme(load_programme(config), ("donor",), JOINT_AS_OF)
    thai_rows = read_export(projects["thailand"])
    late = copy.deepcopy(thai_rows[0])
    late.update(
        {
            "_id": 9_000_000,
            "_uuid": "late-thai",
            "event/event_date": "2026-02-10",
            "event/action": "identified",
            "event/stakeholder_id": thai_rows[0]["event/stakeholder_id"],
            "intro/consent": "yes",
            "person/uic_given": "Qz",
            "person/uic_mother": "Wx",
            "person/birth_year": "1991",
            "_submission_time": "2027-01-20T08:00:00",
            "_validation_status": {},
        }
    )
    write_export(projects["thailand"], [*thai_rows, late])
    write_export(projects["cambodia"], read_export(projects["cambodia"])[1:])
    for name in ("thailand", "cambodia"):
        run_sync(load_settings(projects[name]), progress=False)
    programme = load_programme(config)
    render_programme(programme, ("internal", "donor"), AS_OF)
    store_path = tmp_path / "data" / "programme.sqlite"
    with SqliteStore.open(store_path) as store:
        first, second = [stored_release(r) for r in store.releases("donor")]
        book = store.ledger()
    assert {
        (i.removeprefix("thailand/"), key) for i, key, *_ in book.persons if i.startswith("thailand/")
    } >= {(i, key) for i, key in own_persons}, "the programme's ledger took the project's in"
    cell = ["indicator", "period", "dimension", "category"]
    released = ["FY2026 Q1", "FY2026 Q2", "FY2026 Q3", "FY2026 Q4"]

    def values(release: privacy.Release, quarters: list[str]) -> pd.Series:
        table = release.table
        return table[table["period"].isin(quarters)].set_index(cell)["value"]

    before, after = values(first, released), values(second, released)
    assert before.equals(after.reindex(before.index)), "no released quarter moved, in any scope"
    own = values(alone, released[:3]).rename(lambda name: f"thailand/{name}", level=0)
    assert own.equals(before.reindex(own.index)), "Thailand's own quarters stay as it released them"
    count = count_programme(programme, AS_OF).programme.result.counts
    event = count.set_index(cell)["value"]
    headline = ("identified_or_referred", "FY2027 Q1", "total", "all")
    assert second.table.set_index(cell)["value"][headline] == event[headline] + 1, "the late person"
    joint, links = held_releases(store_path, ["thailand", "cambodia"], "donor")
    own_held = own_releases(projects["thailand"], "thailand", "donor")
    shifted = [(a + len(own_held), [b + len(own_held) for b in bs]) for a, bs in links]
    broken = exposed(attack([*own_held, *joint], 5, programmes=shifted), 5)
    assert not broken, f"{len(broken)} donor cells narrowed: {broken[:3]}"
    internal = (tmp_path / "reports" / "internal" / "as_reported.csv").read_text(encoding="utf-8")
    assert "identified_or_referred,FY2026 Q2,total,all," in internal
