"""Time rendering every audience against counting alone, on a large store (run by hand, not in CI).

    .venv/bin/python benchmarks/bench_report.py [--rows 1000000] [--keep DIR]

``--rows`` synthetic submissions (kobo_tip.synthetic: Kobo data-API shape, people seen by
several stakeholders, edits, rejections, malformed values) are synced into a new store through
``run_sync`` (person key, UIC parts dropped, hash, insert), from a source that streams them.
With ``--keep DIR`` the project and store stay in DIR, and a later run with the same DIR and
row count reuses the store.

Then, on that store, the two halves of ``render_reports``:
1. counting (``count_store``): ``Store.answer_table``, ``cases_from_table``, one ``count_indicator``;
2. rendering (``write_audiences``) internal, donor and public, every format, with a DHIS2
   mapping: what rendering adds to counting (target: at most 10 s for 1,000,000 rows);
and ``render_reports`` end to end once more for the total.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from generated import AS_OF, GeneratedSource
from measure import Timer, peak_mb

from kobo_tip.config import Settings, load_settings
from kobo_tip.report import render_reports
from kobo_tip.report.render import count_store, write_audiences
from kobo_tip.store import open_store
from kobo_tip.sync import run_sync

REPO = Path(__file__).resolve().parents[1]
DHIS2 = """
[dhis2]
org_unit = "ouUid"
attribute_option_combo = "aocUid"
data_elements = { identified_or_referred = "de1", identified = "de2", referred = "de3" }
category_option_combos = { "total:all" = "c0", "gender:female" = "c1", "gender:male" = "c2" }
"""


def project(folder: Path) -> Path:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('kind = "kobo"', 'kind = "file"\npath = "data/export.json"')
    text = text.replace('"forms/', f'"{REPO}/forms/')
    text = text.replace('audiences = ["internal", "donor"]', 'audiences = ["internal", "donor", "public"]')
    config = folder / "kobo-tip.toml"
    config.write_text(text + DHIS2, encoding="utf-8")
    return config


def stored(settings: Settings) -> int:
    if not settings.store.path.exists():
        return 0
    with open_store(settings) as store:
        return store.counts().submissions + store.counts().deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="project folder to keep (and reuse) between runs")
    args = parser.parse_args()
    os.environ.setdefault("KOBO_TIP_SECRET", "benchmark-secret-not-for-use")
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        settings = load_settings(project(folder))
        if stored(settings) != args.rows:
            settings.store.path.unlink(missing_ok=True)
            with Timer() as syncing:
                run_sync(settings, progress=False, source=GeneratedSource(settings, args.rows))
            print(f"sync of {args.rows:,} generated submissions: {syncing}")
        print(f"store: {stored(settings):,} submissions")

        with open_store(settings) as store:
            with Timer() as counting:
                counted = count_store(store, settings, AS_OF)
            print(
                f"counting (answer_table, cases_from_table, count_indicator): {counting}; "
                f"{len(counted.result.counts):,} count rows, {len(counted.result.findings):,} findings"
            )
            with Timer() as writing:
                paths = write_audiences(store, settings, counted, settings.report.audiences)
            print(
                f"rendering 3 audiences on top ({len(paths)} files): {writing}; peak RSS {peak_mb():.0f} MB"
            )
        del counted
        with Timer() as whole:
            render_reports(settings, as_of=AS_OF)
        print(f"render_reports end to end (counting included): {whole}")


if __name__ == "__main__":
    main()
