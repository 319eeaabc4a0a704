"""Every recorded Kobo ``/data`` page goes through the file source and run_sync into a store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import FIXTURES
from kobo_tip.config import load_settings
from kobo_tip.errors import SourceError
from kobo_tip.sources.files import to_raw_submission
from kobo_tip.store import open_store
from kobo_tip.sync import run_sync

RECORDED = json.loads((FIXTURES / "kobo-recorded-responses.json").read_text(encoding="utf-8"))
DATA_PAGES = {key: value for key, value in RECORDED.items() if "/data" in key}


def test_the_recording_holds_data_pages() -> None:
    assert len(DATA_PAGES) >= 10
    assert sum(len(page["results"]) for page in DATA_PAGES.values()) > 50


@pytest.mark.parametrize("key", sorted(DATA_PAGES), ids=lambda key: key.split()[0].removesuffix(".yml"))
def test_a_recorded_data_page_syncs_into_the_store(
    key: str, make_project: Callable[..., Path], secret: str
) -> None:
    # The recorded forms are not the indicator form: each row gets the one answer every submission
    # of it has (consent), so the server's shapes around it go through the store as they came.
    results = [{**row, "intro/consent": "no"} for row in DATA_PAGES[key]["results"]]
    settings = load_settings(make_project())
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    settings.source.path.write_text(json.dumps(results), encoding="utf-8")

    summary = run_sync(settings, progress=False)

    assert summary.new == len({str(row["_id"]) for row in results}) == summary.fetched
    with open_store(settings) as store:
        held = {s.submission_id: s for s in store.submissions()}
    assert sorted(held) == sorted(str(row["_id"]) for row in results)
    for row in results:
        stored = held[str(row["_id"])]
        assert stored.version_id == row["_uuid"]
        assert stored.submitted_at == row.get("_submission_time", "")  # a projected page may lack it
        assert stored.review_status in ("approved", "rejected", "on_hold", "unreviewed")
        assert stored.key_basis == "submission"  # no consent: never linkable
    again = run_sync(settings, progress=False, full=True)  # --full: the unchanged file read again
    assert (again.new, again.edited, again.unchanged, again.deleted) == (0, 0, len(results), 0)


@pytest.mark.parametrize("key", sorted(DATA_PAGES)[:3], ids=lambda key: key.split()[0].removesuffix(".yml"))
def test_a_page_of_another_form_is_refused_whole(
    key: str, make_project: Callable[..., Path], secret: str
) -> None:
    results = DATA_PAGES[key]["results"]
    settings = load_settings(make_project())
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    settings.source.path.write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(SourceError, match="nothing of it was stored"):
        run_sync(settings, progress=False)
    with open_store(settings) as store:
        assert list(store.submissions()) == []


def test_recorded_validation_statuses_map_to_review_statuses() -> None:
    [page] = [v for k, v in DATA_PAGES.items() if k.startswith("kobo_data_validation")]
    statuses = {
        raw.data["_validation_status"].get("uid"): raw.review_status
        for raw in map(to_raw_submission, page["results"])
    }
    assert statuses == {
        "validation_status_on_hold": "on_hold",
        "validation_status_not_approved": "rejected",
        "validation_status_approved": "approved",
    }


def test_form_versions_come_from_the_version_key() -> None:
    rows = [row for page in DATA_PAGES.values() for row in page["results"]]
    assert [to_raw_submission(row).form_version for row in rows] == [
        row.get("__version__", "") for row in rows
    ]
