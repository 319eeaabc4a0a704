"""KoboSource with a mocked transport (`responses`): URLs, headers, errors, paging, deploy sequence."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from conftest import FIXTURES
from fakes import Mirror
from kobo_tip.errors import ConfigError, SecretMissingError, ServerError, SourceError
from kobo_tip.sources.base import Batch, FormFiles
from kobo_tip.sources.kobo import KoboSource, _ReadAhead, raw_submission, review_status

BASE = "https://kf.example.org"
UID = "aUnitTest000000000000a"
TOKEN = "unit-test-token-9f8e7d"
DATA = f"{BASE}/api/v2/assets/{UID}/data/"
RECORDED = FIXTURES / "kobo-recorded-responses.json"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KOBO_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def _source(**kwargs: Any) -> KoboSource:
    options: dict[str, Any] = {"url": BASE + "/", "asset_uid": UID, "page_size": 3, "backoff": 0.0, **kwargs}
    options["url"] = options["url"].rstrip("/")
    return KoboSource(**options)


def _row(sid: int, uuid: str = "", status: str | None = None) -> dict[str, Any]:
    return {
        "_id": sid,
        "_uuid": uuid or f"u{sid}",
        "_submission_time": "2026-01-02T03:04:05",
        "__version__": "vK",
        "event/event_date": "2026-01-01",
        "_validation_status": {"uid": status, "label": "x"} if status else {},
    }


def _params(call: Any) -> dict[str, Any]:
    query = parse_qs(urlsplit(call.request.url).query)
    return {key: values[0] for key, values in query.items()}


class DataServer:
    """A `responses` callback serving keyset pages from a list of rows, recording every query."""

    def __init__(self, rows: list[dict[str, Any]], cap: int = 1000) -> None:
        self.rows = rows
        self.cap = cap
        self.queries: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        query = json.loads(params["query"])
        self.queries.append(params)
        cond = query["_id"]
        if "$gt" in cond:
            matching = [r for r in self.rows if r["_id"] > cond["$gt"]]
        else:
            matching = [r for r in self.rows if r["_id"] in cond["$in"]]
        limit = min(int(params["limit"]), self.cap)
        page = matching[:limit]
        if "fields" in params:
            keep = [*json.loads(params["fields"]), "_uuid", "meta/rootUuid"]
            page = [{k: r[k] for k in keep if k in r} for r in page]
        body = {"count": len(matching), "next": "more" if len(matching) > limit else None, "previous": None}
        return 200, {}, json.dumps({**body, "results": page})


def test_token_is_read_only_when_a_request_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOBO_TOKEN", raising=False)
    source = _source()
    assert source.describe() == f"KoboToolbox {BASE}/ asset {UID}"
    with pytest.raises(SecretMissingError, match="KOBO_TOKEN"):
        next(source.batches(Mirror()))


def test_data_request_url_headers_and_json_parameters(token: str, mock: responses.RequestsMock) -> None:
    mock.get(DATA, json={"count": 1, "next": None, "previous": None, "results": [_row(5)]})
    Mirror().pull(_source(page_size=250))
    call = mock.calls[0]
    assert call.request.url.startswith(DATA + "?")  # trailing slash before the query
    assert call.request.headers["Authorization"] == f"Token {TOKEN}"
    assert call.request.headers["User-Agent"].startswith("kobo-tip/")
    assert call.request.headers["Accept"] == "application/json"
    params = _params(call)
    assert json.loads(params["query"]) == {"_id": {"$gt": 0}}
    assert json.loads(params["sort"]) == {"_id": 1}
    assert params["limit"] == "250"
    assert set(params) == {"query", "sort", "limit"}  # never `offset`/`page`, which KPI ignores


def test_keyset_paging_yields_one_batch_per_page_with_watermark(
    token: str, mock: responses.RequestsMock
) -> None:
    server = DataServer([_row(i) for i in (3, 4, 8, 9, 12, 20, 21)])
    mock.add_callback(responses.GET, DATA, callback=server)
    mirror = Mirror()
    *pages, last = mirror.pull(_source(page_size=3))
    assert [[s.submission_id for s in b.submissions] for b in pages] == [
        ["3", "4", "8"],
        ["9", "12", "20"],
        ["21"],
    ]
    assert [b.watermarks for b in pages] == [
        {"kobo_last_id": "8"},
        {"kobo_last_id": "20"},
        {"kobo_last_id": "21"},
    ]
    assert [json.loads(q["query"])["_id"]["$gt"] for q in server.queries] == [0, 8, 20]
    assert sum(b.fetched for b in pages) == 7
    assert not any(b.reconciled for b in pages)
    # A completed first pull read every row: it counts as a reconcile, without a second scan.
    assert last.reconciled and not last.submissions and not last.deleted


def test_a_server_capping_the_page_below_the_limit_is_paged_to_the_end(
    token: str, mock: responses.RequestsMock
) -> None:
    server = DataServer([_row(i) for i in range(1, 251)], cap=100)
    mock.add_callback(responses.GET, DATA, callback=server)
    mirror = Mirror()
    mirror.pull(_source(page_size=1000))
    assert len(mirror.rows) == 250
    assert len(server.queries) == 3


def test_incremental_run_starts_after_the_stored_watermark(token: str, mock: responses.RequestsMock) -> None:
    server = DataServer([_row(i) for i in range(1, 11)])
    mock.add_callback(responses.GET, DATA, callback=server)
    mirror = Mirror()
    mirror.marks["kobo_last_id"] = "7"
    batches = mirror.pull(_source(page_size=100))
    assert json.loads(server.queries[0]["query"]) == {"_id": {"$gt": 7}}
    assert [s.submission_id for s in batches[0].submissions] == ["8", "9", "10"]


def test_rows_out_of_id_order_are_refused(token: str, mock: responses.RequestsMock) -> None:
    rows = [_row(5), _row(4)]
    mock.get(DATA, json={"count": 2, "next": None, "previous": None, "results": rows})
    with pytest.raises(SourceError, match="out of _id order"):
        Mirror().pull(_source())


def test_504_halves_the_page_size_and_keeps_it(token: str, mock: responses.RequestsMock) -> None:
    server = DataServer([_row(i) for i in range(1, 101)])
    mock.get(DATA, status=504, body="Gateway Time-out")
    mock.add_callback(responses.GET, DATA, callback=server)
    source = _source(page_size=80, retries=0)
    mirror = Mirror()
    mirror.pull(source)
    assert len(mirror.rows) == 100
    assert [q["limit"] for q in server.queries] == ["40", "40", "40"]
    assert source.page_size == 40


def test_review_status_mapping() -> None:
    assert review_status({"_validation_status": {}}) == "unreviewed"
    assert review_status({}) == "unreviewed"
    assert review_status({"_validation_status": {"uid": "validation_status_approved"}}) == "approved"
    assert review_status({"_validation_status": {"uid": "validation_status_not_approved"}}) == "rejected"
    assert review_status({"_validation_status": {"uid": "validation_status_on_hold"}}) == "on_hold"


def test_raw_submission_keeps_the_row_and_reads_its_facts() -> None:
    row = {
        **_row(42, "abc"),
        "form_version": "20260101000000",
        "_submission_time": "2026-01-02T03:04:05.123Z",
    }
    raw = raw_submission(row)
    assert raw.submission_id == "42" and raw.version_id == "abc"
    assert raw.submitted_at == "2026-01-02T03:04:05"
    assert raw.form_version == "20260101000000"
    assert raw.data is row
    assert raw_submission(_row(1)).form_version == "vK"  # no form_version answer: __version__


def test_every_recorded_real_submission_is_accepted_unchanged() -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    rows = [
        row
        for key, body in recorded.items()
        if "/data" in key and isinstance(body, dict)
        for row in body.get("results", [])
    ]
    assert len(rows) > 20
    for row in rows:
        raw = raw_submission(row)
        assert raw.data == row and raw.submission_id == str(row["_id"])
        assert raw.review_status in ("approved", "rejected", "on_hold", "unreviewed")
        if "_submission_time" in row:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", raw.submitted_at)
        else:  # a `fields` projection: no time to report
            assert raw.submitted_at == ""
    assert any(isinstance(v, list) and v and isinstance(v[0], dict) for row in rows for v in row.values())


def test_reconcile_refetches_edits_and_missing_records_statuses_and_deletions(
    token: str, mock: responses.RequestsMock
) -> None:
    server = DataServer([_row(i) for i in range(1, 8)])
    mock.add_callback(responses.GET, DATA, callback=server)
    mirror = Mirror(reconcile_due=True)
    mirror.pull(_source(page_size=3))
    server.queries.clear()
    # On the server: 2 edited, 3 approved, 5 deleted, 9 new; plus 4 missing from the store.
    server.rows = [_row(1), _row(2, "u2-edited"), _row(3, status="validation_status_approved"), _row(4)]
    server.rows += [_row(6), _row(7), _row(9)]
    del mirror.rows["4"], mirror.versions["4"], mirror.statuses["4"]
    mirror.marks["kobo_last_id"] = "7"
    batches = mirror.pull(_source(page_size=3))
    queries = [json.loads(q["query"]) for q in server.queries]
    assert queries[0] == {"_id": {"$gt": 7}}  # new rows first
    scans = [q for q in server.queries if "fields" in q]
    assert json.loads(scans[0]["fields"]) == ["_id", "_uuid", "_validation_status"]
    assert [q for q in queries if "$in" in q["_id"]] == [{"_id": {"$in": [2]}}, {"_id": {"$in": [4]}}]
    assert mirror.versions["2"] == "u2-edited" and "4" in mirror.rows
    assert mirror.statuses["3"] == "approved"
    assert "5" not in mirror.rows and batches[-1].deleted == ["5"] and batches[-1].reconciled
    assert sorted(mirror.rows, key=int) == ["1", "2", "3", "4", "6", "7", "9"]
    assert not any(b.reconciled for b in batches[:-1])


def test_bad_token_and_unknown_asset_errors(token: str, mock: responses.RequestsMock) -> None:
    mock.get(DATA, status=401, json={"detail": "Invalid token."})
    with pytest.raises(ServerError) as caught:
        Mirror().pull(_source())
    assert caught.value.status == 401 and "KOBO_TOKEN" in str(caught.value) and UID in str(caught.value)
    mock.replace(responses.GET, DATA, status=404, json={"detail": "Not found."})
    with pytest.raises(ServerError, match=f"asset {UID} .*was not found"):
        Mirror().pull(_source())
    mock.replace(
        responses.GET, DATA, status=400, json={"detail": "The specified asset has not been deployed"}
    )
    with pytest.raises(ServerError, match="has not been deployed"):
        Mirror().pull(_source())


def test_empty_asset_uid_is_a_config_error(token: str) -> None:
    with pytest.raises(ConfigError, match="asset_uid"):
        Mirror().pull(_source(asset_uid=""))


def test_list_assets_filters_surveys_and_follows_next(token: str, mock: responses.RequestsMock) -> None:
    first = f"{BASE}/api/v2/assets/"
    item = {
        "uid": "a1",
        "name": "One",
        "asset_type": "survey",
        "deployment_status": "deployed",
        "deployment__submission_count": 12,
    }
    mock.get(
        first,
        match=[responses.matchers.query_param_matcher({"q": "asset_type:survey", "limit": "100"})],
        json={"count": 3, "next": f"{first}?start=100&q=asset_type%3Asurvey", "results": [item]},
    )
    mock.get(
        first,
        match=[responses.matchers.query_param_matcher({"q": "asset_type:survey", "start": "100"})],
        json={
            "count": 3,
            "next": None,
            "results": [
                {
                    **item,
                    "uid": "a2",
                    "name": "Two",
                    "deployment__submission_count": None,
                    "deployment_status": "draft",
                },
                {**item, "uid": "b1", "asset_type": "block"},
            ],
        },
    )
    assets = _source().list_assets()
    assert assets == [
        {"uid": "a1", "name": "One", "deployment_status": "deployed", "submission_count": "12"},
        {"uid": "a2", "name": "Two", "deployment_status": "draft", "submission_count": ""},
    ]


# --- deploy --------------------------------------------------------------------------------------


@pytest.fixture
def form(tmp_path: Path) -> FormFiles:
    xlsx = tmp_path / "tip_victims.xlsx"
    xlsx.write_bytes(b"PK\x03\x04 fake xlsx bytes")
    return FormFiles("tip_victims", "Victims", "20260101000000", xlsx, tmp_path / "tip_victims.xml")


def _multipart_fields(body: bytes) -> dict[str, str]:
    return dict(re.findall(rb'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', body))  # type: ignore[arg-type]


def _asset(uid: str, *, deployed: bool, version: str = "vNew") -> dict[str, Any]:
    return {
        "uid": uid,
        "version_id": version,
        "has_deployment": deployed,
        "deployed_version_id": "vOld" if deployed else None,
        "deployment__links": {
            "url": f"https://ee.example.org/{uid}",
            "offline_url": f"https://ee.example.org/x/{uid}",
        },
    }


def test_first_deploy_imports_polls_then_posts_deployment(
    token: str, mock: responses.RequestsMock, form: FormFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kobo_tip.sources.kobo.time.sleep", lambda s: None)
    task = f"{BASE}/api/v2/imports/iTask/"
    mock.post(
        f"{BASE}/api/v2/imports/", status=201, json={"uid": "iTask", "url": task, "status": "processing"}
    )
    mock.get(task, json={"status": "processing", "messages": {}})
    mock.get(task, json={"status": "complete", "messages": {"created": [{"uid": "aNew", "kind": "asset"}]}})
    mock.get(f"{BASE}/api/v2/assets/aNew/", json=_asset("aNew", deployed=False))
    mock.post(
        f"{BASE}/api/v2/assets/aNew/deployment/",
        json={
            "active": True,
            "version_id": "vNew",
            "asset": {**_asset("aNew", deployed=True), "deployed_version_id": "vNew"},
        },
    )
    result = _source(asset_uid="").deploy(form)
    methods = [(c.request.method, urlsplit(c.request.url).path) for c in mock.calls]
    assert methods == [
        ("POST", "/api/v2/imports/"),
        ("GET", "/api/v2/imports/iTask/"),
        ("GET", "/api/v2/imports/iTask/"),
        ("GET", "/api/v2/assets/aNew/"),
        ("POST", "/api/v2/assets/aNew/deployment/"),
    ]
    upload = mock.calls[0].request
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    fields = _multipart_fields(upload.body)
    assert fields == {b"library": b"false"}  # no destination for a new asset
    assert b'filename="tip_victims.xlsx"' in upload.body and b"fake xlsx bytes" in upload.body
    assert json.loads(mock.calls[4].request.body) == {"active": True}
    assert result.uid == "aNew" and result.version == "vNew"
    assert result.url == f"{BASE}/api/v2/assets/aNew/"
    assert result.enketo_url == "https://ee.example.org/x/aNew"


def test_redeploy_replaces_the_asset_and_patches_with_version_id(
    token: str, mock: responses.RequestsMock, form: FormFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kobo_tip.sources.kobo.time.sleep", lambda s: None)
    task = f"{BASE}/api/v2/imports/iTask/"
    mock.post(
        f"{BASE}/api/v2/imports/", status=201, json={"uid": "iTask", "url": task, "status": "processing"}
    )
    mock.get(task, json={"status": "complete", "messages": {"updated": [{"uid": UID, "kind": "asset"}]}})
    mock.get(f"{BASE}/api/v2/assets/{UID}/", json=_asset(UID, deployed=True, version="vSecond"))
    mock.patch(
        f"{BASE}/api/v2/assets/{UID}/deployment/",
        json={
            "active": True,
            "version_id": "vSecond",
            "asset": _asset(UID, deployed=True, version="vSecond"),
        },
    )
    result = _source().deploy(form)
    fields = _multipart_fields(mock.calls[0].request.body)
    assert fields == {b"library": b"false", b"destination": f"{BASE}/api/v2/assets/{UID}/".encode()}
    assert json.loads(mock.calls[-1].request.body) == {"active": True, "version_id": "vSecond"}
    assert result.uid == UID and result.version == "vSecond"


def test_import_ending_in_error_shows_kobo_message_verbatim_and_deploys_nothing(
    token: str, mock: responses.RequestsMock, form: FormFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kobo_tip.sources.kobo.time.sleep", lambda s: None)
    task = f"{BASE}/api/v2/imports/iTask/"
    mock.post(
        f"{BASE}/api/v2/imports/", status=201, json={"uid": "iTask", "url": task, "status": "processing"}
    )
    error = {"error": "Duplicate node name: 'age_years'", "error_type": "DuplicateNameException"}
    mock.get(task, json={"status": "error", "messages": error})
    with pytest.raises(ServerError) as caught:
        _source().deploy(form)
    assert "DuplicateNameException: Duplicate node name: 'age_years'" in str(caught.value)
    assert caught.value.detail == error
    assert len(mock.calls) == 2


def test_deploy_400_shows_the_error_verbatim(
    token: str, mock: responses.RequestsMock, form: FormFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kobo_tip.sources.kobo.time.sleep", lambda s: None)
    task = f"{BASE}/api/v2/imports/iTask/"
    mock.post(
        f"{BASE}/api/v2/imports/",
        status=201,
        json={"uid": "iTask", "url": task, "status": "complete", "messages": {"created": [{"uid": "aNew"}]}},
    )
    mock.get(f"{BASE}/api/v2/assets/aNew/", json=_asset("aNew", deployed=False))
    message = "The survey element named 'event_date' has no label or hint."
    mock.post(f"{BASE}/api/v2/assets/aNew/deployment/", status=400, json={"error": message})
    with pytest.raises(ServerError) as caught:
        _source(asset_uid="").deploy(form)
    assert str(caught.value) == f"KoboToolbox could not deploy asset aNew: {message}"
    assert caught.value.status == 400


def test_import_that_never_finishes_is_bounded(
    token: str, mock: responses.RequestsMock, form: FormFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kobo_tip.sources.kobo.time.sleep", lambda s: None)
    task = f"{BASE}/api/v2/imports/iTask/"
    mock.post(
        f"{BASE}/api/v2/imports/", status=201, json={"uid": "iTask", "url": task, "status": "processing"}
    )
    mock.get(task, json={"status": "processing", "messages": {}})
    with pytest.raises(ServerError, match="still 'processing'"):
        _source(import_wait=0.05).deploy(form)


def test_a_store_without_watermark_but_with_rows_gets_a_full_reconcile(
    token: str, mock: responses.RequestsMock
) -> None:
    server = DataServer([_row(1), _row(2)])
    mock.add_callback(responses.GET, DATA, callback=server)
    mirror = Mirror()
    mirror.apply(Batch(submissions=[raw_submission(_row(99))]))  # rows from elsewhere, no Kobo watermark
    batches = mirror.pull(_source())
    assert sorted(mirror.rows) == ["1", "2"]
    assert batches[-1].deleted == ["99"] and batches[-1].reconciled


def test_read_ahead_keeps_order_and_raises_an_error_after_the_items_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ServerError("the third page failed")

    received: list[int] = []
    with pytest.raises(ServerError, match="third page"):
        for page in _ReadAhead(pages()):
            received.append(page)
    assert received == [1, 2]


def test_read_ahead_stops_soon_after_its_caller_does() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        while True:
            produced.append(len(produced) + 1)
            yield produced[-1]

    for page in _ReadAhead(endless()):
        if page == 3:
            break
    deadline = time.monotonic() + 5
    while any(t.name == "kobo-tip-pages" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "kobo-tip-pages" for t in threading.enumerate())
    assert len(produced) <= 5  # the pages taken, one waiting, one on the way
