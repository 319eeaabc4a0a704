"""`kobo-tip serve` as Kobo and a stranger meet it: a real process on loopback, pushed to over
HTTP, polling the fake Kobo server, killed and restarted. Every check reads the store or the
report files the service wrote."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import csv
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import FIXTURES, SECRET, write_project
from fakes.kobo_server import FakeKobo
from kobo_tip.cli import main
from kobo_tip.config import HookCredentials, Settings, load_settings
from kobo_tip.labels import field_labels
from kobo_tip.serve.app import make_app
from kobo_tip.serve.intake import Intake
from kobo_tip.store import SqliteStore, open_store
from test_postgres_store import on_postgres
from test_security import CANARY, scan

HOOK_USER = "kobo-hook"
HOOK_PASSWORD = "hook-password-0123456789"
STATUS_TOKEN = "status-token-0123456789abc"
PUSH_EXAMPLE = json.loads((FIXTURES / "kobo-hook-push.json").read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    """A running ``kobo-tip serve`` and the project it serves."""

    settings: Settings
    kobo: FakeKobo
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    open_files: int | None = None  # the service's RLIMIT_NOFILE, as systemd's LimitNOFILE sets it
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hook(self) -> str:
        return f"{self.base}/hooks/kobo/{self.kobo.asset_uid}"

    def start(self) -> None:
        command = [sys.executable, "-m", "kobo_tip", "serve", "-c", str(self.settings.path)]
        files = self.open_files

        def limit_files() -> None:
            if files is not None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, hard))

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=log,
                preexec_fn=limit_files,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(encoding="utf-8")
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        pytest.fail("the service did not start")

    def stop(self) -> bool:
        """SIGTERM, as systemd stops a service; True when it shut down cleanly (uvicorn re-raises
        the signal once it has, so the process ends by it, which systemd counts as success)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.process = None
        # Every line is a JSON event (a log collector reads them so), the last one "stopped".
        events = [json.loads(line)["event"] for line in self.log.read_text("utf-8").splitlines()]
        return code in (0, -signal.SIGTERM) and events[-1] == "stopped"

    def push(self, doc: dict[str, Any], **kwargs: Any) -> requests.Response:
        kwargs.setdefault("auth", (HOOK_USER, HOOK_PASSWORD))
        return self.session.post(self.hook, json=doc, timeout=30, **kwargs)

    def stored(self) -> dict[str, tuple[str, str]]:
        """submission id -> (version, person key) of every stored submission."""
        with open_store(self.settings) as store:
            return {s.submission_id: (s.version_id, s.person_key) for s in store.submissions()}

    def wait_for(self, check: Callable[[], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, self.log.read_text(encoding="utf-8")
            time.sleep(0.05)

    def synced(self) -> bool:
        with open_store(self.settings) as store:
            return any(run.finished and not run.error for run in store.runs())


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with FakeKobo() as kobo:
        kobo.add_submissions(20)
        config = write_project(
            tmp_path / "project",
            source=f'kind = "kobo"\nurl = "{kobo.url}"\nasset_uid = "{kobo.asset_uid}"\npage_size = 100',
            serve="poll_minutes = 600\nrender_delay_seconds = 0.2\nmax_body_kb = 64",
        )
        env = {
            **os.environ,
            "KOBO_TOKEN": kobo.token,
            "KOBO_TIP_SECRET": SECRET,
            "KOBO_TIP_HOOK_USERNAME": HOOK_USER,
            "KOBO_TIP_HOOK_PASSWORD": HOOK_PASSWORD,
            "KOBO_TIP_STATUS_TOKEN": STATUS_TOKEN,
        }
        running = Service(load_settings(config), kobo, env, free_port(), tmp_path / "serve.log")
        try:
            yield running
        finally:
            if running.process is not None:
                running.process.kill()
                running.process.wait()


def fresh(kobo: FakeKobo, n: int) -> list[dict[str, Any]]:
    """``n`` new submissions on the fake server, as its REST Service would push them."""
    return [copy.deepcopy(kobo.docs[sid]) for sid in kobo.add_submissions(n)]


def internal_total(settings: Settings) -> int:
    path = settings.report.out_dir / "internal" / "counts.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if (row["indicator"], row["period"], row["dimension"]) == (
                "identified_or_referred",
                "LOP",
                "total",
            ):
                return int(row["value"])
    raise AssertionError("no LOP total")


# -- pushes stored, keyed, reported ----------------------------------------------------------------


def test_the_recorded_push_example_is_a_kobo_data_api_submission() -> None:
    # kpi's JSON REST Service posts the data API's JSON of the submission (kobo-api.md section 6).
    assert {"_id", "_uuid", "_submission_time", "_xform_id_string", "meta/instanceID"} <= set(PUSH_EXAMPLE)
    assert PUSH_EXAMPLE["person/uic_given"] and PUSH_EXAMPLE["person/uic_mother"]


def test_a_push_is_stored_keyed_and_in_the_internal_report_within_seconds(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    service.wait_for((service.settings.report.out_dir / "internal" / "counts.csv").exists)
    before = internal_total(service.settings)
    example = {**PUSH_EXAMPLE, "_id": 900_001, "_xform_id_string": service.kobo.asset_uid}
    example["event/event_date"] = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86_400 * 30))
    pushed = time.monotonic()
    answer = service.push(example)
    assert answer.status_code == 200 and answer.json() == {"stored": "900001"}
    version, key = service.stored()["900001"]
    assert version == PUSH_EXAMPLE["_uuid"] and key, "stored with its person key"
    # The push is a new person: the internal report counts it a moment later.
    service.wait_for(lambda: internal_total(service.settings) == before + 1, seconds=20)
    assert time.monotonic() - pushed < 10
    with open_store(service.settings) as store:
        (stored,) = [s for s in store.submissions() if s.submission_id == "900001"]
        assert "uic_given" not in stored.data and "person/uic_given" not in stored.data
        assert store.pushes()[1] == 1


def test_a_push_never_moves_the_poll_watermark_and_the_poll_still_brings_what_kobo_gave_up(
    service: Service,
) -> None:
    service.start()
    service.wait_for(service.synced)
    with open_store(service.settings) as store:
        mark = store.watermark("kobo_last_id")
    docs = fresh(service.kobo, 3)
    assert service.push(docs[2]).status_code == 200  # the first two never arrive (Kobo gave up)
    with open_store(service.settings) as store:
        assert store.watermark("kobo_last_id") == mark
    assert service.stop()
    service.start()  # a restart polls at once, from the watermark
    ids = {str(doc["_id"]) for doc in docs}
    service.wait_for(lambda: ids <= set(service.stored()))


def test_repeated_and_edited_pushes(service: Service, capsys: pytest.CaptureFixture[str]) -> None:
    service.start()
    service.wait_for(service.synced)
    (doc,) = fresh(service.kobo, 1)
    for _ in range(3):
        assert service.push(doc).status_code == 200
    sid = str(doc["_id"])
    first_version, key = service.stored()[sid]
    edited = {**doc, "_uuid": "00000000-0000-4000-8000-ed17ed000001", "person/gender": "female"}
    assert service.push(edited).status_code == 200
    version, same_key = service.stored()[sid]
    assert (version, same_key) == ("00000000-0000-4000-8000-ed17ed000001", key) and first_version == doc[
        "_uuid"
    ]
    with open_store(service.settings) as store:
        assert sum(1 for s in store.submissions() if s.submission_id == sid) == 1
        assert store.pushes()[1] == 4  # every push is counted, the row is stored once
    assert main(["status", "-c", str(service.settings.path)]) == 0
    assert "pushed by Kobo (kobo-tip serve): 4, the last at 20" in capsys.readouterr().out


def test_a_retried_push_of_a_submission_a_reconcile_found_deleted_is_dropped(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.start()
    service.wait_for(service.synced)
    (doc,) = fresh(service.kobo, 1)
    sid = str(doc["_id"])
    assert service.push(doc).json() == {"stored": sid}
    assert service.stop()
    service.kobo.delete(doc["_id"])  # consent withdrawn: deleted on Kobo, which has no restore
    for name in ("KOBO_TOKEN", "KOBO_TIP_SECRET"):
        monkeypatch.setenv(name, service.env[name])
    assert main(["sync", "--full", "-c", str(service.settings.path)]) == 0  # the reconcile
    service.start()
    retried = service.push(doc)  # Kobo retries the push it sent before the deletion
    assert retried.status_code == 200, "a 2xx: Kobo must not send it again"
    assert retried.json()["dropped"] == sid and "stored" not in retried.json()
    with open_store(service.settings) as store:
        (row,) = [s for s in store.submissions() if s.submission_id == sid]
        assert row.deleted, "still deleted: it does not count"
        assert store.counts().submissions == 20 and store.pushes()[1] == 1
    assert service.stop()
    events = [json.loads(line) for line in service.log.read_text(encoding="utf-8").splitlines()]
    (dropped,) = [event for event in events if event["event"] == "push_dropped"]
    assert set(dropped) == {"time", "event", "submission_id", "reason"} and dropped["submission_id"] == sid
    (group,) = [event for event in events if event["event"] == "pushes_stored" and event["dropped"]]
    assert (group["dropped"], group["new"], group["edited"]) == (1, 0, 0)


# -- what a stranger sends -------------------------------------------------------------------------


def test_strangers_get_refusals_and_nothing_is_stored(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    before = service.stored()
    (doc,) = fresh(service.kobo, 1)
    doc.update({"person/uic_given": CANARY[0], "person/uic_mother": CANARY[1]})
    wrong = base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}x".encode()).decode()
    cases = [
        ({"json": doc, "auth": None}, 401),
        ({"json": doc, "auth": (HOOK_USER, "wrong-password-0123456789")}, 401),
        ({"json": doc, "auth": ("someone", HOOK_PASSWORD)}, 401),
        ({"json": doc, "auth": None, "headers": {"Authorization": f"Basic {wrong}"}}, 401),
        ({"json": doc, "auth": None, "headers": {"Authorization": "Basic !!!not-base64"}}, 401),
        ({"json": doc, "auth": None, "headers": {"Authorization": f"Bearer {STATUS_TOKEN}"}}, 401),
        ({"data": json.dumps(doc), "headers": {"Content-Type": "text/plain"}}, 415),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": [doc]}, 400),
        ({"data": b"[" * 100_000, "headers": {"Content-Type": "application/json"}}, 413),
        ({"data": b"[" * 5000 + b"]" * 5000, "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": {k: v for k, v in doc.items() if k != "_id"}}, 422),
        ({"json": {**doc, "_xform_id_string": "aAnotherForm"}}, 422),
        # The UIC parts under the form's labels: refused, never stored in clear.
        ({"json": {**doc, sorted(field_labels("uic_given"))[0]: CANARY[0]}}, 422),
        ({"json": {"_id": 1, "_uuid": "u", "other/field": "x"}}, 422),
    ]
    for kwargs, status in cases:
        answer = service.session.post(
            service.hook, timeout=30, **{"auth": (HOOK_USER, HOOK_PASSWORD), **kwargs}
        )
        assert answer.status_code == status, (kwargs.get("headers"), answer.text)
        assert CANARY[0] not in answer.text and HOOK_PASSWORD not in answer.text
    # A body sent in chunks, without a length: cut off at the limit all the same.
    chunks = (b"x" * 8192 for _ in range(20))
    answer = service.session.post(
        service.hook,
        data=chunks,
        headers={"Content-Type": "application/json"},
        auth=(HOOK_USER, HOOK_PASSWORD),
    )
    assert answer.status_code == 413
    other_asset = service.session.post(
        f"{service.base}/hooks/kobo/aSomeOtherAsset", json=doc, auth=(HOOK_USER, HOOK_PASSWORD)
    )
    assert other_asset.status_code == 404
    assert service.session.get(service.hook).status_code == 405
    assert service.stored() == before
    assert scan(every_file(service)) == []


def test_odd_ids_are_refused_and_never_land_on_another_submission(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    before = service.stored()
    target = min(before, key=int)  # what a loose reading of each odd _id below would overwrite
    (doc,) = fresh(service.kobo, 1)
    arabic = "".join(chr(0x0660 + int(digit)) for digit in target)
    odd: list[tuple[str, object]] = [
        ("float", float(target) + 0.9),
        ("arabic-indic digits", arabic),
        ("full-width digits", "".join(chr(0xFF10 + int(digit)) for digit in target)),
        ("leading zero", "0" + target),
        ("negative", -int(target)),
        ("beyond a bigint", 2**63),
        ("a list", [int(target)]),
    ]
    for what, value in odd:
        answer = service.push({**doc, "_id": value})
        assert answer.status_code == 422, (what, answer.text)
    # true is 1 and Infinity is not JSON: sent as text, as a hostile client would.
    for literal in (b"true", b"Infinity", b"NaN", b"-Infinity"):
        body = json.dumps({**doc, "_id": 0}).encode().replace(b'"_id": 0', b'"_id": ' + literal)
        answer = service.session.post(
            service.hook,
            data=body,
            headers={"Content-Type": "application/json"},
            auth=(HOOK_USER, HOOK_PASSWORD),
            timeout=30,
        )
        assert answer.status_code == 422, (literal, answer.text)
        assert "Traceback" not in answer.text and "/" not in answer.json()["detail"].split("(")[0]
    assert service.stored() == before
    # Its decimal text is the same submission as the integer, and both are taken.
    assert service.push({**doc, "_id": str(doc["_id"])}).status_code == 200
    assert service.push(doc).status_code == 200
    assert set(service.stored()) == set(before) | {str(doc["_id"])}
    assert service.stop()
    log = service.log.read_text(encoding="utf-8")
    assert "Traceback" not in log and str(Path.cwd()) not in log


def serve_lines(service: Service, lines: str) -> None:
    """Add ``lines`` to the project's [serve] section."""
    config = service.settings.path
    text = config.read_text(encoding="utf-8").replace("\n[serve]\n", f"\n[serve]\n{lines}\n")
    config.write_text(text, encoding="utf-8")
    service.settings = load_settings(config)


def open_slow(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send the start of a request and never finish its headers."""
    slow = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(b"POST /hooks/kobo/x HTTP/1.1\r\nHost: tip\r\n")
        slow.append(client)
    return slow


def closed_within(clients: list[socket.socket], seconds: float) -> int:
    """How many of ``clients`` the server closes within ``seconds`` (all read to their end)."""
    selector = selectors.DefaultSelector()
    for client in clients:
        client.setblocking(False)
        selector.register(client, selectors.EVENT_READ)
    closed, deadline = 0, time.monotonic() + seconds
    while closed < len(clients) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            client = key.fileobj
            assert isinstance(client, socket.socket)
            try:
                data = client.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:
                selector.unregister(client)
                closed += 1
    selector.close()
    return closed


def open_sockets(process: subprocess.Popen[bytes]) -> int:
    """How many sockets ``process`` holds open (connections, the listener, its HTTP sessions)."""
    found = 0
    for fd in os.listdir(f"/proc/{process.pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            found += os.readlink(f"/proc/{process.pid}/fd/{fd}").startswith("socket:")
    return found


def test_slow_clients_are_closed_in_time_and_never_keep_a_push_out(service: Service) -> None:
    # The attack: more connections that never finish their headers than the service may open files.
    # The defaults throughout (header_timeout_seconds = 10), as a service that sets none runs.
    service.open_files = 400
    service.start()
    service.wait_for(service.synced)
    assert service.process is not None
    docs = fresh(service.kobo, 3)
    started = time.monotonic()
    slow = open_slow(service.port, 600)
    try:
        # A real push gets through at once: it takes the slot of the connection idle the longest.
        pushed = time.monotonic()
        assert service.push(docs[0]).status_code == 200
        assert time.monotonic() - pushed < 1.5
        # 400 files less the 256 it keeps for itself: 144 connections at most.
        (listening,) = [
            json.loads(line) for line in service.log.read_text("utf-8").splitlines() if '"listening"' in line
        ]
        assert listening["max_connections"] == 144 and listening["open_files"] == 400
        assert open_sockets(service.process) <= 144 + 8
        # Every slow connection is closed: given up to a newer one, or at its 10 s header deadline.
        assert closed_within(slow, 10 + 8) == 600
        assert time.monotonic() - started < 25
    finally:
        for client in slow:
            client.close()
    # A client trickling a byte of its headers every 0.3 s is closed at the deadline all the same.
    trickler = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    began = time.monotonic()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for byte in b"POST /hooks/kobo/x HTTP/1.1\r\nHost: tip\r\nX-Slow: " + b"z" * 40:
            trickler.sendall(bytes([byte]))
            time.sleep(0.3)
    assert closed_within([trickler], 5) == 1 and time.monotonic() - began < 10 + 8
    trickler.close()
    assert service.push(docs[1]).status_code == 200
    assert service.stop()
    lines = [json.loads(line) for line in service.log.read_text(encoding="utf-8").splitlines()]
    events = [line["event"] for line in lines]
    assert "loop_error" not in events, "accept() never ran out of files"
    # 601 closed connections: 10 lines a minute, and how many were left out when it stopped.
    shown = events.count("connection_closed")
    (left_out,) = [line for line in lines if line["event"] == "repeats_left_out"]
    assert shown <= 20 and left_out["kind"] == "connection_closed" and shown + left_out["count"] >= 601
    assert str(docs[0]["_id"]) in service.stored() and str(docs[1]["_id"]) in service.stored()


def test_a_body_that_does_not_arrive_is_408_and_a_refused_push_cannot_be_trickled(service: Service) -> None:
    serve_lines(service, "body_timeout_seconds = 1\nheader_timeout_seconds = 2")
    service.start()
    service.wait_for(service.synced)
    auth = base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    head = (
        f"POST /hooks/kobo/{service.kobo.asset_uid} HTTP/1.1\r\nHost: tip\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n"
    )
    # Headers whole, the body never: 408 a second later, and the connection closed.
    client = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    began = time.monotonic()
    client.sendall(f"{head}Authorization: Basic {auth}\r\n\r\n{{".encode())
    answer = b""
    while chunk := client.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - began < 5
    client.close()
    # Refused at once without credentials; trickling the body then holds the connection only
    # until the header deadline (the rest of the body and the next request's headers).
    client = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    client.sendall(f"{head}\r\n{{".encode())
    assert client.recv(65536).startswith(b"HTTP/1.1 401")
    began = time.monotonic()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(25):
            client.sendall(b" ")
            time.sleep(0.2)
    assert closed_within([client], 3) == 1 and time.monotonic() - began < 2 + 4
    client.close()
    # A client that sends its whole body after a refusal keeps its connection for the next push.
    with requests.Session() as session:
        (doc,) = fresh(service.kobo, 1)
        assert session.post(service.hook, json=doc, timeout=30).status_code == 401
        assert session.post(service.hook, json=doc, auth=(HOOK_USER, HOOK_PASSWORD), timeout=30).ok
    assert service.stop()


def test_too_few_open_files_stop_the_start_in_one_sentence(service: Service) -> None:
    service.open_files = 200
    with pytest.raises(AssertionError) as stopped:
        service.start()
    assert "LimitNOFILE=8192" in str(stopped.value)


def test_header_secret_instead_of_basic_auth(service: Service) -> None:
    config = service.settings.path
    config.write_text(
        config.read_text(encoding="utf-8").replace("\n[serve]\n", '\n[serve]\nhook_auth = "header"\n'),
        encoding="utf-8",
    )
    service.settings = load_settings(config)
    service.env["KOBO_TIP_HOOK_TOKEN"] = "header-token-0123456789xyz"
    service.start()
    service.wait_for(service.synced)
    (doc,) = fresh(service.kobo, 1)
    assert service.push(doc, auth=None).status_code == 401
    assert (
        service.push(doc, auth=None, headers={"X-Kobo-Tip-Token": "header-token-0123456789xy"}).status_code
        == 401
    )
    assert service.push(doc, auth=(HOOK_USER, HOOK_PASSWORD)).status_code == 401
    ok = service.push(doc, auth=None, headers={"X-Kobo-Tip-Token": "header-token-0123456789xyz"})
    assert ok.status_code == 200 and str(doc["_id"]) in service.stored()


def test_a_weak_or_missing_hook_password_stops_the_start(service: Service) -> None:
    for value, message in (("", "KOBO_TIP_HOOK_PASSWORD is not set"), ("short", "at least 20")):
        env = {**service.env, "KOBO_TIP_HOOK_PASSWORD": value}
        done = subprocess.run(
            [sys.executable, "-m", "kobo_tip", "serve", "-c", str(service.settings.path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and message in done.stderr
        assert value not in done.stderr or not value


def test_healthz_says_nothing_and_status_needs_its_token(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    health = requests.get(f"{service.base}/healthz", timeout=5)
    assert health.json() == {"status": "ok"}
    assert requests.get(f"{service.base}/status", timeout=5).status_code == 401
    wrong = {"Authorization": f"Bearer {STATUS_TOKEN}x"}
    assert requests.get(f"{service.base}/status", headers=wrong, timeout=5).status_code == 401
    (doc,) = fresh(service.kobo, 1)
    service.push(doc)
    facts = requests.get(
        f"{service.base}/status", headers={"Authorization": f"Bearer {STATUS_TOKEN}"}, timeout=5
    ).json()
    assert facts["pushes_stored"] == 1 and facts["last_push"] and facts["last_sync"]
    assert facts["submissions"] == 21 and facts["source"] == "kobo"
    assert str(doc["_id"]) not in json.dumps(facts), "no submission is named"


# -- many at once, kills and a running sync ------------------------------------------------------


def push_until_answered(service: Service, doc: dict[str, Any]) -> int:
    """Push as Kobo's REST Service does: again after a 503 or a lost connection."""
    for _ in range(50):
        try:
            answer = service.push(doc)
        except requests.ConnectionError:
            time.sleep(0.2)
            continue
        if answer.status_code != 503:
            return answer.status_code
        time.sleep(0.2)
    return 0


def test_500_concurrent_pushes_with_duplicates_store_each_submission_once(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    docs = fresh(service.kobo, 250)
    with ThreadPoolExecutor(max_workers=32) as pool:
        codes = list(pool.map(lambda doc: push_until_answered(service, doc), docs + docs[::-1]))
    assert codes == [200] * 500
    stored = service.stored()
    assert {str(doc["_id"]) for doc in docs} <= set(stored) and len(stored) == 270
    with open_store(service.settings) as store:
        assert store.counts().submissions == 270


def test_sigkill_in_a_burst_loses_no_answered_push(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    docs = fresh(service.kobo, 300)
    answered: list[str] = []

    def push(doc: dict[str, Any]) -> None:
        try:
            if service.push(doc).status_code == 200:
                answered.append(str(doc["_id"]))
        except requests.ConnectionError:
            pass

    with ThreadPoolExecutor(max_workers=16) as pool:
        for number, doc in enumerate(docs):
            pool.submit(push, doc)
            if number == 150:
                service.wait_for(lambda: len(answered) > 20)
                assert service.process is not None
                service.process.kill()
    assert service.process is not None
    service.process.wait()
    service.process = None
    assert 20 < len(answered) < 300
    assert set(answered) <= set(service.stored()), "every push answered 2xx was committed"
    service.start()
    assert [push_until_answered(service, doc) for doc in docs] == [200] * 300  # Kobo retries the rest
    with open_store(service.settings) as store:
        assert store.counts().submissions == 320


def test_pushes_are_answered_while_a_slow_sync_runs(service: Service) -> None:
    service.kobo.add_submissions(1500)
    pages: list[float] = []

    def slow(fake: FakeKobo, number: int) -> None:
        pages.append(time.monotonic())
        time.sleep(0.15)

    service.kobo.before_data_request = slow
    service.start()
    service.wait_for(lambda: len(pages) > 3)
    timings = []
    for doc in fresh(service.kobo, 5):
        started = time.monotonic()
        assert service.push(doc).status_code == 200
        timings.append(time.monotonic() - started)
    assert max(timings) < 3, timings
    service.wait_for(service.synced, seconds=120)
    with open_store(service.settings) as store:
        (run,) = store.runs(limit=1)
        assert run.error is None, run.error
        assert store.counts().submissions == 1525
    assert "database is locked" not in service.log.read_text(encoding="utf-8")


def test_sigterm_commits_what_was_answered_and_exits_cleanly(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    docs = fresh(service.kobo, 40)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(service.push, doc) for doc in docs]
        time.sleep(0.05)
        assert service.stop()
        answers = [f.result() if not f.exception() else None for f in futures]
    answered = {
        str(d["_id"]) for d, a in zip(docs, answers, strict=True) if a is not None and a.status_code == 200
    }
    assert answered <= set(service.stored())
    lines = [
        json.loads(line)
        for line in service.log.read_text(encoding="utf-8").splitlines()
        if line.startswith("{")
    ]
    assert lines[-1]["event"] == "stopped"


# -- name codes never reach the disk ---------------------------------------------------------------


def every_file(service: Service) -> list[Path]:
    store = service.settings.store.path
    files = [p for p in store.parent.glob(store.name + "*") if p.is_file()]
    return files + [p for p in service.settings.report.out_dir.rglob("*") if p.is_file()] + [service.log]


def test_pushed_uic_parts_are_nowhere_on_disk(service: Service) -> None:
    service.start()
    service.wait_for(service.synced)
    docs = fresh(service.kobo, 30)
    for doc in docs:
        doc.update({"person/uic_given": CANARY[0], "person/uic_mother": CANARY[1]})
        assert service.push(doc).status_code == 200
    service.wait_for(lambda: all(str(d["_id"]) in service.stored() for d in docs))
    time.sleep(1)  # the render after them
    running = every_file(service)
    assert any(path.name.endswith("-wal") for path in running), "the WAL is scanned while it holds them"
    assert scan(running) == []
    assert service.stop()
    assert scan(every_file(service)) == []
    assert all(service.stored()[str(d["_id"])][1] for d in docs), "each keyed from its parts"


def test_pushes_and_polls_into_a_postgres_store(service: Service, pg_database: str) -> None:
    service.settings = load_settings(on_postgres(service.settings.path, pg_database, "served"))
    service.start()
    service.wait_for(service.synced)
    docs = fresh(service.kobo, 20)
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda doc: push_until_answered(service, doc), docs + docs)) == [200] * 40
    with open_store(service.settings, create=False) as store:
        assert store.counts().submissions == 40 and store.pushes()[1] == 40
        assert not service.settings.store.path.exists()
    service.wait_for((service.settings.report.out_dir / "internal" / "counts.csv").exists)
    assert service.stop()


def test_status_reads_the_store_off_the_event_loop(tmp_path: Path) -> None:
    # /status blocks until /healthz has answered: answered only if the event loop kept serving.
    healthz_answered = threading.Event()

    def status() -> dict[str, Any]:
        return {"loop_kept_serving": healthz_answered.wait(5)}

    intake = Intake(lambda: SqliteStore.open(tmp_path / "store.sqlite"), b"s" * 32, 1, lambda: None)
    app = make_app(
        asset_uid="aUnused",
        credentials=HookCredentials("header", header="X-Token", token="t" * 32),
        status_token=STATUS_TOKEN,
        intake=intake,
        max_body=1000,
        body_seconds=5.0,
        status=status,
    )

    async def get(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    async def both() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        slow = asyncio.create_task(get("/status", [(b"authorization", f"Bearer {STATUS_TOKEN}".encode())]))
        await asyncio.sleep(0.1)  # /status is under way
        health = await get("/healthz", [])
        healthz_answered.set()
        return health, await slow

    health, (code, body) = asyncio.run(both())
    assert health[0] == 503  # the push writer was never started: answered all the same
    assert code == 200 and json.loads(body) == {"loop_kept_serving": True}
