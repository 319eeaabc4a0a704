"""Information loss and time of small-cell protection, the old rule against the audited one (by hand).

    .venv/bin/python benchmarks/bench_disclosure.py --demo
    .venv/bin/python benchmarks/bench_disclosure.py --rows 1000000 [--keep DIR]

``--demo`` runs ``kobo-tip demo`` (two syncs, a release after each) and reports on both releases.
``--rows`` counts a synthetic store (``bench_report.py``'s, reused with ``--keep``) and protects its
donor and public tables as a first release.

For each table it prints, per audience and breakdown, the share of cells hidden and of the
persons in them (sum of hidden true values / sum of values) under:
* the old rule (until this version): primary suppression, then "no relation holds exactly one
  hidden cell", the smallest visible non-zero part hidden first; and how many small cells an
  intruder with a solver narrows below ceil(k/2) values in it (``kobo_tip.privacy.audit``);
* the audited rule (``privacy.protect``), whose audit leaves none; with its time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from bench_report import AS_OF, GeneratedSource, project, stored
from measure import Timer

from kobo_tip import demo, periods, privacy
from kobo_tip.config import Settings, load_settings
from kobo_tip.privacy.audit import Auditor, Need
from kobo_tip.privacy.relations import EQUAL, table_relations
from kobo_tip.privacy.system import IntruderSystem, View
from kobo_tip.report import cutoff
from kobo_tip.report.render import count_store, stored_release
from kobo_tip.store import Store
from kobo_tip.sync import run_sync

KS = {"donor": 5, "public": 10}


def old_rule(table: pd.DataFrame, k: int, forced: np.ndarray) -> list[str]:
    """The rule of kobo-tip 0.1: ``<k`` for 1..k-1, then hide until no equality holds one hidden cell."""
    values = table["value"].astype(int).to_numpy()
    relations = table_relations(table)
    members = [
        cells for cells, sense in zip(relations.cells, relations.senses, strict=True) if sense == EQUAL
    ]
    of_cell: dict[int, list[int]] = defaultdict(list)
    for number, cells in enumerate(members):
        for cell in cells:
            of_cell[cell].append(number)
    hidden = set(np.flatnonzero(((values > 0) & (values < k)) | forced).tolist())
    pending = sorted({n for cell in hidden for n in of_cell[cell]})
    while pending:
        cells = members[pending.pop()]
        if sum(cell in hidden for cell in cells) != 1:
            continue
        candidates = [c for c in cells if c not in hidden and values[c] > 0]
        if not candidates:
            continue
        cell = min(candidates, key=lambda c: (values[c], c))
        hidden.add(cell)
        pending.extend(of_cell[cell])
    return [
        (f"<{k}" if v < k else privacy.HIDDEN) if i in hidden else str(v)
        for i, v in enumerate(values.tolist())
    ]


def exposed(views: Sequence[View], k: int) -> int:
    """Small cells of the first view that an intruder holding ``views`` narrows below ceil(k/2) values."""
    system = IntruderSystem()
    variables = [system.add_view(view) for view in views]
    a, equal, rhs = system.matrix()
    auditor = Auditor(a, equal, rhs, np.asarray(system.truth))
    values = views[0].table["value"].to_numpy()
    small = variables[0][(values > 0) & (values < k)]
    needs = {int(v): Need(privacy.need_of(k)) for v in small}
    return len(auditor.exposures(np.asarray(system.lower), np.asarray(system.upper), needs))


def loss(table: pd.DataFrame, published: Sequence[str]) -> pd.DataFrame:
    text = pd.Series(list(published), index=table.index)
    hidden = ~text.str.isdigit()
    frame = pd.DataFrame({"dimension": table["dimension"], "hidden": hidden, "value": table["value"]})
    frame["hidden_value"] = frame["value"].where(hidden, 0)
    grouped = frame.groupby("dimension", sort=False).agg(
        cells=("hidden", "size"),
        hidden=("hidden", "sum"),
        persons=("value", "sum"),
        hidden_persons=("hidden_value", "sum"),
    )
    return pd.DataFrame(
        {
            "cells hidden": (grouped["hidden"] / grouped["cells"]).map("{:.1%}".format),
            "persons hidden": (grouped["hidden_persons"] / grouped["persons"].clip(lower=1)).map(
                "{:.1%}".format
            ),
        }
    )


def compare(table: pd.DataFrame, through: str, releases: dict[str, privacy.Release]) -> None:
    """Print the old rule against the audited releases for ``table``."""
    donor_old = old_rule(table, KS["donor"], np.zeros(len(table), dtype=bool))
    public_old = old_rule(table, KS["public"], ~pd.Series(donor_old).str.isdigit().to_numpy())
    views = {
        a: View(table.assign(published=p), KS[a], through)
        for a, p in (("donor", donor_old), ("public", public_old))
    }
    donor_exposed, public_exposed = (
        exposed([views["donor"], views["public"]], 5),
        exposed([views["public"]], 10),
    )
    print(
        f"  old rule: {donor_exposed} donor cells (holding the public file too) and {public_exposed} "
        "public cells narrowed below ceil(k/2) values"
    )
    for audience, old in (("donor", donor_old), ("public", public_old)):
        new = releases[audience].table["published"].tolist()
        side = (
            loss(table, old)
            .add_suffix(" (old)")
            .join(loss(releases[audience].table, new).add_suffix(" (audited)"))
        )
        shares = []
        for text in (old, new):
            hidden = ~pd.Series(text, index=table.index).str.isdigit()
            shares.append(
                (f"{hidden.mean():.1%}", f"{table['value'][hidden].sum() / table['value'].sum():.1%}")
            )
        (cells_old, persons_old), (cells_new, persons_new) = shares
        print(
            f"  {audience}: cells hidden {cells_old} -> {cells_new}, persons {persons_old} -> {persons_new}"
        )
        print(side.to_string().replace("\n", "\n    ").join(["    ", ""]))


def outside_table(settings: Settings, as_of: dt.date) -> tuple[pd.DataFrame, str]:
    with Store.open(settings.store_path) as store:
        counted = count_store(store, settings, as_of)
    headline = periods.headline_quarter(settings.project, as_of)
    assert headline is not None
    return cutoff.counts_through(counted.result.counts, headline.end), headline.end.isoformat()


def run_demo_case() -> None:
    os.environ.pop("KOBO_TIP_SECRET", None)
    with tempfile.TemporaryDirectory() as temporary:
        with Timer() as whole:
            result = demo.run_demo(Path(temporary) / "demo")
        print(f"kobo-tip demo end to end: {whole}")
        settings = load_settings(result.config_path)
        with Store.open(settings.store_path) as store:
            history = {a: [stored_release(r) for r in store.releases(a)] for a in KS}
        for number in range(len(history["donor"])):
            made = {a: history[a][number] for a in KS}
            table = made["donor"].table
            print(f"release {number + 1} (through {made['donor'].through}), {len(table):,} cells:")
            compare(table[privacy.COLUMNS], made["donor"].through, made)
        # The time of the second render's protection: both audiences, against the first release.
        first = {a: history[a][:1] for a in KS}
        second = history["donor"][-1]
        os.environ["KOBO_TIP_SECRET"] = "benchmark-secret-not-for-use"
        table, through = outside_table(settings, dt.date.today())
        with Timer() as protecting:
            privacy.protect(table, KS, first, through)
        print(
            f"protect donor and public against the first release: {protecting} ({len(second.table):,} cells)"
        )


def run_rows_case(rows: int, keep: Path | None) -> None:
    os.environ.setdefault("KOBO_TIP_SECRET", "benchmark-secret-not-for-use")
    with tempfile.TemporaryDirectory() as temporary:
        folder = keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        settings = load_settings(project(folder))
        if stored(settings) != rows:
            settings.store_path.unlink(missing_ok=True)
            run_sync(settings, progress=False, source=GeneratedSource(settings, rows))
        table, through = outside_table(settings, AS_OF)
        with Timer() as protecting:
            outcome = privacy.protect(table, KS, {}, through)
        print(f"{rows:,} submissions, {len(table):,} cells: protect donor and public: {protecting}")
        compare(table, through, outcome.releases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="the demo's two releases")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="project folder to keep (and reuse) between runs")
    args = parser.parse_args()
    if args.demo:
        run_demo_case()
    else:
        run_rows_case(args.rows, args.keep)


if __name__ == "__main__":
    main()
