"""A fake KoboToolbox (KPI API v2) on 127.0.0.1, behaving as kobo-api.md sections 1-5 describe.

``with FakeKobo() as kobo:`` runs a real ThreadingHTTPServer in a thread. It checks the token,
serves ``/api/v2/assets/<uid>/data/`` with KPI's paging (100-row default page, 1000-row cap,
only ``start``/``limit``/``query``/``sort``/``fields`` honoured), keeps values as strings,
edits in place (same ``_id``, new ``_uuid``), deletes hard, runs asynchronous imports and
deployments, keeps REST Services (hooks) and their logs (kobo-api.md section 6), and injects
faults: error statuses, 429 with Retry-After, read timeouts, connection resets mid-body, truncated
JSON, and a hook run before each data request. Every request is also kept whole in ``exchanges``
(headers and body), so a test can see where a credential travelled.
"""

from __future__ import annotations

import bisect
import email.parser
import email.policy
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import tip_answers

TOKEN = "0123456789abcdef0123456789abcdef01234567"
ASSET_UID = "aTipVictimsFake0000001"
VALIDATION_LABELS = {
    "validation_status_approved": "Approved",
    "validation_status_not_approved": "Not Approved",
    "validation_status_on_hold": "On Hold",
}
_RANGE_OPS = {"$gt", "$gte", "$lt", "$lte"}


@dataclass
class Fault:
    """A fault served instead of (or around) the next ``times`` matching requests."""

    kind: str  # status | timeout | reset | truncate
    path: str = "/data/"  # substring of the request path it applies to
    status: int = 503
    retry_after: str | None = None
    delay: float = 1.0  # timeout: seconds slept before answering
    times: int = 1


@dataclass
class Asset:
    uid: str
    name: str
    asset_type: str = "survey"
    version_id: str = ""
    deployed_version_id: str | None = None
    active: bool = False
    owner: str = "tester"

    def as_json(self, base: str, submission_count: int) -> dict[str, Any]:
        deployed = self.deployed_version_id is not None
        url = f"{base}/api/v2/assets/{self.uid}/"
        return {
            "url": url,
            "uid": self.uid,
            "name": self.name,
            "asset_type": self.asset_type,
            "owner__username": self.owner,
            "version_id": self.version_id,
            "deployed_version_id": self.deployed_version_id,
            "has_deployment": deployed,
            "deployment__active": deployed and self.active,
            "deployment_status": ("deployed" if self.active else "archived") if deployed else "draft",
            "deployment__submission_count": submission_count if deployed else 0,
            "deployment__links": (
                {
                    "url": f"https://ee.example.org/{self.uid}",
                    "offline_url": f"https://ee.example.org/x/{self.uid}",
                }
                if deployed
                else {}
            ),
            "data": f"{url}data/",
        }


@dataclass
class HookLog:
    """One push of one submission: status 0 failed, 1 pending, 2 success, 3 processing."""

    uid: str
    submission_id: int
    status: int
    status_code: int | None
    message: str
    tries: int
    date_modified: str
    created: int  # order of creation: KPI lists logs newest first (-date_created)

    def as_json(self, logs_url: str) -> dict[str, Any]:
        names = {0: "Failed", 1: "Pending", 2: "Success", 3: "Processing"}
        return {
            "url": f"{logs_url}{self.uid}/",
            "uid": self.uid,
            "submission_id": self.submission_id,
            "tries": self.tries,
            "status": self.status,
            "status_str": names.get(self.status, ""),
            "status_code": self.status_code,
            "message": self.message,
            "date_modified": self.date_modified,
        }


@dataclass
class FakeHook:
    """A REST Service as KPI stores it; ``fields`` are the writable ones, ``settings`` included."""

    uid: str
    asset_uid: str
    fields: dict[str, Any]
    date_modified: str
    logs: list[HookLog] = field(default_factory=list)

    def as_json(self, base: str) -> dict[str, Any]:
        url = f"{base}/api/v2/assets/{self.asset_uid}/hooks/{self.uid}/"
        counts = [log.status for log in self.logs]
        # KPI sends the settings back as stored, the password or header token in clear.
        return {
            **self.fields,
            "url": url,
            "logs_url": f"{url}logs/",
            "asset": f"{base}/api/v2/assets/{self.asset_uid}/",
            "uid": self.uid,
            "date_modified": self.date_modified,
            "success_count": counts.count(2),
            "failed_count": counts.count(0),
            "pending_count": counts.count(1) + counts.count(3),
        }


HOOK_DEFAULTS: dict[str, Any] = {
    "active": True,
    "export_type": "json",
    "auth_level": "no_auth",
    "settings": {},
    "subset_fields": [],
    "payload_template": None,
    "email_notification": True,
}


@dataclass
class Exchange:
    """A request as it reached the fake: method, path with query, headers, body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ImportTask:
    uid: str
    polls_left: int
    result: dict[str, Any]  # the final status body: complete with messages, or error


@dataclass
class FakeKobo:
    """State and behaviour of the fake server; the HTTP handler below only translates requests."""

    token: str = TOKEN
    asset_uid: str = ASSET_UID
    default_page: int = 100
    max_page: int = 1000
    seed: int = 7
    import_polls: int = 2
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)
    assets: dict[str, Asset] = field(default_factory=dict)
    imports: dict[str, ImportTask] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    before_data_request: Callable[[FakeKobo, int], None] | None = None
    import_error: dict[str, str] | None = None  # the messages of the next import, which fails
    deploy_error: str | None = None  # the {"error": ...} of the next deployment, which fails
    # A hostile server: the base of the ``next`` links of asset and hook lists and of import ``url``s.
    foreign_links: str | None = None
    hooks: dict[str, FakeHook] = field(default_factory=dict)
    hook_page: int = 100  # hooks per page of the hook list
    hook_error: dict[str, Any] | None = None  # the 400 body of the next hook create or update
    allow_unsecured_hooks: bool = True  # constance ALLOW_UNSECURED_HOOK_ENDPOINTS
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    rows_served: int = 0
    data_requests: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids: list[int] = []
        self._cache: dict[int, bytes] = {}
        self._next_id = 1000
        self._rng = random.Random(self.seed)
        self._clock = 0  # the fake's dates of hooks and logs: one second per event
        self._server: ThreadingHTTPServer | None = None
        self.assets.setdefault(
            self.asset_uid,
            Asset(
                self.asset_uid,
                "Victims identified or referred",
                version_id="vFirst",
                deployed_version_id="vFirst",
                active=True,
            ),
        )
        self.assets.setdefault("aLibraryBlock000000001", Asset("aLibraryBlock000000001", "A block", "block"))

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> FakeKobo:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- data ------------------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def add_submissions(self, n: int) -> list[int]:
        """Append ``n`` new tip_victims submissions; returns their ``_id``s."""
        with self._lock:
            ids = []
            for _ in range(n):
                self._next_id += self._rng.choice((1, 1, 1, 2))  # ids are increasing, not dense
                sid = self._next_id
                first = self._uuid()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_760_000_000 + sid * 37))
                doc = {
                    "_id": sid,
                    "formhub/uuid": "d6123d44cf8c4fa78e38556b5af6bd68",
                    "start": stamp + ".000+07:00",
                    "end": stamp + ".000+07:00",
                    **tip_answers(self._rng),
                    "__version__": "vFirst",
                    "meta/instanceID": f"uuid:{first}",
                    "meta/rootUuid": f"uuid:{first}",
                    "_xform_id_string": self.asset_uid,
                    "_uuid": first,
                    "_attachments": [],
                    "_status": "submitted_via_web",
                    "_geolocation": [None, None],
                    "_submission_time": stamp,
                    "_submitted_by": None,
                    "_validation_status": {},
                }
                self.docs[sid] = doc
                self._ids.append(sid)
                ids.append(sid)
            return ids

    def edit(self, sid: int, answers: dict[str, str]) -> str:
        """Edit a submission as Enketo does: same ``_id``, new ``_uuid`` and instanceID."""
        with self._lock:
            doc = self.docs[sid]
            new = self._uuid()
            doc.update(answers)
            doc["meta/deprecatedID"] = doc["meta/instanceID"]
            doc["meta/instanceID"] = f"uuid:{new}"
            doc["_uuid"] = new
            self._cache.pop(sid, None)
            return new

    def set_status(self, sid: int, uid: str | None) -> None:
        """Set (or with None clear) a submission's validation status; ``_uuid`` does not change."""
        with self._lock:
            status = (
                {}
                if uid is None
                else {
                    "timestamp": int(time.time()),
                    "uid": uid,
                    "by_whom": "reviewer",
                    "label": VALIDATION_LABELS[uid],
                }
            )
            self.docs[sid]["_validation_status"] = status
            self._cache.pop(sid, None)

    def delete(self, sid: int) -> None:
        """Hard delete, as KPI does: no tombstone."""
        with self._lock:
            del self.docs[sid]
            self._ids.remove(sid)
            self._cache.pop(sid, None)

    def inject(self, kind: str, **kwargs: Any) -> Fault:
        fault = Fault(kind, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in path and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # --- data endpoint ---------------------------------------------------------------------------

    def data_page(self, params: dict[str, str], base: str, path: str) -> tuple[int, Any]:
        if "count" in params:
            return 400, {
                "detail": "This param is not implemented. Use `count` property of the response instead."
            }
        try:
            limit = int(params.get("limit", self.default_page))
            start = int(params.get("start", 0))
            if limit <= 0 or start < 0:
                raise ValueError
        except ValueError:
            return 400, {"limit": "A positive integer is required"}
        limit = min(limit, self.max_page)
        try:
            query = json.loads(params.get("query", "{}"))
            sort = json.loads(params.get("sort", '{"_id": 1}'))
            fields = json.loads(params["fields"]) if "fields" in params else None
        except json.JSONDecodeError:
            return 400, {"query": "Value must be valid JSON."}
        with self._lock:
            try:
                ids = self._matching(query)
            except ValueError:
                return 400, ["Unsupported query"]
            if sort.get("_id", 1) == -1:
                ids = ids[::-1]
            count = len(ids)
            chosen = ids[start : start + limit]
            if fields is None:
                rows = [self._encoded(sid) for sid in chosen]
            else:
                keep = [*fields, "_uuid", "meta/rootUuid"]
                rows = [
                    json.dumps({k: self.docs[sid][k] for k in keep if k in self.docs[sid]}).encode()
                    for sid in chosen
                ]
            self.rows_served += len(rows)

        def link(offset: int) -> str:
            return f"{base}{path}?{urlencode({**params, 'start': str(offset), 'limit': str(limit)})}"

        envelope = {
            "count": count,
            "next": link(start + limit) if start + limit < count else None,
            "previous": link(max(0, start - limit)) if start > 0 else None,
        }
        head = json.dumps(envelope)[:-1].encode()
        return 200, head + b', "results": [' + b", ".join(rows) + b"]}"

    def _encoded(self, sid: int) -> bytes:
        cached = self._cache.get(sid)
        if cached is None:
            cached = self._cache[sid] = json.dumps(self.docs[sid], ensure_ascii=False).encode()
        return cached

    def _matching(self, query: dict[str, Any]) -> list[int]:
        """Ids matching a query of ``_id`` ranges/``$in``, ``_validation_status.uid`` and ``$and``."""
        ids = self._ids
        tests: list[Callable[[int], bool]] = []
        for key, cond in query.items():
            if key == "$and":
                allowed = set(self._ids)
                for part in cond:
                    allowed &= set(self._matching(part))
                tests.append(allowed.__contains__)
            elif key == "_id" and isinstance(cond, dict) and set(cond) <= _RANGE_OPS:
                low, high = 0, len(ids)
                if "$gt" in cond:
                    low = max(low, bisect.bisect_right(ids, int(cond["$gt"])))
                if "$gte" in cond:
                    low = max(low, bisect.bisect_left(ids, int(cond["$gte"])))
                if "$lt" in cond:
                    high = min(high, bisect.bisect_left(ids, int(cond["$lt"])))
                if "$lte" in cond:
                    high = min(high, bisect.bisect_right(ids, int(cond["$lte"])))
                ids = ids[low:high]
            elif key == "_id" and isinstance(cond, dict) and set(cond) == {"$in"}:
                wanted = {int(v) for v in cond["$in"]}
                tests.append(wanted.__contains__)
            elif key == "_id":
                tests.append(lambda sid, v=int(cond): sid == v)
            elif key == "_validation_status.uid":
                values = set(cond["$in"]) if isinstance(cond, dict) else {cond}
                tests.append(lambda sid, v=values: self.docs[sid]["_validation_status"].get("uid") in v)
            elif key.startswith("$"):
                raise ValueError(key)
            else:
                tests.append(lambda sid, k=key, v=cond: self.docs[sid].get(k) == v)
        if not tests:
            return list(ids)
        return [sid for sid in ids if all(test(sid) for test in tests)]

    # --- REST Services (hooks) --------------------------------------------------------------------

    def _stamp(self) -> str:
        self._clock += 1
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_780_000_000 + self._clock)) + ".000000Z"

    def add_hook(self, name: str, endpoint: str, **fields: Any) -> FakeHook:
        """A REST Service registered by hand in Kobo's UI before the test runs."""
        with self._lock:
            uid = f"h{len(self.hooks) + 1:021d}"
            fields = {**HOOK_DEFAULTS, "name": name, "endpoint": endpoint, **fields}
            hook = FakeHook(uid, self.asset_uid, fields, self._stamp())
            self.hooks[uid] = hook
            return hook

    def add_hook_log(
        self,
        hook_uid: str,
        *,
        status: int = 0,
        status_code: int | None = 500,
        message: str = "",
        submission_id: int | None = None,
        tries: int = 1,
        date_modified: str | None = None,
    ) -> HookLog:
        """A push Kobo made (by default a failed one); the hook's counts follow."""
        with self._lock:
            hook = self.hooks[hook_uid]
            self._clock += 1
            entry = HookLog(
                uid=f"hl{self._clock:020d}",
                submission_id=submission_id if submission_id is not None else 5000 + self._clock,
                status=status,
                status_code=status_code,
                message=message,
                tries=tries,
                date_modified=date_modified or self._stamp(),
                created=self._clock,
            )
            hook.logs.append(entry)
            return entry

    def hook_request(
        self, method: str, asset_uid: str, rest: list[str], params: dict[str, str], raw: bytes, base: str
    ) -> tuple[int, Any]:
        """``/api/v2/assets/<uid>/hooks/...``: list, create, detail, partial update, logs."""
        with self._lock:
            if not rest:
                if method == "GET":
                    return self._hook_list(asset_uid, params, base)
                if method == "POST":
                    return self._hook_write(None, asset_uid, json.loads(raw or b"{}"), base)
                return 405, {"detail": f'Method "{method}" not allowed.'}
            hook = self.hooks.get(rest[0])
            if hook is None or hook.asset_uid != asset_uid:
                return 404, {"detail": "Not found."}
            if rest[1:] == [] and method == "GET":
                return 200, hook.as_json(base)
            if rest[1:] == [] and method == "PATCH":
                return self._hook_write(hook, asset_uid, json.loads(raw or b"{}"), base)
            if rest[1:] == ["logs"] and method == "GET":
                return self._hook_logs(hook, params, base)
            return 404, {"detail": "Not found."}

    def _hook_list(self, asset_uid: str, params: dict[str, str], base: str) -> tuple[int, Any]:
        items = [hook.as_json(base) for hook in self.hooks.values() if hook.asset_uid == asset_uid]
        return 200, self._page(items, params, f"/api/v2/assets/{asset_uid}/hooks/", base, self.hook_page)

    def _hook_write(
        self, hook: FakeHook | None, asset_uid: str, body: dict[str, Any], base: str
    ) -> tuple[int, Any]:
        """Create (``hook`` None) or partially update, validating as KPI's HookSerializer does."""
        if self.hook_error is not None:
            error, self.hook_error = self.hook_error, None
            return 400, error
        writable = {key: value for key, value in body.items() if key in (*HOOK_DEFAULTS, "name", "endpoint")}
        merged = {**(hook.fields if hook else HOOK_DEFAULTS), **writable}
        errors: dict[str, list[str]] = {}
        for key in ("name", "endpoint"):
            if not merged.get(key):
                errors[key] = ["This field is required."]
        endpoint = str(merged.get("endpoint") or "")
        if endpoint and not endpoint.startswith("http"):
            errors["endpoint"] = ["Invalid scheme"]
        elif endpoint.startswith("http:") and not self.allow_unsecured_hooks:
            errors["endpoint"] = ["Unsecured endpoint is not allowed"]
        for key, choices in (("export_type", ("json", "xml")), ("auth_level", ("no_auth", "basic_auth"))):
            if merged.get(key) not in choices:
                errors[key] = [f'"{merged.get(key)}" is not a valid choice.']
        if not isinstance(merged.get("settings"), dict):
            errors["settings"] = ["Value must be valid JSON."]
        if errors:
            return 400, errors
        if hook is None:
            hook = FakeHook(f"h{len(self.hooks) + 1:021d}", asset_uid, merged, self._stamp())
            self.hooks[hook.uid] = hook
            return 201, hook.as_json(base)
        hook.fields = merged
        hook.date_modified = self._stamp()
        return 200, hook.as_json(base)

    def _hook_logs(self, hook: FakeHook, params: dict[str, str], base: str) -> tuple[int, Any]:
        logs = sorted(hook.logs, key=lambda entry: entry.created, reverse=True)
        if "status" in params:
            logs = [entry for entry in logs if entry.status == int(params["status"])]
        limit = int(params.get("limit", 10))
        start = int(params.get("start", 0))
        logs_url = f"{base}/api/v2/assets/{hook.asset_uid}/hooks/{hook.uid}/logs/"
        query = urlencode({**params, "start": start + limit, "limit": limit})
        return 200, {
            "count": len(logs),
            "next": f"{logs_url}?{query}" if start + limit < len(logs) else None,
            "previous": None,
            "results": [entry.as_json(logs_url) for entry in logs[start : start + limit]],
        }

    # --- imports and deployment ------------------------------------------------------------------

    def start_import(self, fields: dict[str, str], upload: bytes, base: str) -> tuple[int, Any]:
        with self._lock:
            uid = f"i{len(self.imports) + 1:021d}"
            if self.import_error is not None:
                result = {"status": "error", "messages": self.import_error}
                self.import_error = None
            elif not upload.startswith(b"PK"):
                result = {
                    "status": "error",
                    "messages": {
                        "error": "xls upload must have one of these sheets: survey, library",
                        "error_type": "SyntaxError",
                    },
                }
            else:
                result = self._apply_import(fields, base)
            self.imports[uid] = ImportTask(uid, self.import_polls, result)
            links = self.foreign_links or base
            return 201, {"uid": uid, "url": f"{links}/api/v2/imports/{uid}/", "status": "processing"}

    def _apply_import(self, fields: dict[str, str], base: str) -> dict[str, Any]:
        # A missing or non-'false' library puts the sheet in the library as a block (kobo-api.md 4.1).
        kind = "survey" if fields.get("library") == "false" else "block"
        destination = fields.get("destination")
        if destination:
            uid = destination.rstrip("/").rsplit("/", 1)[-1]
            if uid not in self.assets:
                return {
                    "status": "error",
                    "messages": {"error": "user cannot update asset", "error_type": "PermissionDenied"},
                }
            asset = self.assets[uid]
            asset.version_id = "v" + self._uuid().replace("-", "")[:21]
            return {"status": "complete", "messages": {"updated": [{"uid": uid, "kind": "asset"}]}}
        uid = "a" + self._uuid().replace("-", "")[:21]
        self.assets[uid] = Asset(
            uid, "Victims identified or referred", kind, "v" + self._uuid().replace("-", "")[:21]
        )
        return {"status": "complete", "messages": {"created": [{"uid": uid, "kind": "asset"}]}}

    def poll_import(self, uid: str, base: str) -> tuple[int, Any]:
        with self._lock:
            task = self.imports.get(uid)
            if task is None:
                return 404, {"detail": "Not found."}
            body = {
                "uid": uid,
                "url": f"{base}/api/v2/imports/{uid}/",
                "date_created": "2026-01-01T00:00:00Z",
            }
            if task.polls_left > 0:
                task.polls_left -= 1
                return 200, {**body, "status": "processing", "messages": {}}
            return 200, {**body, **task.result}

    def deployment(self, method: str, uid: str, body: dict[str, Any], base: str) -> tuple[int, Any]:
        with self._lock:
            asset = self.assets.get(uid)
            if asset is None:
                return 404, {"detail": "Not found."}
            deployed = asset.deployed_version_id is not None
            if method == "GET":
                if not deployed:
                    return 404, {"detail": "Not found."}
            elif method == "POST":
                if deployed:
                    return 405, {"detail": "Use PATCH to update an existing deployment"}
                if asset.asset_type != "survey":
                    return 400, {"error": "Only surveys may be deployed"}
                if self.deploy_error:
                    error, self.deploy_error = self.deploy_error, None
                    return 400, {"error": error}
                asset.deployed_version_id = asset.version_id
                asset.active = bool(body.get("active", False))
            elif method == "PATCH":
                if not deployed:
                    return 405, {"detail": "Use POST to create a new deployment"}
                asset.active = bool(body.get("active", asset.active))
                if set(body) != {"active"}:  # only then is the form redeployed
                    if body.get("version_id") != asset.version_id:
                        return 500, "Only the current version_id can be deployed"
                    if self.deploy_error:
                        error, self.deploy_error = self.deploy_error, None
                        return 400, {"error": error}
                    asset.deployed_version_id = asset.version_id
            count = len(self._ids) if uid == self.asset_uid else 0
            return 200, {
                "backend": "openrosa",
                "active": asset.active,
                "version_id": asset.deployed_version_id,
                "asset": asset.as_json(base, count),
            }

    def asset_list(self, params: dict[str, str], base: str) -> tuple[int, Any]:
        with self._lock:
            items = [
                asset.as_json(base, len(self._ids) if asset.uid == self.asset_uid else 0)
                for asset in self.assets.values()
            ]
        q = params.get("q", "")
        if q.startswith("asset_type:"):
            items = [item for item in items if item["asset_type"] == q.split(":", 1)[1]]
        return 200, self._page(items, params, "/api/v2/assets/", base, 1000, default=100)

    def _page(
        self, items: list[Any], params: dict[str, str], path: str, base: str, cap: int, default: int = 0
    ) -> dict[str, Any]:
        """One page of a KPI list: ``limit`` (at most ``cap``) from ``start``, ``next`` when more remain
        (on ``foreign_links``, a hostile server's other origin, when set)."""
        limit = min(int(params.get("limit", default or cap)), cap)
        start = int(params.get("start", 0))
        query = urlencode({**params, "start": start + limit, "limit": limit})
        return {
            "count": len(items),
            "next": f"{self.foreign_links or base}{path}?{query}" if start + limit < len(items) else None,
            "previous": None,
            "results": items[start : start + limit],
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server behind a proxy

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK stall every response by 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def fake(self) -> FakeKobo:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        base = f"http://{self.headers['Host']}"
        with fake._lock:
            fake.requests.append((method, path, params))
            fake.exchanges.append(Exchange(method, self.path, dict(self.headers), raw))
        if not path.endswith("/"):
            # Django's APPEND_SLASH: a redirect, which loses a POST body.
            self._send(301, b"", {"Location": path + "/" + (f"?{parts.query}" if parts.query else "")})
            return
        auth = self.headers.get("Authorization")
        if auth is None:
            self._send(
                401,
                {"detail": "Authentication credentials were not provided."},
                {"WWW-Authenticate": "Token"},
            )
            return
        if auth != f"Token {fake.token}":
            self._send(401, {"detail": "Invalid token."}, {"WWW-Authenticate": "Token"})
            return
        try:
            status, body = self._route(method, path, params, raw, base)
        except Exception as exc:  # a fake must say what broke it, as a 500
            status, body = 500, {"detail": f"fake server bug: {exc!r}"}
        self._serve(path, status, body)

    def _route(
        self, method: str, path: str, params: dict[str, str], raw: bytes, base: str
    ) -> tuple[int, Any]:
        fake = self.fake
        segments = [s for s in path.split("/") if s]
        if segments[:2] != ["api", "v2"]:
            return 410, {"detail": "This endpoint has been removed."}
        rest = segments[2:]
        if rest == ["assets"] and method == "GET":
            return fake.asset_list(params, base)
        if rest == ["imports"] and method == "POST":
            fields, upload = _multipart(self.headers.get("Content-Type", ""), raw)
            return fake.start_import(fields, upload, base)
        if len(rest) == 2 and rest[0] == "imports" and method == "GET":
            return fake.poll_import(rest[1], base)
        if len(rest) >= 2 and rest[0] == "assets":
            uid = rest[1]
            if uid not in fake.assets:
                return 404, {"detail": "Not found."}
            if len(rest) == 2 and method == "GET":
                with fake._lock:
                    count = len(fake._ids) if uid == fake.asset_uid else 0
                    return 200, fake.assets[uid].as_json(base, count)
            if rest[2:] == ["data"] and method == "GET":
                if fake.assets[uid].deployed_version_id is None:
                    return 400, {"detail": "The specified asset has not been deployed"}
                with fake._lock:
                    fake.data_requests += 1
                    number = fake.data_requests
                if fake.before_data_request is not None:
                    fake.before_data_request(fake, number)
                return fake.data_page(params, base, path)
            if rest[2:3] == ["hooks"]:
                return fake.hook_request(method, uid, rest[3:], params, raw, base)
            if rest[2:] == ["deployment"]:
                body = json.loads(raw) if raw else {}
                return fake.deployment(method, uid, body, base)
        return 404, {"detail": "Not found."}

    def _serve(self, path: str, status: int, body: Any) -> None:
        fault = self.fake._take_fault(path)
        if fault is None:
            self._send(status, body)
            return
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            if fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._send(fault.status, {"detail": f"injected {fault.status}"}, headers)
            elif fault.kind == "timeout":
                time.sleep(fault.delay)
                self._send(status, body)
            elif fault.kind == "reset":
                # Announce the whole body, send half, then cut the connection.
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            elif fault.kind == "truncate":
                self._send(status, data[: len(data) // 2])
            else:
                raise ValueError(f"unknown fault kind {fault.kind}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], bytes]:
    """Form fields and the uploaded file of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, str] = {}
    upload = b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            upload = payload
        elif name:
            fields[str(name)] = payload.decode()
    return fields, upload
