"""ODK Central connector, pure parts: filters, row mapping, error mapping, login (responses library)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import responses

from fakes import Mirror
from kobo_tip.errors import SecretMissingError, ServerError, SourceError
from kobo_tip.sources.odk_central import (
    CHANGED,
    CURSOR,
    OVERLAP,
    CentralSource,
    _Pass,
    changes_filter,
    deletions_filter,
    ids_filter,
    odata_time,
    parse_time,
    path_segment,
    raw_submission,
    review_status,
)

BASE = "https://central.example.org"
PASSWORD = "s3cret-Pa55word"
FORMS = f"{BASE}/v1/projects/7/forms"


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> CentralSource:
    monkeypatch.setenv("ODK_TEST_EMAIL", "me@example.org")
    monkeypatch.setenv("ODK_TEST_PASSWORD", PASSWORD)
    return CentralSource(
        url=BASE,
        project_id=7,
        form_id="tip_victims",
        username_env="ODK_TEST_EMAIL",
        password_env="ODK_TEST_PASSWORD",
        retries=0,
        backoff=0,
    )


def login_ok(rsps: responses.RequestsMock, token: str = "tok-1") -> None:
    """Central accepts the login (and the logout that ends every operation)."""
    rsps.delete(f"{BASE}/v1/sessions/current", json={"success": True})
    rsps.post(
        f"{BASE}/v1/sessions",
        json={
            "createdAt": "2026-01-01T00:00:00.000Z",
            "expiresAt": "2026-01-02T00:00:00.000Z",
            "token": token,
        },
    )


# --- filters --------------------------------------------------------------------------------------


def test_changes_filter_covers_new_rows_through_submission_date_with_an_overlap() -> None:
    since = dt.datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
    text = changes_filter(since)
    stamp = odata_time(since - OVERLAP)
    assert text == f"__system/submissionDate gt {stamp} or __system/updatedAt gt {stamp}"
    assert stamp == "2026-03-01T11:58:00.250Z"
    assert changes_filter(None) == ""


def test_deletions_filter_always_mentions_deleted_at() -> None:
    assert deletions_filter(None) == "__system/deletedAt ne null"
    since = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert deletions_filter(since) == f"__system/deletedAt gt {odata_time(since - OVERLAP)}"


def test_ids_filter_quotes_and_escapes_single_quotes() -> None:
    assert ids_filter(["uuid:a", "o'k"]) == "__id eq 'uuid:a' or __id eq 'o''k'"


def test_path_segment_encodes_like_encode_uri_component() -> None:
    assert path_segment("tip victims/é") == "tip%20victims%2F%C3%A9"
    assert path_segment("a(b)*'!") == "a(b)*'!"


def test_times_parse_to_utc_and_print_in_odata_form() -> None:
    assert parse_time("2026-01-05T15:00:01.5+07:00") == dt.datetime(
        2026, 1, 5, 8, 0, 1, 500000, tzinfo=dt.UTC
    )
    assert parse_time("2026-01-05T08:00:01.123Z") == dt.datetime(2026, 1, 5, 8, 0, 1, 123000, tzinfo=dt.UTC)
    assert parse_time(None) is None
    assert parse_time("yesterday") is None
    assert odata_time(dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))) == (
        "2026-01-05T08:00:00.000Z"
    )


def test_pass_watermark_never_passes_the_start_of_the_pass() -> None:
    started = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    progress = _Pass(started=started)
    progress.see(dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC), None)
    assert progress.next_watermark(None) == dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)
    progress.see(dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC))  # changed while paging
    assert progress.next_watermark(None) == started
    previous = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert _Pass().next_watermark(previous) == previous


# --- rows -----------------------------------------------------------------------------------------


def row(**system: object) -> dict[str, object]:
    base = {
        "submissionDate": "2026-02-03T01:02:03.456Z",
        "updatedAt": None,
        "deletedAt": None,
        "reviewState": None,
        "formVersion": "20260101000000",
    }
    base.update(system)
    return {
        "__id": "uuid:first",
        "__system": base,
        "event": {"event_date": "2026-02-01"},
        "person": {"age_years": 31},
        "meta": {"instanceID": "uuid:second", "deprecatedID": "uuid:first"},
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, "unreviewed"),
        ("approved", "approved"),
        ("rejected", "rejected"),
        ("hasIssues", "on_hold"),
        ("edited", "unreviewed"),
        ("somethingNew", None),
    ],
)
def test_review_states_map_to_store_statuses(state: str | None, expected: str | None) -> None:
    assert review_status(state) == expected
    assert raw_submission(row(reviewState=state)).review_status == expected


def test_raw_submission_keys_on_id_and_versions_on_instance_id() -> None:
    data = row(submissionDate="2026-02-03T08:02:03.999+07:00")
    raw = raw_submission(data)
    assert raw.submission_id == "uuid:first"
    assert raw.version_id == "uuid:second"
    assert raw.submitted_at == "2026-02-03T01:02:03"
    assert raw.form_version == "20260101000000"  # from __system/formVersion
    assert raw.data is data  # kept exactly as sent, nested groups and numbers included


def test_form_version_answer_wins_over_the_system_version() -> None:
    data = row()
    data["form_version"] = "20260202020202"
    assert raw_submission(data).form_version == "20260202020202"


def test_row_without_id_or_date_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="lacks __id"):
        raw_submission({"value": 1})
    with pytest.raises(SourceError, match="submissionDate"):
        raw_submission(row(submissionDate="soon"))


# --- errors and login -------------------------------------------------------------------------------


@responses.activate
def test_login_then_bearer_token_on_every_call(source: CentralSource) -> None:
    login_ok(responses.mock, "tok-abc")
    responses.get(
        FORMS, json=[{"xmlFormId": "tip_victims", "name": "TIP", "state": "open", "submissions": 4}]
    )
    assets = source.list_assets()
    assert assets == [
        {"uid": "tip_victims", "name": "TIP", "deployment_status": "open", "submission_count": "4"}
    ]
    login, forms, logout = responses.calls
    assert json.loads(login.request.body) == {"email": "me@example.org", "password": PASSWORD}
    assert "Authorization" not in login.request.headers
    assert forms.request.headers["Authorization"] == "Bearer tok-abc"
    assert forms.request.headers["X-Extended-Metadata"] == "true"
    assert logout.request.method == "DELETE" and logout.request.headers["Authorization"] == "Bearer tok-abc"


@responses.activate
def test_refused_login_names_the_variables_and_never_the_password(source: CentralSource) -> None:
    responses.post(
        f"{BASE}/v1/sessions",
        status=401,
        json={"message": "Could not authenticate with the provided credentials.", "code": 401.2},
    )
    with pytest.raises(ServerError) as caught:
        source.list_assets()
    text = str(caught.value)
    assert "401.2" in text and "ODK_TEST_EMAIL" in text and "ODK_TEST_PASSWORD" in text
    assert PASSWORD not in text and PASSWORD not in repr(caught.value.detail)
    assert caught.value.status == 401


def test_missing_password_variable_is_a_config_error(
    source: CentralSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ODK_TEST_PASSWORD")
    with pytest.raises(SecretMissingError, match="ODK_TEST_PASSWORD"):
        source.list_assets()


@responses.activate
def test_expired_session_logs_in_again_once(source: CentralSource) -> None:
    login_ok(responses.mock, "old")
    login_ok(responses.mock, "new")
    expired = {"message": "Could not authenticate with the provided credentials.", "code": 401.2}
    responses.get(FORMS, status=401, json=expired)
    responses.get(FORMS, json=[])
    assert source.list_assets() == []
    tokens = [call.request.headers.get("Authorization") for call in responses.calls]
    assert tokens == [None, "Bearer old", None, "Bearer new", "Bearer new"]  # the last one logs out


@responses.activate
def test_a_second_401_after_a_fresh_login_is_an_error(source: CentralSource) -> None:
    login_ok(responses.mock)
    responses.get(FORMS, status=401, json={"message": "Could not authenticate.", "code": 401.2})
    with pytest.raises(ServerError, match=r"HTTP 401, error 401\.2"):
        source.list_assets()
    assert sum(call.request.url.endswith("/v1/sessions") for call in responses.calls) == 2


@responses.activate
def test_form_warnings_are_listed_with_the_way_out(source: CentralSource, tmp_path) -> None:
    from kobo_tip.sources.base import FormFiles

    login_ok(responses.mock)
    responses.get(f"{FORMS}/tip_victims", status=404, json={"message": "Not found.", "code": 404.1})
    details = {
        "warnings": {
            "xlsFormWarnings": ["Languages 'English' has no code."],
            "workflowWarnings": [{"type": "structureChanged", "details": ["age"]}],
        }
    }
    responses.post(
        FORMS,
        status=400,
        json={"message": "The XLSForm is valid, but there are warnings.", "code": 400.16, "details": details},
    )
    xml = tmp_path / "tip_victims.xml"
    xml.write_bytes(b"<h:html/>")
    form = FormFiles("tip_victims", "TIP", "20260101000000", tmp_path / "tip_victims.xlsx", xml)
    with pytest.raises(ServerError) as caught:
        source.deploy(form)
    text = str(caught.value)
    assert "400.16" in text and "Languages 'English' has no code." in text
    assert "structureChanged: ['age']" in text and "--ignore-warnings" in text
    upload = next(
        call.request
        for call in responses.calls
        if call.request.method == "POST" and call.request.url.startswith(FORMS)
    )
    assert "ignoreWarnings" not in upload.url
    assert upload.headers["Content-Type"] == "application/xml" and upload.body == b"<h:html/>"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            409,
            {"message": "The version '1' of form 'tip_victims' already exists.", "code": 409.6},
            r"error 409\.6: The version '1' .*kobo-tip form build",
        ),
        (
            409,
            {"message": "A resource already exists with xmlFormId value(s) of tip_victims.", "code": 409.3},
            r"HTTP 409 to .*\(error 409\.3: A resource already exists",
        ),
        (
            403,
            {"message": "The authenticated actor does not have rights.", "code": 403.1},
            r"403.*403\.1.*role",
        ),
        (
            404,
            {"message": "Could not find the resource.", "code": 404.1},
            r"^ODK Central answered 'not found' to the request for the form list of project 7 "
            r"\(HTTP 404, error 404\.1: Could not find the resource\): "
            r"check \[source\] url, project_id and form_id\.$",
        ),
        (502, "<html>Bad gateway</html>", r"HTTP 502"),
    ],
)
@responses.activate
def test_central_error_codes_and_messages_reach_the_user(
    source: CentralSource, status: int, body: object, expected: str
) -> None:
    login_ok(responses.mock)
    if isinstance(body, dict):
        responses.get(FORMS, status=status, json=body)
    else:
        responses.get(FORMS, status=status, body=str(body))
    with pytest.raises(ServerError, match=expected) as caught:
        source.list_assets()
    assert caught.value.status == status
    assert "tok-1" not in str(caught.value)


@responses.activate
def test_next_links_are_followed_on_the_configured_server(source: CentralSource) -> None:
    login_ok(responses.mock)
    odata = f"{FORMS}/tip_victims.svc/Submissions"
    # Central builds the link from its own domain setting, here unreachable from this machine.
    elsewhere = "https://central.internal/v1/projects/7/forms/tip_victims.svc/Submissions"
    responses.get(odata, json={"value": [row()], "@odata.nextLink": f"{elsewhere}?$top=1&$skiptoken=01abc"})
    second = row()
    second["__id"] = "uuid:other"
    responses.get(odata, json={"value": [second]})
    responses.get(odata, json={"value": []})  # the deletions query
    mirror = Mirror()
    batches = mirror.pull(source)
    assert set(mirror.rows) == {"uuid:first", "uuid:other"}
    urls = [call.request.url for call in responses.calls if ".svc/" in call.request.url]
    assert urls[1] == f"{odata}?$top=1&$skiptoken=01abc"
    assert batches[0].watermarks[CURSOR] == "$top=1&$skiptoken=01abc"
    assert batches[1].watermarks[CURSOR] == "" and batches[1].watermarks[CHANGED]
