"""A fake ODK Central on 127.0.0.1: sessions, forms and drafts, and the OData Submissions feed.

It answers in Central's real shapes (as central-backend's source and the real server show them):
problem JSON ``{"message", "code", "details"}``; OData ``value`` rows with ``__id`` and
``__system``, nested group objects, integers as JSON numbers; ``@odata.nextLink`` with an
opaque ``$skiptoken`` (newest first, 501.1 if ``$orderby`` comes with it); ``updatedAt``
null until an edit or review; deleted rows hidden unless ``$filter`` mentions ``deletedAt``.
Its clock is explicit (``tick``) so tests can reason about watermarks; the ``Date`` header
uses it too. Faults (status codes, slow replies, expired sessions) are injected per path.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import io
import itertools
import json
import operator
import re
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import openpyxl

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PURGE_DAYS = 30  # central-backend lib/util/constants.js PURGE_DAY_RANGE
SYSTEM_FILTER_FIELDS = (
    "__id",
    "__system/submissionDate",
    "__system/updatedAt",
    "__system/deletedAt",
    "__system/reviewState",
    "__system/submitterId",
)


class Problem(Exception):
    """A Central problem reply."""

    def __init__(self, code: float, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


@dataclass
class Submission:
    instance_id: str  # __id: the first version's instanceID
    seq: int  # creation order: Central's createdAt/id cursor
    data: dict[str, Any]  # the current version's answers, nested by group
    submission_date: dt.datetime
    form_version: str
    submitter_id: int = 5
    updated_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    review_state: str | None = None
    edits: int = 0


@dataclass(frozen=True)
class XForm:
    """A reply that is an XForm document, not JSON."""

    body: bytes


@dataclass
class Fault:
    """An injected fault: after letting ``after`` matching requests through, the next ``count``
    requests whose path contains ``path`` wait ``delay`` seconds, then get ``status`` (0: none)."""

    path: str
    status: int = 503
    delay: float = 0.0
    count: int = 1
    method: str = ""
    after: int = 0


@dataclass
class Form:
    xml_form_id: str
    name: str
    version: str | None = None  # published version
    enketo_id: str = field(default_factory=lambda: secrets.token_hex(8))
    state: str = "open"
    published_versions: list[str] = field(default_factory=list)
    draft_version: str | None = None
    draft_body: bytes | None = None  # the XForm of the draft: as uploaded, or converted from XLSX
    xml: bytes | None = None  # the XForm of the published version
    attachments_expected: tuple[str, ...] = ()
    attachments_uploaded: dict[str, bytes] = field(default_factory=dict)


def iso(moment: dt.datetime | None) -> str | None:
    """Central's JSON time format: UTC with milliseconds and Z."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class FakeCentral:
    """The server state and the HTTP server around it. Use as a context manager."""

    def __init__(
        self,
        *,
        email: str = "me@example.org",
        password: str = "correct horse battery staple",
        project_id: int = 1,
        form_id: str = "tip_victims",
        start: dt.datetime = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC),
    ) -> None:
        self.email = email
        self.password = password
        self.project_id = project_id
        self.form_id = form_id
        self.now = start
        self.lock = threading.RLock()
        self.submissions: dict[str, Submission] = {}
        self.forms: dict[str, Form] = {}
        self.tokens: dict[str, int | None] = {}  # token -> requests left (None: until expired)
        self.token_uses: int | None = None  # a session's lifetime, counted in requests
        self.issued: list[str] = []  # every token handed out, live or not
        self.logins = 0
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.faults: list[Fault] = []
        self.form_warnings: list[str] = []  # pyxform warnings every uploaded XLSForm gets
        # Workflow warnings (structureChanged, deletedFormExists) every upload gets, XForm or XLSForm.
        self.workflow_warnings: list[dict[str, Any]] = []
        # A project's managed-encryption public key: Central writes it into every uploaded form.
        self.managed_key: str | None = None
        self.attachments_expected: tuple[str, ...] = ()
        self.login_redirect: tuple[int, str] | None = None  # (status, Location) for POST /v1/sessions
        # Called (under the lock) before each OData request is answered, with how many came before.
        self.before_odata: Callable[[int], None] | None = None
        self._odata_served = 0
        self._seq = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeCentral:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- clock and test controls ---------------------------------------------------------------

    def tick(self, seconds: float = 1.0) -> dt.datetime:
        """Advance the server clock; returns the new time."""
        with self.lock:
            self.now += dt.timedelta(seconds=seconds)
            return self.now

    def expire_sessions(self) -> None:
        """Every session token issued so far now gets 401 (as after Central's 24 h lifetime)."""
        with self.lock:
            self.tokens.clear()

    def inject(
        self,
        path: str,
        *,
        status: int = 503,
        delay: float = 0.0,
        count: int = 1,
        method: str = "",
        after: int = 0,
    ) -> Fault:
        """Make ``count`` requests on a path containing ``path`` fail or stall (see :class:`Fault`)."""
        fault = Fault(path, status, delay, count, method, after)
        with self.lock:
            self.faults.append(fault)
        return fault

    def odata_requests(self) -> list[dict[str, list[str]]]:
        """The query strings of every OData Submissions request, in order."""
        return [query for _, path, query in self.requests if path.endswith(".svc/Submissions")]

    # --- submissions --------------------------------------------------------------------------

    def add_submission(
        self,
        data: dict[str, Any],
        *,
        instance_id: str | None = None,
        form_version: str = "20260101000000",
        review_state: str | None = None,
        submitted: dt.datetime | None = None,
    ) -> str:
        """Receive a submission (nested groups, as OData returns them); returns its ``__id``.

        ``submitted`` backdates the receipt time (the clock still moves on).
        """
        with self.lock:
            self.tick(1)
            iid = instance_id or f"uuid:{uuid.uuid4()}"
            body = copy.deepcopy(data)
            body.setdefault("meta", {})["instanceID"] = iid
            self.submissions[iid] = Submission(
                instance_id=iid,
                seq=next(self._seq),
                data=body,
                submission_date=submitted or self.now,
                form_version=form_version,
                review_state=review_state,
            )
            return iid

    def edit(self, instance_id: str, change: Callable[[dict[str, Any]], None]) -> str:
        """A new version: same ``__id``, new ``meta/instanceID``, reviewState ``edited``."""
        with self.lock:
            sub = self.submissions[instance_id]
            self.tick(1)
            change(sub.data)
            new_id = f"uuid:{uuid.uuid4()}"
            meta = sub.data.setdefault("meta", {})
            meta["deprecatedID"] = meta.get("instanceID")
            meta["instanceID"] = new_id
            sub.review_state = "edited"
            sub.updated_at = self.now
            sub.edits += 1
            return new_id

    def review(self, instance_id: str, state: str) -> None:
        """Approve, reject or flag: bumps ``updatedAt``."""
        with self.lock:
            self.tick(1)
            sub = self.submissions[instance_id]
            sub.review_state = state
            sub.updated_at = self.now

    def delete(self, instance_id: str) -> None:
        """Soft-delete: sets ``deletedAt`` only (``updatedAt`` untouched, as in Central)."""
        with self.lock:
            self.tick(1)
            self.submissions[instance_id].deleted_at = self.now

    def restore(self, instance_id: str) -> None:
        """``POST .../submissions/:id/restore``: clears ``deletedAt`` only; ``updatedAt``, the
        submission date and the review state stay as they were (central-backend ``markUndeleted``)."""
        with self.lock:
            self.tick(1)
            self.submissions[instance_id].deleted_at = None

    def purge(self, instance_id: str) -> None:
        """The row vanishes entirely (Central purges deleted rows after 30 days)."""
        with self.lock:
            del self.submissions[instance_id]

    def purge_expired(self) -> None:
        """What Central's daily purge does: rows deleted more than ``PURGE_DAYS`` ago vanish."""
        with self.lock:
            limit = self.now - dt.timedelta(days=PURGE_DAYS)
            for iid in [i for i, s in self.submissions.items() if s.deleted_at and s.deleted_at < limit]:
                del self.submissions[iid]

    # --- request handling -------------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path in path and fault.method in ("", method) and fault.count > 0:
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.count -= 1
                    return fault
        return None

    def check_auth(self, header: str | None) -> None:
        token = header[7:] if header and header.startswith("Bearer ") else None
        with self.lock:
            left = self.tokens.get(token or "", 0)
            if token is None or left == 0:
                self.tokens.pop(token or "", None)
                raise Problem(401.2, "Could not authenticate with the provided credentials.")
            if left is not None:
                self.tokens[token] = left - 1

    def login(self, body: bytes) -> dict[str, Any]:
        try:
            creds = json.loads(body or b"{}")
        except ValueError:
            raise Problem(400.1, "Could not parse the given data (0 chars) as json.") from None
        if creds.get("email") != self.email or creds.get("password") != self.password:
            raise Problem(401.2, "Could not authenticate with the provided credentials.")
        token = secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[token] = self.token_uses
            self.issued.append(token)
            self.logins += 1
        return {
            "createdAt": iso(self.now),
            "expiresAt": iso(self.now + dt.timedelta(hours=24)),
            "token": token,
        }

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> Any:
        """Dispatch one authenticated API call; returns the JSON reply body."""
        base = f"/v1/projects/{self.project_id}/forms"
        if method == "DELETE" and path == "/v1/sessions/current":
            token = headers.get("Authorization", "")[7:]
            self.tokens.pop(token, None)
            return {"success": True}
        if not path.startswith(f"/v1/projects/{self.project_id}/"):
            raise Problem(404.1, "Could not find the resource you were looking for.")
        rest = path[len(base) :]
        if method == "GET" and rest in ("", "/"):
            return self.list_forms(extended=headers.get("X-Extended-Metadata") == "true")
        if method == "POST" and rest in ("", "/"):
            return self.create_form(query, headers, body)
        match = re.fullmatch(r"/([^/]+)\.svc/Submissions", rest)
        if match and method == "GET":
            return self.odata(unquote(match[1]), path, query)
        match = re.fullmatch(r"/([^/]+)\.xml", rest)
        if match and method == "GET":  # the published XForm, as Collect downloads it
            published = self.forms.get(unquote(match[1]))
            if published is None or published.xml is None:
                raise Problem(404.1, "Could not find the resource you were looking for.")
            return XForm(published.xml)
        match = re.fullmatch(r"/([^/.]+)(/.*)?", rest)
        if not match or unquote(match[1]) not in self.forms:
            raise Problem(404.1, "Could not find the resource you were looking for.")
        form, sub = self.forms[unquote(match[1])], match[2] or ""
        if method == "GET" and sub == "":
            return self.form_json(form)
        if method == "POST" and sub == "/draft":
            return self.create_draft(form, query, headers, body)
        if method == "GET" and sub == "/draft.xml":
            if form.draft_body is None:
                raise Problem(404.1, "Could not find the resource you were looking for.")
            return XForm(form.draft_body)
        if method == "GET" and sub == "/draft/attachments":
            return self.draft_attachments(form)
        attachment = re.fullmatch(r"/draft/attachments/(.+)", sub)
        if method == "POST" and attachment:
            return self.upload_attachment(form, unquote(attachment[1]), body)
        if method == "POST" and sub == "/draft/publish":
            return self.publish(form, (query.get("version") or [None])[0])
        raise Problem(404.1, "Could not find the resource you were looking for.")

    # --- forms ------------------------------------------------------------------------------------

    def form_json(self, form: Form, *, extended: bool = False) -> dict[str, Any]:
        body = {
            "projectId": self.project_id,
            "xmlFormId": form.xml_form_id,
            "name": form.name,
            "version": form.version if form.version is not None else form.draft_version,
            "enketoId": form.enketo_id,
            "state": form.state,
            "publishedAt": iso(self.now) if form.published_versions else None,
            "createdAt": iso(self.now),
            "keyId": None,
        }
        if extended:
            count = sum(1 for s in self.submissions.values() if s.deleted_at is None)
            body["submissions"] = count if form.xml_form_id == self.form_id else 0
        return body

    def list_forms(self, *, extended: bool) -> list[dict[str, Any]]:
        return [self.form_json(form, extended=extended) for form in self.forms.values()]

    def _read_definition(
        self, headers: Any, body: bytes, ignore_warnings: bool
    ) -> tuple[str, str, str, bytes]:
        """(xmlFormId, version, title, XForm) of an uploaded XLSX or XForm; 400.16 on warnings.

        An XForm is kept as sent (central-backend ``Form.fromXml``); an XLSX is converted as
        pyxform-http does (pyxform, no form name: the root is ``<data>`` unless the settings sheet
        has a ``name``), and only an XLSX gets pyxform's warnings."""
        xlsform_warnings: list[str] = []
        content_type = (headers.get("Content-Type") or "").split(";")[0]
        fallback = unquote(headers.get("X-XlsForm-FormId-Fallback") or "")
        if content_type == XLSX_TYPE:
            try:
                book = openpyxl.load_workbook(io.BytesIO(body), read_only=True, data_only=True)
            except Exception:
                raise Problem(
                    400.15, "The given XLSForm file was not valid.", {"error": "not a zip"}
                ) from None
            rows = list(book["settings"].iter_rows(values_only=True)) if "settings" in book.sheetnames else []
            settings = dict(zip(rows[0], rows[1], strict=False)) if len(rows) > 1 else {}
            form_id = str(settings.get("form_id") or fallback)
            version, title = str(settings.get("version") or ""), str(settings.get("form_title") or form_id)
            from pyxform.xls2xform import convert

            xform = convert(xlsform=body, file_type=".xlsx", validate=False).xform.encode("utf-8")
            xlsform_warnings = list(self.form_warnings)
        elif content_type in ("application/xml", "text/xml"):
            root = ET.fromstring(body)
            instance = root.find(".//{http://www.w3.org/2002/xforms}instance")
            data = next(iter(instance)) if instance is not None else None
            if data is None or "id" not in data.attrib:
                raise Problem(400.2, "A required field id is missing.")
            form_id, version = data.attrib["id"], data.attrib.get("version", "")
            title_node = root.find(".//{http://www.w3.org/1999/xhtml}title")
            title = title_node.text if title_node is not None and title_node.text else form_id
            xform = body
        else:
            raise Problem(415.1, f"Unexpected content type {content_type!r}.")
        if self.managed_key is not None:  # central-backend Form.withManagedKey
            submission = f'<submission base64RsaPublicKey="{self.managed_key}" method="post"/>'
            xform = xform.replace(b"</model>", submission.encode() + b"</model>", 1)
        if (xlsform_warnings or self.workflow_warnings) and not ignore_warnings:
            warnings: dict[str, Any] = {}
            if xlsform_warnings:
                warnings["xlsFormWarnings"] = xlsform_warnings
            if self.workflow_warnings:
                warnings["workflowWarnings"] = list(self.workflow_warnings)
            raise Problem(400.16, "The form is valid, but there are warnings.", {"warnings": warnings})
        return form_id, version, title, xform

    def create_form(self, query: dict[str, list[str]], headers: Any, body: bytes) -> dict[str, Any]:
        ignore = query.get("ignoreWarnings") == ["true"]
        form_id, version, title, xform = self._read_definition(headers, body, ignore)
        if form_id in self.forms:
            raise Problem(
                409.3,
                "A resource already exists with projectId,xmlFormId value(s) of "
                f"{self.project_id},{form_id}.",
                {"fields": ["projectId", "xmlFormId"], "values": [str(self.project_id), form_id]},
            )
        form = Form(form_id, title, attachments_expected=self.attachments_expected)
        form.draft_version, form.draft_body = version, xform
        self.forms[form_id] = form
        if query.get("publish") == ["true"]:
            self.publish(form, None)
        return self.form_json(form)

    def create_draft(
        self, form: Form, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> dict[str, Any]:
        form_id, version, _, xform = self._read_definition(
            headers, body, query.get("ignoreWarnings") == ["true"]
        )
        if form_id != form.xml_form_id:
            raise Problem(
                400.8,
                f"The form you have uploaded attempts to change the Form ID (from {form.xml_form_id} "
                f"to {form_id}). Changing the Form ID is not allowed.",
                {
                    "field": "xmlFormId",
                    "value": form_id,
                    "reason": "does not match the form you are updating",
                },
            )
        form.draft_version, form.draft_body = version, xform
        form.attachments_uploaded = {}
        return {"success": True}

    def draft_attachments(self, form: Form) -> list[dict[str, Any]]:
        if form.draft_body is None:
            raise Problem(404.1, "Could not find the resource you were looking for.")
        return [
            {"name": name, "type": "file", "exists": name in form.attachments_uploaded, "blobExists": False}
            for name in form.attachments_expected
        ]

    def upload_attachment(self, form: Form, name: str, body: bytes) -> dict[str, Any]:
        if form.draft_body is None or name not in form.attachments_expected:
            raise Problem(404.1, "Could not find the resource you were looking for.")
        form.attachments_uploaded[name] = body
        return {"success": True}

    def publish(self, form: Form, version: str | None) -> dict[str, Any]:
        if form.draft_body is None:
            raise Problem(404.1, "Could not find the resource you were looking for.")
        final = version or form.draft_version or ""
        if final in form.published_versions:
            raise Problem(
                409.6,
                f"The version '{final}' of form '{form.xml_form_id}' already exists. "
                "Please use a new version string.",
                {"xmlFormId": form.xml_form_id, "version": final},
            )
        missing = [name for name in form.attachments_expected if name not in form.attachments_uploaded]
        if missing:
            raise Problem(409.7, f"The form attachment(s) {', '.join(missing)} are missing.")
        xform = form.draft_body
        if version is not None:  # central-backend setVersion: the attribute spliced into the XML
            xform = re.sub(
                rb'(<[^>]*\sid="[^"]*"[^>]*?\sversion=")[^"]*"',
                lambda m: m[1] + version.encode() + b'"',
                xform,
                count=1,
            )
        form.published_versions.append(final)
        form.version, form.draft_version, form.draft_body, form.xml = final, None, None, xform
        return {"success": True}

    # --- OData ------------------------------------------------------------------------------------

    def odata(self, form_id: str, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if form_id != self.form_id:
            raise Problem(404.1, "Could not find the resource you were looking for.")
        if self.before_odata is not None:
            self.before_odata(self._odata_served)
        self._odata_served += 1
        one = {key: values[0] for key, values in query.items()}
        if "$orderby" in one and "$skiptoken" in one:
            raise Problem(
                501.1, "The requested feature $orderby with $skiptoken is not supported by this server."
            )
        if "$select" in one and "$expand" in one:
            raise Problem(
                501.11, "The requested feature $select with $expand is not supported by this server."
            )
        if one.get("$expand", "*") != "*":
            raise Problem(
                501.6, "The requested feature $expand other than * is not supported by this server."
            )
        text = one.get("$filter", "")
        matches = parse_filter(text) if text else (lambda row: True)
        self.purge_expired()
        with self.lock:
            rows = [
                s
                for s in self.submissions.values()
                if (s.deleted_at is None or "__system/deletedAt" in text) and matches(system_values(s))
            ]
        rows.sort(key=lambda s: s.seq, reverse=True)  # createdAt DESC, id DESC
        total = len(rows)
        if "$skiptoken" in one:
            cursor = decode_skiptoken(one["$skiptoken"])
            rows = [s for s in rows if s.seq < cursor]
        elif "$skip" in one:
            rows = rows[int(one["$skip"]) :]
        context = f"{self.url}/v1/projects/{self.project_id}/forms/{form_id}.svc/$metadata#Submissions"
        reply: dict[str, Any] = {"@odata.context": context}
        if one.get("$count") == "true":
            reply["@odata.count"] = total
        page = rows
        if "$top" in one:
            top = int(one["$top"])
            page = rows[:top]
            if len(rows) > top:
                next_query = {k: v for k, v in one.items() if k != "$skip"}
                next_query["$skiptoken"] = encode_skiptoken(page[-1].seq)
                reply["@odata.nextLink"] = f"{self.url}{path}?{urlencode(next_query)}"
        select = [name for name in one.get("$select", "").split(",") if name]
        reply["value"] = [odata_row(s, expand="$expand" in one, select=select) for s in page]
        return reply


# --- Kobo shape -> Central shape -------------------------------------------------------------------

KOBO_REVIEW_STATES = {
    "validation_status_approved": "approved",
    "validation_status_not_approved": "rejected",
    "validation_status_on_hold": "hasIssues",
}
INTEGER_FIELDS = ("age_years", "birth_year")


def nested(answers: dict[str, Any]) -> dict[str, Any]:
    """Kobo's ``group/field`` string answers as Central's OData holds them: group objects, and
    integers as JSON numbers. Kobo's own keys (``_id``, ``__version__``, ``formhub``...) are dropped."""
    data: dict[str, Any] = {}
    for key, value in answers.items():
        if key.startswith("_") or key in ("formhub/uuid", "meta/rootUuid", "meta/instanceID"):
            continue
        *groups, name = key.split("/")
        node = data
        for group in groups:
            node = node.setdefault(group, {})
        is_integer = name in INTEGER_FIELDS and isinstance(value, str) and value.lstrip("-").isdigit()
        node[name] = int(value) if is_integer else value
    return data


def from_kobo(row: dict[str, Any]) -> tuple[dict[str, Any], dt.datetime, str | None]:
    """A Kobo data-API row as Central would hold the same submission: (nested answers, receipt
    time, reviewState)."""
    data = nested(row)
    received = dt.datetime.fromisoformat(row["_submission_time"]).replace(tzinfo=dt.UTC)
    status = (row.get("_validation_status") or {}).get("uid")
    return data, received, KOBO_REVIEW_STATES.get(status or "")


# --- OData helpers -------------------------------------------------------------------------------


def encode_skiptoken(seq: int) -> str:
    payload = json.dumps({"createdAt": "opaque", "id": seq}).encode()
    return "01" + base64.urlsafe_b64encode(payload).decode()


def decode_skiptoken(token: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token[2:]))["id"])
    except (ValueError, KeyError, TypeError):
        raise Problem(400.18, "The $skiptoken could not be parsed.") from None


def system_values(sub: Submission) -> dict[str, Any]:
    return {
        "__id": sub.instance_id,
        "__system/submissionDate": sub.submission_date,
        "__system/updatedAt": sub.updated_at,
        "__system/deletedAt": sub.deleted_at,
        "__system/reviewState": sub.review_state,
        "__system/submitterId": str(sub.submitter_id),
    }


def odata_row(sub: Submission, *, expand: bool, select: list[str]) -> dict[str, Any]:
    system = {
        "submissionDate": iso(sub.submission_date),
        "updatedAt": iso(sub.updated_at),
        "deletedAt": iso(sub.deleted_at),
        "submitterId": str(sub.submitter_id),
        "submitterName": "Field Team",
        "attachmentsPresent": 0,
        "attachmentsExpected": 0,
        "status": None,
        "reviewState": sub.review_state,
        "deviceId": None,
        "edits": sub.edits,
        "formVersion": sub.form_version,
    }
    row: dict[str, Any] = {"__id": sub.instance_id, "__system": system}
    row.update(_with_repeats(copy.deepcopy(sub.data), expand, f"Submissions('{sub.instance_id}')"))
    if not select:
        return row
    picked: dict[str, Any] = {}
    for name in select:
        head, _, tail = name.partition("/")
        if head not in row:
            continue
        if tail and isinstance(row[head], dict):
            picked.setdefault(head, {})[tail] = row[head].get(tail)
        else:
            picked[head] = row[head]
    return picked


def _with_repeats(node: dict[str, Any], expand: bool, link: str) -> dict[str, Any]:
    """Repeats (lists) stay arrays with $expand=*, else become navigation links."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, list) and not expand:
            out[f"{key}@odata.navigationLink"] = f"{link}/{key}"
        elif isinstance(value, dict):
            out[key] = _with_repeats(value, expand, f"{link}/{key}")
        else:
            out[key] = value
    return out


_TOKEN = re.compile(
    r"\s*(?:(?P<paren>[()])|(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z_][\w/]*)"
    r"|(?P<time>\d{4}-\d\d-\d\d(?:T[\d:.]+(?:Z|[+-]\d\d:\d\d)?)?))"
)


def parse_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """The OData $filter subset Central supports on system fields: comparisons, and/or/not, parens."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise Problem(400.18, f"The OData filter expression you provided could not be parsed: {text}")
        kind = match.lastgroup or ""
        tokens.append((kind, match[kind]))
        pos = match.end()
    parser = _FilterParser(tokens, text)
    predicate = parser.expression()
    if parser.pos != len(tokens):
        raise Problem(400.18, f"The OData filter expression you provided could not be parsed: {text}")
    return predicate


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Comparisons with null are false, as in SQL."""
    return lambda a, b: a is not None and b is not None and compare(a, b)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": _ordered(operator.gt),
    "ge": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "le": _ordered(operator.le),
}


class _FilterParser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise Problem(
                400.18, f"The OData filter expression you provided could not be parsed: {self.text}"
            )
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expression(self) -> Callable[[dict[str, Any]], bool]:
        left = self._conjunction()
        while self._peek() == "or":
            self._next()
            right, first = self._conjunction(), left
            left = lambda row, a=first, b=right: a(row) or b(row)  # noqa: E731
        return left

    def _conjunction(self) -> Callable[[dict[str, Any]], bool]:
        left = self._unary()
        while self._peek() == "and":
            self._next()
            right, first = self._unary(), left
            left = lambda row, a=first, b=right: a(row) and b(row)  # noqa: E731
        return left

    def _unary(self) -> Callable[[dict[str, Any]], bool]:
        if self._peek() == "not":
            self._next()
            inner = self._unary()
            return lambda row: not inner(row)
        if self._peek() == "(":
            self._next()
            inner = self.expression()
            if self._next()[1] != ")":
                raise Problem(
                    400.18, f"The OData filter expression you provided could not be parsed: {self.text}"
                )
            return inner
        kind, name = self._next()
        if kind != "word" or name not in SYSTEM_FILTER_FIELDS:
            raise Problem(
                501.5, f"The given OData filter expression references fields not supported: {name}."
            )
        _, op = self._next()
        if op not in _OPS:
            raise Problem(501.4, f"The given OData filter expression uses features not supported: {op}.")
        literal = self._literal(self._next())
        compare = _OPS[op]
        return lambda row: compare(row[name], literal)

    def _literal(self, token: tuple[str, str]) -> Any:
        kind, text = token
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "word" and text == "null":
            return None
        if kind == "time":
            moment = dt.datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        raise Problem(400.18, f"The OData filter expression you provided could not be parsed: {self.text}")


# --- HTTP ----------------------------------------------------------------------------------------


def _handler_for(central: FakeCentral) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

        def date_time_string(self, timestamp: float | None = None) -> str:
            return format_datetime(central.now.astimezone(dt.UTC), usegmt=True)

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with central.lock:
                central.requests.append((method, parts.path, query))
            fault = central.take_fault(method, parts.path)
            if fault is not None:
                time.sleep(fault.delay)
                if fault.status:
                    self._reply(fault.status, {"message": "Injected fault.", "code": float(fault.status)})
                    return
            try:
                if method == "POST" and parts.path == "/v1/sessions":
                    if central.login_redirect is not None:  # a hostile server moves the login
                        status, location = central.login_redirect
                        self.send_response(status)
                        self.send_header("Location", location)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self._reply(200, central.login(body))
                    return
                central.check_auth(self.headers.get("Authorization"))
                with central.lock:
                    reply = central.route(method, parts.path, query, self.headers, body)
                if isinstance(reply, XForm):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/xml; charset=utf-8")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self._reply(200, reply)
            except Problem as problem:
                self._reply(int(problem.code), problem.body())

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler
