"""kobo_tip.http against a real HTTP server on loopback (the fake Kobo) and with `responses`."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses

from fakes.kobo_server import FakeKobo
from kobo_tip import __version__
from kobo_tip.errors import KoboTipError, ServerError
from kobo_tip.http import ServerTimeout, get_json, new_session, request, safe_url


@pytest.fixture
def kobo() -> Iterator[FakeKobo]:
    with FakeKobo() as fake:
        fake.add_submissions(30)
        yield fake


def _session(kobo: FakeKobo, **kwargs: object) -> requests.Session:
    options: dict[str, object] = {"token": kobo.token, "timeout": (2.0, 0.5), "backoff": 0.01, **kwargs}
    return new_session(kobo.url, **options)  # type: ignore[arg-type]


def _data_url(kobo: FakeKobo) -> str:
    return f"{kobo.url}/api/v2/assets/{kobo.asset_uid}/data/"


def _data_requests(kobo: FakeKobo) -> int:
    return sum(1 for _, path, _ in kobo.requests if path.endswith("/data/"))


def test_session_sends_user_agent_accept_and_token_with_scheme() -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://central.example.org/v1/projects", json=[])
        session = new_session("https://central.example.org", token="abc", token_scheme="Bearer")
        request(session, "GET", "https://central.example.org/v1/projects")
        headers = mock.calls[0].request.headers
    assert headers["User-Agent"] == f"kobo-tip/{__version__}"
    assert headers["Accept"] == "application/json"
    assert headers["Authorization"] == "Bearer abc"


@pytest.mark.parametrize("token", ["abc", None])
def test_credentials_in_a_netrc_file_are_never_sent(
    token: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine kf.example.org login someone password netrc-password\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with responses.RequestsMock() as mock:
        mock.get(_HTTPS_ASSETS, json={})
        mock.get(f"{_HTTPS_ASSETS}old/", status=302, headers={"Location": _HTTPS_ASSETS})
        for url in (_HTTPS_ASSETS, f"{_HTTPS_ASSETS}old/"):
            request(new_session("https://kf.example.org", token=token), "GET", url)
        sent = [call.request.headers.get("Authorization") for call in mock.calls]
    # Secrets come from the environment only: the file's Basic credentials would replace the token,
    # and requests looks ~/.netrc up again on every redirect.
    assert sent == [f"Token {token}" if token else None] * 3


_HTTPS_ASSETS = "https://kf.example.org/api/v2/assets/"


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://elsewhere.example.net/files/1",  # another host
        "http://kf.example.org/api/v2/assets/",  # the same host, another scheme
        "https://kf.example.org:8443/api/v2/assets/",  # the same host, another port
    ],
)
def test_a_redirect_to_another_origin_is_refused_and_nothing_goes_there(elsewhere: str) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(_HTTPS_ASSETS, status=302, headers={"Location": elsewhere})
        mock.get(elsewhere, json={})
        with pytest.raises(ServerError, match=r"not the configured https://kf\.example\.org:443") as caught:
            request(new_session("https://kf.example.org", token="abc"), "GET", _HTTPS_ASSETS)
        assert [call.request.url for call in mock.calls] == [_HTTPS_ASSETS]
    assert "set [source] url" in str(caught.value)


def test_a_url_of_another_origin_is_refused_before_anything_is_sent() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get("https://evil.example.net/api/v2/assets/?page=2", json={})
        with pytest.raises(ServerError, match=r"evil\.example\.net:443, which is not the configured"):
            request(
                new_session("https://kf.example.org", token="abc"),
                "GET",
                "https://evil.example.net/api/v2/assets/?page=2",
            )
        assert len(mock.calls) == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_post_is_never_sent_again(status: int) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(
            "https://central.example.org/v1/sessions", status=status, headers={"Location": "/v1/sessions2"}
        )
        mock.post("https://central.example.org/v1/sessions2", json={"token": "t"})
        with pytest.raises(ServerError, match="never sends a request body") as caught:
            request(
                new_session("https://central.example.org"),
                "POST",
                "https://central.example.org/v1/sessions",
                json={"password": "pw"},
            )
        assert len(mock.calls) == 1
    assert f"answered {status} to a POST" in str(caught.value)


def test_session_without_token_sends_no_authorization() -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://kf.example.org/api/v2/assets/", json={})
        request(new_session("https://kf.example.org"), "GET", "https://kf.example.org/api/v2/assets/")
        assert "Authorization" not in mock.calls[0].request.headers


def test_default_timeout_applies_to_every_request(kobo: FakeKobo) -> None:
    kobo.inject("timeout", delay=1.0, times=10)
    session = _session(kobo, retries=1, timeout=(2.0, 0.2))
    started = time.monotonic()
    with pytest.raises(ServerTimeout) as caught:
        request(session, "GET", _data_url(kobo), what="asset x")
    assert time.monotonic() - started < 3.0  # two tries of 0.2 s, not two of 1 s + backoff
    assert "127.0.0.1" in str(caught.value)
    assert _data_requests(kobo) == 2  # the first try and one retry


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_on_get(kobo: FakeKobo, status: int) -> None:
    kobo.inject("status", status=status, times=2)
    body = get_json(_session(kobo), _data_url(kobo))
    assert body["count"] == 30
    assert _data_requests(kobo) == 3


def test_retry_after_is_honoured(kobo: FakeKobo) -> None:
    kobo.inject("status", status=429, retry_after="1")
    started = time.monotonic()
    get_json(_session(kobo), _data_url(kobo))
    assert time.monotonic() - started >= 0.95


def test_post_is_not_retried_on_500_or_503(kobo: FakeKobo) -> None:
    session = _session(kobo)
    for status in (500, 503):
        kobo.inject("status", status=status, path="/imports/")
        before = len(kobo.requests)
        with pytest.raises(ServerError) as caught:
            request(session, "POST", f"{kobo.url}/api/v2/imports/", data={"library": "false"})
        assert caught.value.status == status
        assert len(kobo.requests) == before + 1


def test_retries_exhausted_give_the_last_status_and_message(kobo: FakeKobo) -> None:
    kobo.inject("status", status=502, times=10)
    with pytest.raises(ServerError) as caught:
        get_json(_session(kobo, retries=2), _data_url(kobo))
    assert caught.value.status == 502
    assert "502" in str(caught.value) and "injected 502" in str(caught.value)
    assert _data_requests(kobo) == 3


def test_connection_reset_mid_body_is_re_requested(kobo: FakeKobo) -> None:
    kobo.inject("reset")
    body = get_json(_session(kobo), _data_url(kobo))
    assert len(body["results"]) == 30
    assert _data_requests(kobo) == 2
    kobo.inject("reset", times=5)
    with pytest.raises(ServerError, match=r"127\.0\.0\.1:\d+ broke off its answer to GET \S+ mid-way"):
        get_json(_session(kobo), _data_url(kobo))
    assert _data_requests(kobo) == 5  # three tries of the body


def test_truncated_json_is_re_requested_then_reported(kobo: FakeKobo) -> None:
    kobo.inject("truncate")
    assert get_json(_session(kobo), _data_url(kobo))["count"] == 30
    kobo.inject("truncate", times=5)
    with pytest.raises(ServerError, match="not valid JSON"):
        get_json(_session(kobo), _data_url(kobo))


def test_bad_token_says_token_and_names_the_resource_and_variable(kobo: FakeKobo) -> None:
    session = new_session(kobo.url, token="wrong-token-value", timeout=(2, 2), token_name="KOBO_TOKEN")
    with pytest.raises(ServerError) as caught:
        request(session, "GET", _data_url(kobo), what=f"asset {kobo.asset_uid}")
    message = str(caught.value)
    assert caught.value.status == 401
    assert "token" in message and kobo.asset_uid in message and "KOBO_TOKEN" in message
    assert "Invalid token." in message
    assert "wrong-token-value" not in message


def test_not_found_names_the_missing_asset(kobo: FakeKobo) -> None:
    with pytest.raises(ServerError) as caught:
        request(_session(kobo), "GET", f"{kobo.url}/api/v2/assets/aNope/", what="asset aNope")
    assert caught.value.status == 404
    assert "asset aNope" in str(caught.value) and "not found" in str(caught.value)


def test_other_errors_carry_status_and_server_message() -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://kf.example.org/api/v2/x/", status=400, json={"detail": "Bad query here"})
        with pytest.raises(ServerError) as caught:
            request(new_session("https://kf.example.org"), "GET", "https://kf.example.org/api/v2/x/")
    assert caught.value.status == 400
    assert caught.value.detail == "Bad query here"
    assert "400" in str(caught.value) and "Bad query here" in str(caught.value)


def test_unreachable_host_is_a_clear_error_naming_the_host() -> None:
    port = _closed_port()
    session = new_session(f"http://127.0.0.1:{port}", token="t", timeout=(0.5, 0.5), retries=1, backoff=0.01)
    with pytest.raises(ServerError) as caught:
        request(session, "GET", f"http://127.0.0.1:{port}/api/v2/assets/?token=s3cr3t")
    message = str(caught.value)
    assert isinstance(caught.value, KoboTipError)
    assert f"127.0.0.1:{port}" in message and "Could not reach" in message
    assert "s3cr3t" not in message and "s3cr3t" not in (caught.value.url or "")


def test_safe_url_strips_userinfo_and_credential_parameters() -> None:
    url = "https://user:pw@kf.example.org:8443/api/v2/data/?limit=5&api_key=K&st=S&access_token=T&sort=x"
    clean = safe_url(url)
    assert clean == "https://kf.example.org:8443/api/v2/data/?limit=5&sort=x"


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kobo_tip.http"]


def test_each_retry_is_a_warning_with_the_cause_attempt_and_wait(
    kobo: FakeKobo, caplog: pytest.LogCaptureFixture
) -> None:
    kobo.inject("status", status=503, times=2)
    with caplog.at_level(logging.WARNING, logger="kobo_tip.http"):
        get_json(_session(kobo, backoff=0.2, retries=4), _data_url(kobo) + "?limit=3&token=s3cr3t")
    where = f"{kobo.url}/api/v2/assets/{kobo.asset_uid}/data/?limit=3"
    assert _retry_lines(caplog) == [
        f"GET {where}: answered 503; retry 1 of 4 in 0.0 s",
        f"GET {where}: answered 503; retry 2 of 4 in 0.4 s",
    ]


def test_retries_of_a_broken_body_and_of_a_dead_address_are_said_too(
    kobo: FakeKobo, caplog: pytest.LogCaptureFixture
) -> None:
    kobo.inject("truncate")
    port = _closed_port()
    dead = new_session(f"http://127.0.0.1:{port}", timeout=(0.5, 0.5), retries=2, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="kobo_tip.http"):
        get_json(_session(kobo), _data_url(kobo))
        with pytest.raises(ServerError):
            request(dead, "GET", f"http://127.0.0.1:{port}/api/v2/assets/")
    lines = _retry_lines(caplog)
    assert lines[0].endswith(": the answer is not valid JSON; retry 1 of 2 in 0.0 s")
    assert lines[1:] == [
        f"GET http://127.0.0.1:{port}/api/v2/assets/: could not connect; retry 1 of 2 in 0.0 s",
        f"GET http://127.0.0.1:{port}/api/v2/assets/: could not connect; retry 2 of 2 in 0.0 s",
    ]
