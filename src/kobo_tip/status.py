"""What ``kobo-tip status`` prints: the store's contents, the last runs, the server's assets."""

from __future__ import annotations

from kobo_tip.config import Settings
from kobo_tip.store import RunInfo, Store

_RUNS_SHOWN = 5


def describe_status(settings: Settings, *, assets: bool = False) -> str:
    """A few plain lines about the store (and, with ``assets``, the server's survey assets)."""
    lines: list[str] = []
    if assets:
        from kobo_tip.sources import open_source  # only this option talks to the server

        source = open_source(settings)
        found = source.list_assets()
        lines.append(f"{source.describe()}: {len(found)} form(s)")
        lines.extend("  " + "  ".join(f"{key}={value}" for key, value in asset.items()) for asset in found)
        return "\n".join(lines)
    if not settings.store_path.exists():
        return f"No store yet at {settings.store_path}: run 'kobo-tip sync'."
    with Store.open(settings.store_path, create=False) as store:
        counts = store.counts()
        runs = store.runs(_RUNS_SHOWN)
    lines.append(f"store {counts.path}")
    lines.append(f"  submissions: {counts.submissions} (deleted on the server: {counts.deleted})")
    if counts.by_review_status:
        lines.append("  review status: " + _pairs(counts.by_review_status))
    if counts.by_key_basis:
        lines.append("  person key from: " + _pairs(counts.by_key_basis))
    if counts.first_submitted_at:
        lines.append(f"  submitted: {counts.first_submitted_at} .. {counts.last_submitted_at} (UTC)")
    lines.append(f"  last full reconcile: {counts.last_reconcile or 'never'}")
    lines.append(f"last {len(runs)} sync(s), newest first:" if runs else "no sync yet")
    lines.extend("  " + _run_line(run) for run in runs)
    return "\n".join(lines)


def _pairs(values: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in values.items())


def _run_line(run: RunInfo) -> str:
    if run.finished is None:
        outcome = "did not finish (killed or still running)"
    elif run.error:
        outcome = f"FAILED: {run.error}"
    else:
        outcome = (
            f"fetched {run.fetched}: {run.new} new, {run.edited} edited, {run.deleted} deleted, "
            f"{run.status_changed} status changes in {run.seconds or 0:.1f}s"
        )
    if run.retries:
        outcome += f" ({len(run.retries)} request(s) retried; last: {run.retries[-1]})"
    return f"{run.started} {run.source}: {outcome}"
