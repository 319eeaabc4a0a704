"""What small-cell protection costs the reader, and its time (by hand).

    .venv/bin/python benchmarks/bench_disclosure.py --demo
    .venv/bin/python benchmarks/bench_disclosure.py --rows 10000 [--location-level 2] [--keep DIR]

``--demo`` runs ``kobo-tip demo`` (two syncs, a release after each) and reports on its last
release of each outside audience as published (against the release history), then protects the
same table again with no history. ``--rows`` counts a synthetic store of that many submissions
(78 locations, a three-year project; ``bench_report.py``'s, reused with ``--keep``) and protects
its donor and public tables as a first release; with ``--location-level 2`` its locations are
counted by district: the 78 provinces' districts in ``forms/locations.csv`` and more generated
beside them, ``DISTRICTS`` in all (Thailand has about 930).

For each audience it prints the share of persons inside hidden cells (``<k``, ``x``, and
breakdowns left out; true values from the counts), the ``x`` cells of 20 and of 50 persons or
more, the period totals of k or more hidden, the share hidden in quarters, fiscal years and LOP,
and the time ``privacy.protect`` takes for all the outside audiences together. For the demo it
also prints the floor its release history sets: under ``as_reported`` a fiscal year or LOP cell
shown in the earlier release and shown again would give away, by difference, the new quarter's
cell of the same category, so every small cell of a new quarter hides those two cells whatever
the suppression does.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from bench_report import AS_OF, REPO, GeneratedSource, project, stored
from measure import Timer

from kobo_tip import demo, periods, privacy
from kobo_tip.config import Settings, load_settings
from kobo_tip.report import cutoff
from kobo_tip.report.render import count_store, stored_release
from kobo_tip.store import open_store
from kobo_tip.sync import run_sync

KS = {"donor": 5, "public": 10}
DISTRICTS = 930
KINDS = {privacy.QUARTER: "quarters", "fiscal_year": "fiscal years", "lop": "LOP"}
CELL = ["indicator", "period", "dimension", "category"]


def loss_line(release: privacy.Release) -> str:
    """One line of what ``release`` hides."""
    table = release.table
    text = table["published"].astype(str)
    values = table["value"].astype(int)
    hidden = ~text.str.isdigit()
    x = text == privacy.HIDDEN
    totals = (table["dimension"] == privacy.TOTAL_DIMENSION) & x
    share = values[hidden].sum() / max(values.sum(), 1)
    kinds = table["period_kind"].astype(str)
    by_kind = ", ".join(
        f"{label} {values[hidden & (kinds == kind)].sum() / max(values.sum(), 1):.1%}"
        for kind, label in KINDS.items()
    )
    return (
        f"  {release.audience} (k={release.k}): persons hidden {share:.1%}, "
        f"x cells {int(x.sum())} (20+: {int((x & (values >= 20)).sum())}, 50+: "
        f"{int((x & (values >= 50)).sum())}, largest {int(values[x].max()) if x.any() else 0}), "
        f"period totals hidden as x: {int(totals.sum())}; hidden in {by_kind}"
    )


def history_floor(release: privacy.Release, earlier: privacy.Release) -> str:
    """What ``release`` must hide because ``earlier`` was published: the small cells themselves and,
    for each small cell of a quarter ``earlier`` did not count, the cells of k or more of its
    category in the fiscal year and LOP that ``earlier`` showed and that now include that quarter
    (shown again, their difference from ``earlier`` is the quarter's cell)."""
    table, k = release.table, release.k
    values = table["value"].astype(int)
    before = earlier.table.assign(shown=earlier.table["published"].astype(str).str.isdigit())
    shown_before = set(map(tuple, before.loc[before["shown"], CELL].to_numpy().tolist()))
    ends = table["period_end"].astype(str)
    new_quarter = (table["period_kind"] == privacy.QUARTER) & (ends > earlier.through)
    small = (values > 0) & (values < k)
    grown = (table["period_kind"] != privacy.QUARTER) & (ends > earlier.through) & (values >= k)
    span = table["period_start"].astype(str)
    forced = pd.Series(False, index=table.index)
    for quarter in table.loc[new_quarter & small].itertuples():
        forced |= (
            grown
            & (table["indicator"] == quarter.indicator)
            & (table["dimension"] == quarter.dimension)
            & (table["category"] == quarter.category)
            & (span <= str(quarter.period_start))
            & (ends >= str(quarter.period_end))
        )
    cells = table[CELL].to_numpy().tolist()
    forced &= pd.Series([tuple(cell) in shown_before for cell in cells], table.index)
    total = max(values.sum(), 1)
    return (
        f"  {release.audience}: small cells {values[small].sum() / total:.1%}; their fiscal year and "
        f"LOP cells shown in the earlier release {values[forced].sum() / total:.1%} ({int(forced.sum())} "
        f"cells, 50+: {int((forced & (values >= 50)).sum())}); floor "
        f"{values[small | forced].sum() / total:.1%}"
    )


def report(title: str, releases: Mapping[str, privacy.Release], seconds: Timer | None = None) -> None:
    timing = f", protected in {seconds}" if seconds is not None else ""
    print(f"{title}{timing}:")
    for audience in KS:
        print(loss_line(releases[audience]))


def outside_table(settings: Settings, as_of: dt.date) -> tuple[pd.DataFrame, str]:
    with open_store(settings) as store:
        counted = count_store(store, settings, as_of)
    headline = periods.headline_quarter(settings.project, as_of)
    assert headline is not None
    return cutoff.counts_through(counted.result.counts, headline.end), headline.end.isoformat()


def protect(
    table: pd.DataFrame, through: str, history: Mapping[str, Sequence[privacy.Release]]
) -> tuple[dict[str, privacy.Release], Timer]:
    with Timer() as seconds:
        outcome = privacy.protect(table, KS, history, through)
    return outcome.releases, seconds


def run_demo_case() -> None:
    os.environ.pop("KOBO_TIP_SECRET", None)
    with tempfile.TemporaryDirectory() as temporary:
        with Timer() as whole:
            result = demo.run_demo(Path(temporary) / "demo")
        print(f"kobo-tip demo end to end: {whole}")
        settings = load_settings(result.config_path)
        with open_store(settings) as store:
            history = {a: [stored_release(r) for r in store.releases(a)] for a in KS}
        last = {a: history[a][-1] for a in KS}
        table = last["donor"].table[privacy.COLUMNS]
        count, through = len(history["donor"]), last["donor"].through
        print(f"{count} releases; the last through {through}, {len(table):,} cells")
        report("as published (against the release history)", last)
        print("what the release history forces whatever the suppression does:")
        for audience in KS:
            print(history_floor(last[audience], history[audience][-2]))
        earlier = {a: history[a][:-1] for a in KS}
        releases, seconds = protect(table, last["donor"].through, earlier)
        report("the last release protected again against the earlier ones", releases, seconds)
        releases, seconds = protect(table, last["donor"].through, {})
        report("the same table with no release history", releases, seconds)


def by_district(config: Path) -> None:
    """Count ``config``'s project by district: a locations file beside it with every province of
    ``forms/locations.csv``, its districts, and generated ones up to ``DISTRICTS`` in all."""
    with (REPO / "forms" / "locations.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    provinces = [row for row in rows if row["level"] == "1" and row["parent"] == "th"]
    districts = [row for row in rows if row["level"] == "2"]
    number = 0
    while len(districts) < DISTRICTS:
        province = provinces[number % len(provinces)]
        number += 1
        code = f"{province['code']}-G{number:03d}"
        districts.append({"level": "2", "code": code, "name": f"District {code}", "parent": province["code"]})
    path = config.parent / "districts.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["level", "code", "name", "parent"])
        writer.writeheader()
        writer.writerows([*(row for row in rows if row["level"] == "1"), *districts])
    text = config.read_text(encoding="utf-8").replace("location_level = 1", "location_level = 2")
    text = text.replace(f'locations = "{REPO}/forms/locations.csv"', 'locations = "districts.csv"')
    config.write_text(text, encoding="utf-8")


def run_rows_case(rows: int, keep: Path | None, location_level: int) -> None:
    os.environ.setdefault("KOBO_TIP_SECRET", "benchmark-secret-not-for-use")
    with tempfile.TemporaryDirectory() as temporary:
        folder = keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        config = project(folder)
        if location_level == 2:
            by_district(config)
        settings = load_settings(config)
        if stored(settings) != rows:
            settings.store.path.unlink(missing_ok=True)
            run_sync(settings, progress=False, source=GeneratedSource(settings, rows))
        table, through = outside_table(settings, AS_OF)
        releases, seconds = protect(table, through, {})
        locations = sum(1 for location in settings.form.locations if location.level == location_level)
        report(
            f"{rows:,} submissions, {locations} {'districts' if location_level == 2 else 'locations'}, "
            f"{len(table):,} cells: a first release",
            releases,
            seconds,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="the demo's releases")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--location-level", type=int, choices=(1, 2), default=1)
    parser.add_argument("--keep", type=Path, help="project folder to keep (and reuse) between runs")
    args = parser.parse_args()
    if args.demo:
        run_demo_case()
    else:
        run_rows_case(args.rows, args.keep, args.location_level)


if __name__ == "__main__":
    main()
