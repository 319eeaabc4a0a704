"""The Kobo REST Service that pushes to ``kobo-tip serve``: ``kobo-tip hook register`` and the hook
lines of ``kobo-tip status``, over real HTTP against the fake Kobo on loopback.

The fake keeps every request whole (``FakeKobo.exchanges``), so the tests can follow the hook's
password and header token, which must travel to the configured Kobo only inside the hook body,
and the API token, which must travel only as the Authorization header.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fakes.kobo_server import FakeKobo
from fakes.listener import Listener
from kobo_tip.cli import main
from kobo_tip.config import load_settings
from kobo_tip.sources.kobo import Hook, HookFailure, KoboSource
from kobo_tip.store import open_store

USERNAME = "kobo-pusher"
PASSWORD = "hook-password-K7q2-0123456789-abcdef"
HEADER_TOKEN = "hook-header-token-Zx81-0123456789-xyz"
PUBLIC = "https://tip.example.org"


@pytest.fixture
def kobo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKobo]:
    with FakeKobo() as fake:
        monkeypatch.setenv("KOBO_TOKEN", fake.token)
        monkeypatch.setenv("KOBO_TIP_HOOK_USERNAME", USERNAME)
        monkeypatch.setenv("KOBO_TIP_HOOK_PASSWORD", PASSWORD)
        monkeypatch.setenv("KOBO_TIP_HOOK_TOKEN", HEADER_TOKEN)
        yield fake


def kobo_config(make_project: Callable[..., Path], url: str, uid: str, serve: str = "") -> Path:
    sections = {"source": f'kind = "kobo"\nurl = "{url}"\nasset_uid = "{uid}"'}
    if serve:
        sections["serve"] = serve
    return make_project(**sections)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def endpoint_of(kobo: FakeKobo, public: str = PUBLIC) -> str:
    return f"{public}/hooks/kobo/{kobo.asset_uid}"


def hook_writes(kobo: FakeKobo) -> list[tuple[str, str]]:
    """(method, path) of every create or update of a hook the fake received."""
    return [
        (method, path)
        for method, path, _ in kobo.requests
        if method in ("POST", "PATCH") and "/hooks/" in path
    ]


def header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


# --- register --------------------------------------------------------------------------------


def test_register_creates_a_basic_auth_hook_with_kobos_body(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, out, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC + "/")
    assert code == 0, err
    [hook] = kobo.hooks.values()
    [post] = [x for x in kobo.exchanges if x.method == "POST"]
    assert post.target == f"/api/v2/assets/{kobo.asset_uid}/hooks/"
    assert json.loads(post.body) == {
        "name": "kobo-tip",
        "endpoint": endpoint_of(kobo),  # the trailing slash of --url is not doubled
        "active": True,
        "export_type": "json",
        "auth_level": "basic_auth",
        "settings": {"username": USERNAME, "password": PASSWORD},
        "email_notification": True,
    }
    assert hook.fields["endpoint"] == endpoint_of(kobo)
    assert out.strip() == (
        f"created REST Service 'kobo-tip' ({hook.uid}) of asset {kobo.asset_uid}: {endpoint_of(kobo)}, "
        "basic auth from KOBO_TIP_HOOK_USERNAME and KOBO_TIP_HOOK_PASSWORD"
    )


def test_register_with_a_header_sends_the_token_as_a_custom_header_without_basic_auth(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid, serve='hook_auth = "header"')
    code, out, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)
    assert code == 0, err
    [hook] = kobo.hooks.values()
    assert hook.fields["auth_level"] == "no_auth"
    # custom_headers, as the code reads it (the docs' "customer_headers" is a typo: kobo-api.md 6).
    assert hook.fields["settings"] == {"custom_headers": {"X-Kobo-Tip-Token": HEADER_TOKEN}}
    assert "created" in out and "header X-Kobo-Tip-Token from KOBO_TIP_HOOK_TOKEN" in out


def test_a_second_register_updates_the_hook_and_adds_none(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    assert run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)[0] == 0
    [uid] = kobo.hooks
    # The proxy moved: the hook named kobo-tip follows it.
    code, out, err = run(
        capsys, "hook", "register", "-c", str(config), "--url", "https://push.example.net/tip"
    )
    assert code == 0, err
    assert list(kobo.hooks) == [uid]
    assert kobo.hooks[uid].fields["endpoint"] == endpoint_of(kobo, "https://push.example.net/tip")
    assert hook_writes(kobo) == [
        ("POST", f"/api/v2/assets/{kobo.asset_uid}/hooks/"),
        ("PATCH", f"/api/v2/assets/{kobo.asset_uid}/hooks/{uid}/"),
    ]
    assert out.startswith(f"updated REST Service 'kobo-tip' ({uid})")


def test_a_hook_typed_in_kobos_ui_for_the_same_endpoint_is_taken_over(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    typed = kobo.add_hook(
        "our receiver",
        endpoint_of(kobo) + "/",
        active=False,
        settings={"username": "old", "password": "old-pass"},
    )
    config = kobo_config(make_project, kobo.url, kobo.asset_uid, serve='hook_auth = "header"')
    assert run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)[0] == 0
    assert list(kobo.hooks) == [typed.uid]
    assert typed.fields["active"] is True and typed.fields["name"] == "kobo-tip"
    # The settings are replaced whole: the old basic-auth password does not linger beside the header.
    assert typed.fields["settings"] == {"custom_headers": {"X-Kobo-Tip-Token": HEADER_TOKEN}}
    assert [method for method, _ in hook_writes(kobo)] == ["PATCH"]


@pytest.mark.parametrize("auth", ["basic", "header"])
def test_credentials_travel_only_in_the_hook_body_and_the_token_only_as_authorization(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str], auth: str
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid, serve=f'hook_auth = "{auth}"')
    for _ in range(2):  # a create, then an update
        code, out, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)
        assert code == 0, err
        for secret in (PASSWORD, HEADER_TOKEN, USERNAME, kobo.token):
            assert secret not in out + err
    secret = PASSWORD if auth == "basic" else HEADER_TOKEN
    carried = []
    for exchange in kobo.exchanges:
        assert header(exchange.headers, "Authorization") == f"Token {kobo.token}"
        others = {k: v for k, v in exchange.headers.items() if k.lower() != "authorization"}
        assert kobo.token not in json.dumps(others) + exchange.target + exchange.body.decode()
        assert secret not in json.dumps(exchange.headers) + exchange.target
        if secret.encode() in exchange.body:
            carried.append((exchange.method, exchange.target))
            settings = json.loads(exchange.body)["settings"]
            assert secret in json.dumps(settings), "inside the hook's settings, nowhere else in the body"
    uid = next(iter(kobo.hooks))
    hooks = f"/api/v2/assets/{kobo.asset_uid}/hooks/"
    assert carried == [("POST", hooks), ("PATCH", f"{hooks}{uid}/")]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://tip.example.org", "must be an https:// address"),
        ("HTTP://tip.example.org:8080/", "must be an https:// address"),
        ("tip.example.org", "must be an https:// address"),
        ("https://pusher:s3cret-in-the-url@tip.example.org", "holds a user name or password"),
        ("https://tip.example.org/?key=1", "has a query or fragment"),
        ("https://tip.example.org/#top", "has a query or fragment"),
        ("https://tip.example.org:port/", "is not a valid URL"),
    ],
)
def test_a_url_unfit_for_credentials_is_refused_before_anything_is_sent(
    kobo: FakeKobo,
    make_project: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    url: str,
    expected: str,
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, out, err = run(capsys, "hook", "register", "-c", str(config), "--url", url)
    assert code == 2
    assert expected in err and err.count("\n") == 1 and out == ""
    assert "s3cret-in-the-url" not in err
    assert kobo.requests == [] and kobo.hooks == {}


def test_a_private_address_is_registered_with_a_warning(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, _, err = run(capsys, "hook", "register", "-c", str(config), "--url", "https://192.168.1.20")
    assert code == 0, err
    assert "192.168.1.20 is a private or loopback address" in err
    assert len(kobo.hooks) == 1


@pytest.mark.parametrize(
    "source",
    [
        'kind = "file"\npath = "data/export.json"',
        'kind = "odk_central"\nurl = "http://127.0.0.1:9"\nproject_id = 1',
    ],
    ids=["file", "odk_central"],
)
def test_a_source_other_than_kobo_is_refused(
    make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str], source: str
) -> None:
    config = make_project(source=source)
    code, _, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)
    assert code == 2
    kind = source.split('"')[1]
    assert f"needs a KoboToolbox source, and [source] kind is '{kind}'" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "Environment variable KOBO_TIP_HOOK_PASSWORD is not set"),
        ("short-pass", "KOBO_TIP_HOOK_PASSWORD holds 10 characters"),
    ],
    ids=["missing", "too short"],
)
def test_a_missing_or_weak_hook_password_is_one_sentence_and_exit_2(
    kobo: FakeKobo,
    make_project: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    expected: str,
) -> None:
    if value is None:
        monkeypatch.delenv("KOBO_TIP_HOOK_PASSWORD")
    else:
        monkeypatch.setenv("KOBO_TIP_HOOK_PASSWORD", value)
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, out, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)
    assert code == 2
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1
    assert "short-pass" not in err and out == ""
    assert kobo.requests == [], "nothing is asked of Kobo before the credentials are in hand"


def test_kobos_refusal_is_shown_in_its_words_without_the_password(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    kobo.hook_error = {"settings": [f"Invalid password {PASSWORD!r} for the endpoint"]}
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, _, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)
    assert code == 1
    assert f"KoboToolbox refused the REST Service for asset {kobo.asset_uid}" in err
    assert "(400): settings: [\"Invalid password '***' for the endpoint\"]" in err
    assert PASSWORD not in err
    assert kobo.hooks == {}


def test_a_missing_kobo_token_stops_register_before_the_network(
    kobo: FakeKobo,
    make_project: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KOBO_TOKEN")
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, _, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)
    assert code == 2 and "KOBO_TOKEN is not set" in err
    assert kobo.requests == []


# --- paging and the hostile next --------------------------------------------------------------


def test_hooks_are_read_from_every_page_and_the_one_on_the_last_is_updated(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    kobo.hook_page = 2
    for number in range(4):
        kobo.add_hook(f"warehouse {number}", f"https://warehouse.example.org/{number}")
    ours = kobo.add_hook("kobo-tip", "https://old-proxy.example.org/hooks/kobo/x")
    source = KoboSource(url=kobo.url, asset_uid=kobo.asset_uid, timeout=(2, 5), backoff=0.01)
    hooks = source.hooks()
    assert [hook.name for hook in hooks] == [*(f"warehouse {n}" for n in range(4)), "kobo-tip"]
    assert hooks[-1] == Hook(ours.uid, "kobo-tip", ours.fields["endpoint"], True, "no_auth", 0, 0, 0)
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    assert run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)[0] == 0
    assert len(kobo.hooks) == 5 and ours.fields["endpoint"] == endpoint_of(kobo)
    assert [method for method, _ in hook_writes(kobo)] == ["PATCH"]


def test_a_hooks_list_whose_next_page_is_elsewhere_is_refused(
    kobo: FakeKobo, listener: Listener, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    kobo.hook_page = 2
    for number in range(3):
        kobo.add_hook(f"warehouse {number}", f"https://warehouse.example.org/{number}")
    kobo.foreign_links = listener.url
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, _, err = run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)
    assert code == 1
    assert listener.url.removeprefix("http://") in err and "not the configured" in err
    assert hook_writes(kobo) == [], "nothing is registered from a list that could not be read whole"
    code, out, _ = run(capsys, "status", "-c", str(config))
    assert code == 0
    assert "Kobo REST Service: could not be read: The server asked for http://127.0.0.1:" in out
    assert listener.received == []


# --- status ----------------------------------------------------------------------------------


def test_status_shows_the_hook_its_counts_and_its_last_failures(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    assert run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)[0] == 0
    [uid] = kobo.hooks
    kobo.add_hook("warehouse", "https://warehouse.example.org/in")  # not kobo-tip's: not shown
    kobo.add_hook_log(uid, status=2, status_code=200, submission_id=100)
    for number in range(6):
        kobo.add_hook_log(
            uid, status_code=503, submission_id=200 + number, tries=3, message="Service Unavailable"
        )
    html = "<html>\n<head><title>502 Bad Gateway</title></head>\n\x1b[31m" + "<p>upstream gone</p>\n" * 30
    kobo.add_hook_log(uid, status_code=502, submission_id=300, tries=1, message=html)
    code, out, err = run(capsys, "status", "-c", str(config))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("No store yet at "), "the store part comes first, as before"
    assert f"Kobo REST Service(s) of asset {kobo.asset_uid}:" in lines
    [hook_line] = [line for line in lines if endpoint_of(kobo) in line]
    assert hook_line.strip() == (
        f"kobo-tip {endpoint_of(kobo)}: active, basic auth; sent 1, failed 7, pending 0"
    )
    assert "warehouse" not in out
    assert "    last 5 failure(s), newest first:" in lines
    failures = [line.strip() for line in lines if " HTTP 50" in line]
    assert [line.split("submission ")[1].split(" ")[0] for line in failures] == [
        "300",
        "205",
        "204",
        "203",
        "202",
    ]
    assert failures[1].endswith("HTTP 503, submission 205 (3 tries): Service Unavailable")
    assert " UTC HTTP 502, submission 300 (1 try): <html> <head><title>502 Bad Gateway" in failures[0]
    message = failures[0].split("(1 try): ", 1)[1]
    assert len(message) == 120 and message.endswith("…")
    assert "\x1b" not in out
    assert PASSWORD not in out + err and USERNAME not in out + err  # Kobo sends the settings back


def test_status_blanks_the_hook_password_in_kobo_failure_messages(
    kobo: FakeKobo,
    make_project: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    assert run(capsys, "hook", "register", "-c", str(config), "--url", PUBLIC)[0] == 0
    [uid] = kobo.hooks
    basic = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    quoted = PASSWORD.replace("-", "%2D")
    messages = [
        f"HTTPSConnectionPool: https://{USERNAME}:{PASSWORD}@tip.example.org/hooks/kobo/x refused",
        f"receiver said: wrong password {PASSWORD}",
        f"proxy echoed: Authorization: Basic {basic}",
        f'{{"detail": "bad", "password": "{PASSWORD}"}}',
        f"https://{USERNAME}:{quoted}@tip.example.org/ unreachable",
        f"token={HEADER_TOKEN}&x=1",
    ]
    for number, message in enumerate(messages):
        kobo.add_hook_log(uid, status_code=500, submission_id=400 + number, tries=1, message=message)
    # With the hook's secrets in the environment, and without them (status run by someone else).
    for unset in (False, True):
        if unset:
            for name in ("KOBO_TIP_HOOK_PASSWORD", "KOBO_TIP_HOOK_TOKEN"):
                monkeypatch.delenv(name)
        code, out, err = run(capsys, "status", "-c", str(config))
        assert code == 0, err
        failures = [line for line in out.splitlines() if " HTTP 500" in line]
        assert len(failures) == 5 and all("***" in line for line in failures), out
        for secret in (PASSWORD, basic, quoted, HEADER_TOKEN, PASSWORD[:12], basic[:12]):
            assert secret not in out + err


def test_status_says_when_no_hook_pushes_to_kobo_tip(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    kobo.add_hook("warehouse", "https://warehouse.example.org/in")
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, out, _ = run(capsys, "status", "-c", str(config))
    assert code == 0
    assert f"Kobo REST Service: none pushes to kobo-tip on asset {kobo.asset_uid}" in out
    assert "'kobo-tip hook register --url URL'" in out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_status_with_kobo_down_prints_the_store_exits_0_and_says_why(
    kobo: FakeKobo, make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = kobo_config(make_project, f"http://127.0.0.1:{_closed_port()}", kobo.asset_uid)
    open_store(load_settings(config)).close()
    started = time.monotonic()
    code, out, err = run(capsys, "status", "-c", str(config))
    assert code == 0, err
    assert time.monotonic() - started < 10, "status does not wait out the sync's retries"
    lines = out.splitlines()
    assert lines[0].startswith("store ") and "  submissions: 0 (deleted on the server: 0)" in lines
    assert "no sync yet" in lines
    [hook_line] = [line for line in lines if "REST Service" in line]
    assert hook_line.startswith("Kobo REST Service: could not be read: Could not reach http://127.0.0.1:")


def test_status_without_the_token_reads_no_hook_and_sends_nothing(
    kobo: FakeKobo,
    make_project: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KOBO_TOKEN")
    config = kobo_config(make_project, kobo.url, kobo.asset_uid)
    code, out, _ = run(capsys, "status", "-c", str(config))
    assert code == 0
    assert out.splitlines()[-1] == "Kobo REST Service: not read (KOBO_TOKEN is not set)."
    assert kobo.requests == []


def test_status_of_a_file_source_has_no_hook_line(
    make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "status", "-c", str(make_project()))
    assert code == 0 and "REST Service" not in out


# --- the source's API --------------------------------------------------------------------------


def test_hook_failures_are_the_newest_failed_logs_only(kobo: FakeKobo) -> None:
    hook_uid = kobo.add_hook("kobo-tip", endpoint_of(kobo)).uid
    kobo.add_hook_log(hook_uid, status=0, status_code=401, submission_id=1, message="Unauthorized", tries=1)
    kobo.add_hook_log(hook_uid, status=1, status_code=None, submission_id=2)  # pending: not a failure
    kobo.add_hook_log(
        hook_uid, status=0, status_code=None, submission_id=3, message="Connection refused", tries=4
    )
    newest = kobo.add_hook_log(hook_uid, status=0, status_code=500, submission_id=4, message="boom", tries=2)
    source = KoboSource(url=kobo.url, asset_uid=kobo.asset_uid, timeout=(2, 5), backoff=0.01)
    [hook] = source.hooks()
    assert (hook.failed_count, hook.pending_count) == (3, 1)
    failures = source.hook_failures(hook, limit=2)
    assert failures == [
        HookFailure("4", 500, "boom", newest.date_modified, 2),
        HookFailure("3", None, "Connection refused", failures[1].date_modified, 4),
    ]
    [(_, path, params)] = [r for r in kobo.requests if r[1].endswith("/logs/")]
    assert path == f"/api/v2/assets/{kobo.asset_uid}/hooks/{hook_uid}/logs/"
    assert params == {"status": "0", "limit": "2"}


def test_hook_register_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["hook", "register", "--help"])
    out = capsys.readouterr().out
    usage, description = out.split("\n\n")[:2]
    assert usage.startswith("usage: kobo-tip hook register") and "--url URL" in usage
    assert "URL/hooks/kobo/<asset uid>" in description


def test_credential_shapes_are_blanked_and_plain_words_kept() -> None:
    from kobo_tip.sources.kobo import blank_credentials

    assert blank_credentials("401: Basic authentication required", []) == "401: Basic authentication required"
    assert blank_credentials("the token expired", []) == "the token expired"
    assert blank_credentials("Authorization: Basic a29ibzpwYXNzd29yZA==", []) == "Authorization: Basic ***"
    assert blank_credentials("Bearer abcdefghijklmnopqrstuvwxyz", []) == "Bearer ***"
    assert blank_credentials("https://u:s3cret@host/x failed", []) == "https://u:***@host/x failed"
    assert blank_credentials("refused ?password=hunter2&x", []) == "refused ?password=***&x"
    assert (
        blank_credentials("said hunter2hunter2 twice: hunter2hunter2", ["hunter2hunter2"])
        == "said *** twice: ***"
    )
