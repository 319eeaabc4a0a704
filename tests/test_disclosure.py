"""The promise of contract section 6, attacked: an intruder holding every release solves them as one LP.

Each test runs the pipeline (two syncs with late data, edits, deletions and reviews between them,
a release after each), then hands every donor and public release to ``attack.py``, an intruder
written from the contract alone, and asks for each small cell the values it can still take. The
published text it reads is what ``counts.csv`` holds (checked against the release records); the
true values come from the release records, which the test trusts only to tell which cells kept
their value from one release to the next (more than a real intruder knows).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import pytest

from attack import Held, Sum, attack, exposed, held
from kobo_tip import demo
from kobo_tip.cli import main
from kobo_tip.config import Settings, load_settings
from kobo_tip.privacy import Release
from kobo_tip.report import render_reports
from kobo_tip.report.render import stored_release
from kobo_tip.store import open_store
from report_project import AS_OF as REPORT_AS_OF
from report_project import make_project, read_export, sync, write_export

AS_OF = dt.date(2026, 11, 28)  # two releases: through FY2026 Q3, then through FY2026 Q4
LAYOUT = ["indicator", "period", "period_start", "period_end", "dimension", "category"]
K = {"donor": 5, "public": 10}


def releases(settings: Settings) -> dict[str, list[Release]]:
    with open_store(settings) as store:
        return {audience: [stored_release(r) for r in store.releases(audience)] for audience in K}


def read_counts(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def run(folder: Path, seed: int, n: int, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("KOBO_TIP_SECRET", raising=False)
    result = demo.run_demo(folder, seed=seed, n=n, as_of=AS_OF)
    return load_settings(result.config_path)


def assert_nothing_narrowed(settings: Settings) -> dict[str, list[Release]]:
    """The donor intruder (holding the public releases too) and the public one find no small cell
    with fewer than ceil(k/2) possible values, in any release."""
    made = releases(settings)
    assert all(made[audience] for audience in K), "each audience has released"
    for audience, release in ((a, made[a][-1]) for a in K):
        on_file = read_counts(settings.report.out_dir / audience / "counts.csv")
        published = release.published
        assert [r["value"] for r in on_file] == published["value"].tolist(), (
            "the files are the audited release"
        )
    donor_held = [held(r) for a in ("donor", "public") for r in made[a]]
    public_held = [held(r) for r in made["public"]]
    # The intruder also reads every figure of the latest IPTTs (contract section 6: nothing new from them).
    donor_sums = iptt_sums(settings, "donor", len(made["donor"]) - 1, donor_held[len(made["donor"]) - 1])
    donor_sums += iptt_sums(settings, "public", len(donor_held) - 1, donor_held[-1])
    public_sums = iptt_sums(settings, "public", len(public_held) - 1, public_held[-1])
    donor = attack(donor_held, K["donor"], sums=donor_sums)
    public = attack(public_held, K["public"], sums=public_sums)
    for name, findings, k in (("donor", donor, K["donor"]), ("public", public, K["public"])):
        assert findings, f"the {name} releases hold small cells to attack"
        broken = exposed(findings, k)
        assert not broken, (
            f"{len(broken)} {name} cells narrowed below {math.ceil(k / 2)} values: {broken[:3]}"
        )
    return made


def iptt_sums(settings: Settings, audience: str, index: int, table: Held) -> list[Sum]:
    """Each published actual of ``audience``'s iptt.csv as the sum of counts cells it stands for
    (a cumulative row: the quarters through its quarter); a hidden actual has no percentage or
    flag beside it."""
    path = settings.report.out_dir / audience / "iptt.csv"
    if not path.exists():
        return []
    periods = table.published.drop_duplicates("period").set_index("period")
    spans = periods["period_start"].to_dict()
    ends = periods["period_end"].to_dict()
    quarters = sorted((p for p in spans if " Q" in p), key=lambda p: spans[p])
    years = [p for p in spans if " Q" not in p and p != "LOP"]
    sums: list[Sum] = []
    for row in read_counts(path):
        key = (row["indicator"], row["period"], row["dimension"], row["category"])
        if not row["actual"].isdigit():
            assert row["percent_achieved"] == row["flag"] == "", row
            continue
        if row["period"].startswith("LOP through "):
            # Whole fiscal years by their total (their quarters may be left out), then the quarters
            # of the year the row ends in.
            last = row["period"].removeprefix("LOP through ")
            whole = [y for y in years if ends[y] < spans[last]]
            cells = [(key[0], y, key[2], key[3]) for y in whole]
            cells += [
                (key[0], q, key[2], key[3])
                for q in quarters
                if spans[q] <= spans[last] and not any(spans[y] <= spans[q] <= ends[y] for y in whole)
            ]
        else:
            cells = [key]
        sums.append((index, cells, int(row["actual"])))
    assert sums, f"the {audience} IPTT has published actuals"
    return sums


def assert_nested(made: dict[str, list[Release]]) -> None:
    """A cell hidden for the donor is hidden for the public (contract section 6)."""
    donor, public = made["donor"][-1].table, made["public"][-1].table
    keys = ["indicator", "period", "dimension", "category"]
    both = donor[[*keys, "published"]].merge(
        public[[*keys, "published"]], on=keys, suffixes=("_donor", "_public")
    )
    assert len(both) == len(donor)
    hidden_donor = ~both["published_donor"].str.isdigit()
    assert not both.loc[hidden_donor, "published_public"].str.isdigit().any()


def test_the_demo_keeps_every_small_cell_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = run(tmp_path / "demo", 2026, 2000, monkeypatch)
    made = assert_nothing_narrowed(settings)
    assert_nested(made)
    assert len(made["donor"]) == 2, "the second sync's late data made a second release"
    donor = read_counts(settings.report.out_dir / "donor" / "counts.csv")
    headline = [
        r["value"]
        for r in donor
        if r["dimension"] == "total" and r["indicator"] == "identified_or_referred" and " Q" in r["period"]
    ]
    assert headline and all(v.isdigit() for v in headline), "no ended quarter's headline total is hidden"


@pytest.mark.parametrize(("seed", "n"), [(11, 600), (12, 1200), (13, 2500)])
def test_synthetic_projects_keep_every_small_cell_out_of_reach(
    seed: int, n: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_nested(assert_nothing_narrowed(run(tmp_path / "p", seed, n, monkeypatch)))


@pytest.mark.slow
@pytest.mark.sweep
@pytest.mark.parametrize("seed", range(20))
def test_many_projects_keep_every_small_cell_out_of_reach(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = round(200 * 100 ** (seed / 19))  # 200 to 20,000 submissions, evenly on a log scale
    assert_nested(assert_nothing_narrowed(run(tmp_path / "p", 100 + seed, n, monkeypatch)))


def test_a_render_that_cannot_prove_the_promise_writes_no_outside_file(
    tmp_path: Path, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = sync(make_project(tmp_path / "project", submissions=400, dhis2=False))
    render_reports(settings, audiences=["internal", "donor"], as_of=REPORT_AS_OF)
    donor_folder = settings.report.out_dir / "donor"
    before = {path.name: path.read_bytes() for path in donor_folder.iterdir()}
    # An earlier donor edition (edited by hand here; kobo-tip never prints one) gave small cells away.
    with open_store(settings) as store:
        (last,) = store.releases("donor")
        cells = dict(last.cells)
        cells["published"] = [
            str(v) if 0 < v < 5 and d == "stakeholder_type" else p
            for v, d, p in zip(cells["value"], cells["dimension"], cells["published"], strict=True)
        ]
        store.save_release("donor", k=5, through=last.through, last_run=last.last_run, cells=cells)
    internal = settings.report.out_dir / "internal" / "report.html"
    internal_before = internal.stat().st_mtime_ns
    assert main(["report", "-c", str(settings.path), "--as-of", REPORT_AS_OF.isoformat()]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nothing was published" in err
    assert {path.name: path.read_bytes() for path in donor_folder.iterdir()} == before, (
        "donor files untouched"
    )
    assert internal.stat().st_mtime_ns != internal_before, "the internal report is still written"


def test_a_project_whose_events_lie_in_two_quarters_keeps_its_period_totals(
    tmp_path: Path, secret: str
) -> None:
    """Issue 26's export case: every event in FY2026 Q1 and Q2, the later quarters true zeros. Hidden
    zeros never force a total to hide: no period total of k or more is hidden where no period total
    of its indicator is 1..k-1 (the three LOP totals and FY2026 Q2's shown). And the guarantee holds
    against the intruder of contract section 6 solving a linear program, and an integer program."""
    config = make_project(tmp_path / "project", submissions=1200, dhis2=False)
    rows = [r for r in read_export(config) if "2025-10-01" <= r.get("event/event_date", "") <= "2026-03-31"]
    write_export(config, rows[:300])
    settings = sync(config)
    render_reports(settings, audiences=["internal", "donor"], as_of=REPORT_AS_OF)
    truth = {
        (r["indicator"], r["period"]): int(r["value"])
        for r in read_counts(settings.report.out_dir / "internal" / "counts.csv")
        if r["dimension"] == "total"
    }
    donor = {
        (r["indicator"], r["period"]): r["value"]
        for r in read_counts(settings.report.out_dir / "donor" / "counts.csv")
        if r["dimension"] == "total"
    }
    assert truth[("identified_or_referred", "FY2026 Q3")] == 0, "the later quarters are zeros"
    for name in ("identified_or_referred", "identified", "referred"):
        assert donor[(name, "LOP")] == str(truth[(name, "LOP")]) and truth[(name, "LOP")] >= K["donor"]
        assert donor[(name, "FY2026 Q2")] == str(truth[(name, "FY2026 Q2")])
        periods = [p for n, p in donor if n == name]
        if not any(0 < truth[(name, p)] < K["donor"] for p in periods):
            hidden = [p for p in periods if donor[(name, p)] == "x"]
            assert not hidden, f"{name}: totals hidden with no small total to protect: {hidden}"
    with open_store(settings) as store:
        made = [held(stored_release(r)) for r in store.releases("donor")]
    for integer in (False, True):
        findings = attack(made, K["donor"], integer=integer)
        assert findings and not exposed(findings, K["donor"]), exposed(findings, K["donor"])[:3]
