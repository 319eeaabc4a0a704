"""What ``kobo-tip status`` prints: the store's contents, the last runs, the Kobo REST Service
that pushes to ``kobo-tip serve``, and the server's assets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from typing import TYPE_CHECKING

from kobo_tip import readability
from kobo_tip.config import Settings
from kobo_tip.errors import KoboTipError
from kobo_tip.http import safe_url
from kobo_tip.store import PROGRAMME_MEMBER, RunInfo, open_store
from kobo_tip.store.runlog import lost_history

if TYPE_CHECKING:
    from kobo_tip.sources.kobo import Hook, HookFailure

_RUNS_SHOWN = 5
_FAILURES_SHOWN = 5
_MESSAGE_CHARS = 120
# Status answers within seconds even with the server down: one retry, short timeouts.
_HOOK_RETRIES = 1
_HOOK_TIMEOUT = (5.0, 15.0)


def describe_status(settings: Settings, *, assets: bool = False) -> str:
    """A few plain lines about the store (and, with ``assets``, the server's survey assets)."""
    lines: list[str] = []
    if assets:
        from kobo_tip.sources import open_source  # only this option talks to the server  # noqa: PLC0415

        source = open_source(settings)
        found = source.list_assets()
        lines.append(f"{source.describe()}: {len(found)} form(s)")
        lines.extend("  " + "  ".join(f"{key}={value}" for key, value in asset.items()) for asset in found)
        return "\n".join(lines)
    lines.extend(_store_lines(settings))
    if settings.source.kind == "kobo":
        lines.extend(hook_lines(settings))
    return "\n".join(lines)


def _store_lines(settings: Settings) -> list[str]:
    if not settings.store.url and not settings.store.path.exists():
        return [f"No store yet at {settings.store.path}: run 'kobo-tip sync'."]
    lines: list[str] = []
    with open_store(settings, create=False) as store:
        counts = store.counts()
        runs = store.runs(_RUNS_SHOWN)
        last_push, pushes = store.pushes()
        programme = store.meta_value(PROGRAMME_MEMBER)
        checked, accepted = readability.recorded(store), readability.accepted(store)
        lost = store.lost_releases()
    lines.append(f"store {counts.path}")
    lines.append(f"  submissions: {counts.submissions} (deleted on the server: {counts.deleted})")
    if counts.by_review_status:
        lines.append("  review status: " + _pairs(counts.by_review_status))
    if counts.by_key_basis:
        lines.append("  person key from: " + _pairs(counts.by_key_basis))
    if counts.first_submitted_at:
        lines.append(f"  submitted: {counts.first_submitted_at} .. {counts.last_submitted_at} (UTC)")
    lines.append(f"  last full reconcile: {counts.last_reconcile or 'never'}")
    if pushes:
        lines.append(f"  pushed by Kobo (kobo-tip serve): {pushes}, the last at {last_push}")
    if programme:
        lines.append(f"  outside releases: with its programme (kobo-tip report --programme -c {programme})")
    lines.extend(_readability_lines(settings, checked, accepted))
    lines.extend(f"  RELEASES MISSING: {lost_history(counts.path, a, *n)}" for a, n in lost.items())
    lines.append(f"last {len(runs)} sync(s), newest first:" if runs else "no sync yet")
    lines.extend("  " + _run_line(run) for run in runs)
    return lines


def _readability_lines(
    settings: Settings, checked: readability.Readability | None, accepted: int | None
) -> list[str]:
    """What the last report or sync found the counting cannot read, and whether it holds reports."""
    if checked is None:
        return []
    limit = settings.report.max_unreadable_percent
    lines = [
        f"  unreadable for counting: {checked.share()}; limit {limit:g}% ([report] max_unreadable_percent)"
    ]
    if checked.too_high(settings):
        if accepted is not None and checked.unreadable <= accepted:
            lines.append(f"  outside reports: released anyway by an officer ({accepted} unreadable accepted)")
        else:
            lines.append(
                "  outside reports: HELD until an officer has looked at the internal report's data-quality "
                f"list (then 'kobo-tip report {readability.ACCEPT_FLAG}', or export 'XML values and headers')"
            )
    return lines


def hook_lines(settings: Settings) -> list[str]:
    """The asset's kobo-tip REST Service(s): endpoint, counts and last failures; or one line saying
    why they could not be read. Without the token in the environment nothing is asked."""
    from kobo_tip.sources.kobo import (  # the source is imported on demand  # noqa: PLC0415
        HOOK_NAME,
        HOOK_PATH,
        KoboSource,
        blank_credentials,
        hook_secrets,
    )

    source = dataclasses.replace(
        KoboSource.from_settings(settings), retries=_HOOK_RETRIES, timeout=_HOOK_TIMEOUT
    )
    if not os.environ.get(source.token_env):
        # An offline status stays offline and instant.
        return [f"Kobo REST Service: not read ({source.token_env} is not set)."]
    try:
        ours = [
            hook
            for hook in source.hooks()
            if hook.name == HOOK_NAME or hook.endpoint.rstrip("/").endswith(HOOK_PATH + source.asset_uid)
        ]
        # Kobo recounts on every log it writes: a hook with no failure counted has none to read.
        failed = [hook for hook in ours if hook.failed_count]
        secrets = hook_secrets(settings.serve)
        failures = {
            hook.uid: source.hook_failures(hook, _FAILURES_SHOWN, [*secrets, *hook.secrets])
            for hook in failed
        }
    except KoboTipError as exc:
        reason = blank_credentials(str(exc), hook_secrets(settings.serve))
        return [f"Kobo REST Service: could not be read: {_one_line(reason, 300)}"]
    if not ours:
        return [
            f"Kobo REST Service: none pushes to kobo-tip on asset {source.asset_uid} "
            "('kobo-tip hook register --url URL' registers it)."
        ]
    lines = [f"Kobo REST Service(s) of asset {source.asset_uid}:"]
    for hook in ours:
        lines.append(f"  {_hook_line(hook)}")
        shown = failures.get(hook.uid, [])
        if shown:
            lines.append(f"    last {len(shown)} failure(s), newest first:")
            lines.extend(f"      {_failure_line(failure)}" for failure in shown)
    return lines


def _hook_line(hook: Hook) -> str:
    state = "active" if hook.active else "INACTIVE (Kobo pushes nothing)"
    auth = "basic auth" if hook.auth_level == "basic_auth" else "no basic auth"
    return (
        f"{_one_line(hook.name, 40)} {_one_line(safe_url(hook.endpoint), 200)}: {state}, {auth}; "
        f"sent {hook.success_count}, failed {hook.failed_count}, pending {hook.pending_count}"
    )


def _failure_line(failure: HookFailure) -> str:
    status = f"HTTP {failure.status_code}" if failure.status_code is not None else "no HTTP status"
    tries = f"{failure.tries} tr{'y' if failure.tries == 1 else 'ies'}"
    return (
        f"{_when(failure.date_modified)} {status}, submission {_one_line(failure.submission_id, 30)} "
        f"({tries}): {_one_line(failure.message, _MESSAGE_CHARS) or '(no message)'}"
    )


def _when(text: str) -> str:
    """An API timestamp in UTC to the second; as sent (one line) if it is not ISO 8601."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return _one_line(text, 40) or "(no date)"
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")


def _one_line(text: str, limit: int) -> str:
    """``text`` on one line of at most ``limit`` characters. Control characters go too: the text is
    the server's (a log message quotes the receiver's answer) and must not drive the terminal."""
    words = "".join(char if char.isprintable() else " " for char in text).split()
    line = " ".join(words)
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


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
