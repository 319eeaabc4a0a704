"""ODK Central: OData incremental sync with deletions and reconcile, form deploy, form list.

Facts this module relies on (reference odk-central-and-pyxform.md, sections 0-3):
``__system/updatedAt`` is null until a submission is edited or reviewed, so new rows are found
by ``submissionDate``; deleting or restoring touches only ``deletedAt`` and deleted rows are
hidden unless ``$filter`` mentions it; an edit keeps ``__id`` and changes ``meta/instanceID``;
``@odata.nextLink`` carries an opaque ``$skiptoken`` and must not be combined with
``$orderby``; pages come newest first; a session token expires and is never refreshed by
the server; every publish needs a version never published before. A restore clears
``deletedAt`` and nothing else, so neither the changes nor the deletions filter sees it; deleted
rows are purged after 30 days, so only those deleted within that window can come back.

pyodk is not used for transport: its session has no timeout or retries on plain http, never
logs in again on a 401, does not page OData and uploads forms with ``ignoreWarnings=true``.
Everything goes through :mod:`kobo_tip.http` instead (one retry policy for the whole tool).
"""

from __future__ import annotations

import datetime as dt
import logging
import mimetypes
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from kobo_tip import indicator
from kobo_tip.answers import find_answers
from kobo_tip.config import CENTRAL_PASSWORD_ENV, CENTRAL_USERNAME_ENV, read_secret
from kobo_tip.errors import ServerError, SourceError
from kobo_tip.http import get_json, new_session, request
from kobo_tip.sources.base import Batch, DeployResult, FormFiles, RawSubmission, SyncState

if TYPE_CHECKING:
    from kobo_tip.config import Settings

log = logging.getLogger(__name__)

# Watermarks (server times, ISO with Z; the cursor is the query string of a nextLink).
CHANGED = "central_changed"  # submissions created or updated after this were not pulled yet
DELETED = "central_deleted"  # deletions after this were not pulled yet
CURSOR = "central_cursor"  # an interrupted changes pass resumes from this page
PASS_STARTED = "central_pass_started"  # server time the interrupted pass began
# Server stamps are compared again this far back: the Date header has whole seconds and the
# database clock may run slightly ahead of the web server's.
OVERLAP = dt.timedelta(minutes=2)
MAX_PAGE = 1000
REFETCH_CHUNK = 50  # ids per `__id eq ... or ...` filter: keeps the URL short
# Central purges a deleted submission 30 days after its deletedAt (PURGE_DAY_RANGE); the store's
# deletion time is when a sync saw it, later still. A day more covers the clocks' difference.
RESTORE_WINDOW = dt.timedelta(days=31)
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 150.0)
XFORM_TYPE = "application/xml"  # what Central reads as an XForm (else XLSX, XLS by their types)
INSTANCE_ID = "instanceID"


# --- rows ---------------------------------------------------------------------------------------


def parse_time(text: Any) -> dt.datetime | None:
    """A Central timestamp (``2026-01-05T08:00:01.123Z``) as an aware UTC datetime; None if absent."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def odata_time(moment: dt.datetime) -> str:
    """An OData filter literal: UTC with milliseconds, unquoted."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def review_status(state: Any) -> str | None:
    """The store's status for a ``reviewState`` (contract section 4): null and ``edited`` are
    unreviewed; a state Central may add later is None, which keeps the status the store held."""
    if state is None:
        return "unreviewed"
    return indicator.CENTRAL_REVIEW_STATUS.get(str(state))


def raw_submission(row: dict[str, Any]) -> RawSubmission:
    """An OData ``Submissions`` row as the sync needs it; the row itself is kept as sent."""
    submission_id = row.get("__id")
    system = row.get("__system")
    if not isinstance(submission_id, str) or not submission_id or not isinstance(system, Mapping):
        raise SourceError(
            f"An ODK Central row lacks __id or __system (keys: {', '.join(sorted(map(str, row))[:8])}): "
            "the [source] url does not serve Central's OData feed."
        )
    submitted = parse_time(system.get("submissionDate"))
    if submitted is None:
        raise SourceError(
            f"ODK Central sent submission {submission_id} without a readable __system/submissionDate "
            f"({system.get('submissionDate')!r})."
        )
    found = find_answers(row, [INSTANCE_ID, indicator.FORM_VERSION])
    return RawSubmission(
        submission_id=submission_id,
        version_id=str(found.get(INSTANCE_ID) or submission_id),
        review_status=review_status(system.get("reviewState")),
        submitted_at=submitted.strftime("%Y-%m-%dT%H:%M:%S"),
        form_version=str(found.get(indicator.FORM_VERSION) or system.get("formVersion") or ""),
        data=row,
    )


def changes_filter(since: dt.datetime | None) -> str:
    """``$filter`` for rows created or changed after ``since`` (minus the overlap); '' for all rows.

    ``updatedAt`` alone would miss new rows: it is null until a first edit or review.
    """
    if since is None:
        return ""
    stamp = odata_time(since - OVERLAP)
    return f"__system/submissionDate gt {stamp} or __system/updatedAt gt {stamp}"


def deletions_filter(since: dt.datetime | None) -> str:
    """``$filter`` for rows deleted after ``since``; any mention of deletedAt un-hides deleted rows."""
    if since is None:
        return "__system/deletedAt ne null"
    return f"__system/deletedAt gt {odata_time(since - OVERLAP)}"


def ids_filter(ids: list[str]) -> str:
    """``$filter`` selecting these ``__id``s (single quotes doubled, as OData escapes them)."""
    return " or ".join("__id eq '{}'".format(sid.replace("'", "''")) for sid in ids)


def restored_filter(ids: list[str]) -> str:
    """``$filter`` for those of these ids that are not deleted (any more) on Central."""
    return f"__system/deletedAt eq null and ({ids_filter(ids)})"


def path_segment(text: str) -> str:
    """Percent-encode like Central's decodeURIComponent expects (RFC 2396 leaves ``!*'()``)."""
    return quote(text, safe="!*'()")


# --- errors -------------------------------------------------------------------------------------


def problem_of(response: requests.Response | None) -> dict[str, Any]:
    """Central's problem body ``{"message", "code", "details"}``, or {} when the reply is not one."""
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def form_warnings(details: Any) -> list[str]:
    """Central's 400.16 warnings (XLSForm and workflow warnings) as readable lines."""
    warnings = details.get("warnings") if isinstance(details, Mapping) else None
    if isinstance(warnings, list):
        return [str(item) for item in warnings]
    if not isinstance(warnings, Mapping):
        return []
    lines = [str(item) for item in warnings.get("xlsFormWarnings") or []]
    for item in warnings.get("workflowWarnings") or []:
        if isinstance(item, Mapping):
            lines.append(f"{item.get('type')}: {item.get('details')}")
        else:
            lines.append(str(item))
    return lines


def central_error(
    exc: ServerError, response: requests.Response | None, *, what: str, login_hint: str
) -> ServerError:
    """One sentence for a failed Central call, with Central's numeric code and its message.

    ``login_hint`` names where the e-mail and password come from (for 401s); timeouts and
    connection failures (no response) keep the transport's own message.
    """
    if exc.status is None:
        return exc
    body = problem_of(response)
    code = body.get("code")
    message = str(body.get("message") or exc.detail or "").rstrip(".")
    said = f"error {code}: {message}" if code is not None else message
    status = exc.status
    if code == 400.16 or (status == 400 and form_warnings(body.get("details"))):
        warnings = "; ".join(form_warnings(body.get("details"))) or message
        sentence = (
            f"ODK Central refused {what} because of form warnings (error {code}): {warnings}. "
            "Fix the form, or deploy with --ignore-warnings to accept them."
        )
    elif code == 409.6:
        sentence = (
            f"ODK Central refused {what} ({said}): that version was published before; "
            "run 'kobo-tip form build' for a new version, then deploy again."
        )
    elif status == 401:
        sentence = f"ODK Central refused {what} (HTTP 401, {said}): check {login_hint}."
    elif status == 403:
        sentence = (
            f"ODK Central denied {what} (HTTP 403, {said}): give the account in {login_hint} "
            "a role on the project that allows it."
        )
    elif status == 404:
        sentence = (
            f"ODK Central answered 'not found' to the request for {what} (HTTP 404, {said}): "
            "check [source] url, project_id and form_id."
        )
    else:
        sentence = f"ODK Central answered HTTP {status} to {what} ({said or 'no message'})."
    return ServerError(sentence, status=status, url=exc.url, detail=body or exc.detail)


# --- the source ---------------------------------------------------------------------------------


@dataclass
class _Pass:
    """Progress of one changes pass: where it started (server time) and the newest stamp seen."""

    started: dt.datetime | None = None
    newest: dt.datetime | None = None

    def see(self, *stamps: dt.datetime | None) -> None:
        for stamp in stamps:
            if stamp is not None and (self.newest is None or stamp > self.newest):
                self.newest = stamp

    def next_watermark(self, previous: dt.datetime | None) -> dt.datetime | None:
        """Everything up to this has been pulled: the newest stamp seen, but never past the pass's
        start (pages are newest first, so a change made while paging can sit on a page already read)."""
        known = [stamp for stamp in (self.started, self.newest) if stamp is not None]
        return min(known) if known else previous


@dataclass
class CentralSource:
    """One form of one ODK Central project: its submissions, its deployment, the project's forms."""

    url: str
    project_id: int
    form_id: str
    username_env: str = CENTRAL_USERNAME_ENV
    password_env: str = CENTRAL_PASSWORD_ENV
    page_size: int = MAX_PAGE
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    retries: int = 5
    backoff: float = 0.5
    kind: str = field(default="odk_central", init=False)
    _session: requests.Session | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> CentralSource:
        source = settings.source
        assert source.project_id is not None  # config.py requires it for odk_central
        return cls(
            url=source.url.rstrip("/"),
            project_id=source.project_id,
            form_id=source.form_id or settings.form.form_id,
            username_env=source.username_env,
            password_env=source.password_env,
            page_size=min(source.page_size, MAX_PAGE),
        )

    def describe(self) -> str:
        return f"ODK Central {self.url}/ project {self.project_id} form {self.form_id}"

    # --- transport ----------------------------------------------------------------------------

    @property
    def login_hint(self) -> str:
        return f"the e-mail in {self.username_env} and the password in {self.password_env}"

    def _api(self, *parts: str | int) -> str:
        return f"{self.url}/v1/" + "/".join(path_segment(str(part)) for part in parts)

    def _form_url(self, *parts: str) -> str:
        return self._api("projects", self.project_id, "forms", self.form_id, *parts)

    def _odata_url(self) -> str:
        return self._api("projects", self.project_id, "forms", f"{self.form_id}.svc", "Submissions")

    def ready_to_deploy(self) -> None:
        read_secret(self.username_env, "the e-mail of the ODK Central account")
        read_secret(self.password_env, "the password of the ODK Central account")

    def _login(self) -> requests.Session:
        """POST /v1/sessions with the e-mail and password from the environment; a Bearer session."""
        email = read_secret(self.username_env, "the e-mail of the ODK Central account")
        password = read_secret(self.password_env, "the password of the ODK Central account")
        plain = new_session(self.url, timeout=self.timeout, retries=self.retries, backoff=self.backoff)
        body, _ = self._exchange(
            plain,
            "POST",
            self._api("sessions"),
            what=f"the login to {self.url}",
            json={"email": email, "password": password},
        )
        token = body.get("token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise SourceError(
                f"{self.url}/v1/sessions answered without a session token: is this ODK Central?"
            )
        self._session = new_session(
            self.url,
            token=token,
            token_scheme="Bearer",
            timeout=self.timeout,
            retries=self.retries,
            backoff=self.backoff,
        )
        return self._session

    def _exchange(
        self, session: requests.Session, method: str, url: str, *, what: str, raw: bool = False, **kwargs: Any
    ) -> tuple[Any, requests.Response]:
        """One call through kobo_tip.http: (JSON body or None, response), or with ``raw`` the body's
        bytes; errors in Central's words."""
        replies: list[requests.Response] = []

        def keep(response: requests.Response, **_: Any) -> None:  # requests passes its send options
            replies.append(response)  # Central's problem body and Date header live here

        body: Any
        try:
            if raw:
                body = request(session, method, url, what=what, hooks={"response": keep}, **kwargs).content
            elif method == "GET":
                body = get_json(session, url, what=what, hooks={"response": keep}, **kwargs)
            else:
                response = request(session, method, url, what=what, hooks={"response": keep}, **kwargs)
                body = response.json() if response.content else None
        except ServerError as exc:
            raise central_error(
                exc, replies[-1] if replies else None, what=what, login_hint=self.login_hint
            ) from None
        except ValueError:
            raise ServerError(
                f"ODK Central answered {what} with a body that is not JSON.", url=url, detail="invalid JSON"
            ) from None
        return body, replies[-1]

    def _call(self, method: str, url: str, *, what: str, **kwargs: Any) -> tuple[Any, requests.Response]:
        """An authenticated call; a 401 (the session expired during a long run) logs in again, once."""
        session = self._session or self._login()
        try:
            return self._exchange(session, method, url, what=what, **kwargs)
        except ServerError as exc:
            if exc.status != 401:
                raise
        log.info("ODK Central session expired; logging in again")
        return self._exchange(self._login(), method, url, what=what, **kwargs)

    def _get(self, url: str, *, what: str, **kwargs: Any) -> tuple[Any, requests.Response]:
        return self._call("GET", url, what=what, **kwargs)

    def _logout(self) -> None:
        """End the session on the server: an unused token would otherwise stay valid for a day."""
        if self._session is None:
            return
        session, self._session = self._session, None
        try:
            request(session, "DELETE", self._api("sessions", "current"), what="the logout")
        except ServerError as exc:  # the work is done; a failed logout must not hide its result
            log.debug("ODK Central logout failed: %s", exc)

    # --- OData paging ---------------------------------------------------------------------------

    def _query(self, **params: str) -> str:
        # %20 for spaces, and the OData punctuation left readable in logs and cursors.
        return urlencode(
            {key: value for key, value in params.items() if value}, safe="$*,'/:()", quote_via=quote
        )

    def _pages(
        self, query: str
    ) -> Iterator[tuple[list[dict[str, Any]], str, dt.datetime | None, int | None]]:
        """Follow ``@odata.nextLink`` to the end: (rows, query of the next page or '', server time,
        and on the first page the ``@odata.count`` of a query that asks for it).

        The link is rebased onto the configured url: Central builds it from its own domain
        setting, which need not be the address this machine reaches it by.
        """
        what = f"the submissions of form {self.form_id} in project {self.project_id}"
        first_page = True
        while True:
            page, response = self._get(f"{self._odata_url()}?{query}", what=what)
            if not isinstance(page, Mapping) or not isinstance(page.get("value"), list):
                raise SourceError(f"ODK Central sent {what} without an OData 'value' list.")
            count = page.get("@odata.count") if first_page else None
            if isinstance(count, int):
                log.info("ODK Central: %d rows to fetch for form %s", count, self.form_id)
            first_page = False
            next_link = page.get("@odata.nextLink")
            query = urlsplit(next_link).query if isinstance(next_link, str) and next_link else ""
            yield (
                list(page["value"]),
                query,
                _server_time(response),
                count if isinstance(count, int) else None,
            )
            if not query:
                return

    # --- sync -----------------------------------------------------------------------------------

    def batches(self, state: SyncState) -> Iterator[Batch]:
        """New and changed submissions page by page, then deletions and restores (or a full
        reconcile, which finds both, when due)."""
        seen: set[str] = set()
        try:
            yield from self._changes(state, seen)
            if state.reconcile_due:
                yield from self._reconcile(state, seen)
            else:
                yield from self._deletions(state)
                yield from self._restores(state)
        finally:
            self._logout()

    def _changes(self, state: SyncState, seen: set[str]) -> Iterator[Batch]:
        """Rows created or changed since the watermark; one batch per page.

        Pages come newest first, so the watermark only moves when the pass ends; until then each
        batch saves the next page's cursor, and a killed sync resumes from it.
        """
        since = None if state.full else parse_time(state.watermark(CHANGED))
        cursor = "" if state.full else state.watermark(CURSOR) or ""
        progress = _Pass(started=parse_time(state.watermark(PASS_STARTED)) if cursor else None)
        query = cursor or self._query(
            **{
                "$filter": changes_filter(since),
                "$expand": "*",
                "$count": "true",
                "$top": str(self.page_size),
            }
        )
        for rows, next_query, server_now, expected in self._pages(query):
            if progress.started is None:
                progress.started = server_now
            batch = Batch(fetched=len(rows), expected=expected)
            for row in rows:
                raw = raw_submission(row)
                system = row["__system"]
                progress.see(parse_time(system.get("submissionDate")), parse_time(system.get("updatedAt")))
                if raw.submission_id not in seen:
                    seen.add(raw.submission_id)
                    batch.submissions.append(raw)
            if next_query:
                batch.watermarks = {CURSOR: next_query, PASS_STARTED: _stamp(progress.started)}
            else:
                batch.watermarks = {
                    CURSOR: "",
                    PASS_STARTED: "",
                    CHANGED: _stamp(progress.next_watermark(since)),
                }
            yield batch

    def _deletions(self, state: SyncState) -> Iterator[Batch]:
        """Ids deleted since the last pass: Central hides them from every other query."""
        since = parse_time(state.watermark(DELETED))
        query = self._query(
            **{"$filter": deletions_filter(since), "$select": "__id,__system", "$top": str(self.page_size)}
        )
        progress = _Pass()
        for rows, next_query, server_now, _ in self._pages(query):
            progress.started = progress.started or server_now
            ids = [str(row.get("__id")) for row in rows if row.get("__id")]
            progress.see(*(parse_time((row.get("__system") or {}).get("deletedAt")) for row in rows))
            marks = {} if next_query else {DELETED: _stamp(progress.next_watermark(since))}
            yield Batch(deleted=ids, watermarks=marks, fetched=len(rows))

    def _restores(self, state: SyncState) -> Iterator[Batch]:
        """Submissions the store holds as deleted within the purge window that Central no longer
        holds as deleted: restored, with their full rows. One request per ``REFETCH_CHUNK`` such
        ids, none when there are none; the reply holds only the restored rows."""
        since = dt.datetime.now(dt.UTC).replace(microsecond=0) - RESTORE_WINDOW
        deleted = state.deleted_since(since.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if not deleted:
            return
        restored = self._fetch(deleted, restored_filter)
        if restored:
            log.info(
                "ODK Central: %d of the %d submissions deleted in the last %d days were restored",
                len(restored),
                len(deleted),
                RESTORE_WINDOW.days,
            )
        yield Batch(submissions=restored, fetched=len(restored))

    def _reconcile(self, state: SyncState, seen: set[str]) -> Iterator[Batch]:
        """Compare every id on Central with the store: deletions (also purged rows), review states,
        and rows the store lacks or holds in another version (restored after a deletion, or
        missed) are fetched again."""
        on_server: dict[str, tuple[Any, Any]] = {}  # __id -> (reviewState, meta/instanceID)
        started: dt.datetime | None = None
        select = f"__id,__system,meta/{INSTANCE_ID}"
        for rows, _, server_now, _ in self._pages(
            self._query(**{"$select": select, "$top": str(self.page_size)})
        ):
            started = started or server_now
            for row in rows:
                if row.get("__id"):
                    system, meta = row.get("__system") or {}, row.get("meta") or {}
                    on_server[str(row["__id"])] = (system.get("reviewState"), meta.get(INSTANCE_ID))
        known = state.known()
        batch = Batch(reconciled=True, fetched=len(on_server))
        batch.deleted = [sid for sid in known if sid not in on_server]
        stale = []
        for sid, (state_name, version) in on_server.items():
            if sid in seen:
                continue  # fetched by this run already
            if sid not in known or (version and version != known[sid].version_id):
                stale.append(sid)
                continue
            status = review_status(state_name)
            if status is not None and status != known[sid].review_status:
                batch.review_statuses[sid] = status
        batch.submissions = self._fetch(stale)
        if started is not None:
            batch.watermarks = {DELETED: _stamp(started)}
        log.info(
            "ODK Central reconcile: %d on the server, %d deleted, %d review changes, %d fetched again",
            len(on_server),
            len(batch.deleted),
            len(batch.review_statuses),
            len(batch.submissions),
        )
        yield batch

    def _fetch(self, ids: list[str], select: Callable[[list[str]], str] = ids_filter) -> list[RawSubmission]:
        """Full rows for these ids (those ``select``'s filter picks of them), a few per request."""
        found: list[RawSubmission] = []
        for start in range(0, len(ids), REFETCH_CHUNK):
            query = self._query(**{"$filter": select(ids[start : start + REFETCH_CHUNK]), "$expand": "*"})
            for rows, _, _, _ in self._pages(query):
                found.extend(raw_submission(row) for row in rows)
        return found

    # --- forms ----------------------------------------------------------------------------------

    def list_assets(self) -> list[dict[str, str]]:
        """The project's forms: uid (xmlFormId), name, deployment status (state), submission count."""
        try:
            forms, _ = self._get(
                self._api("projects", self.project_id, "forms"),
                what=f"the form list of project {self.project_id}",
                headers={"X-Extended-Metadata": "true"},
            )
        finally:
            self._logout()
        return [
            {
                "uid": str(item.get("xmlFormId", "")),
                "name": str(item.get("name") or ""),
                "deployment_status": str(item.get("state") or ""),
                "submission_count": "" if item.get("submissions") is None else str(item["submissions"]),
            }
            for item in forms or []
            if isinstance(item, Mapping)
        ]

    def deploy(self, form: FormFiles, *, ignore_warnings: bool = False) -> DeployResult:
        """Create the form as a draft (first time) or replace its draft, upload any attachments
        the draft expects, then publish it with the build's version (new on every build)."""
        try:
            return self._deploy(form, ignore_warnings)
        finally:
            self._logout()

    def _deploy(self, form: FormFiles, ignore_warnings: bool) -> DeployResult:
        """Upload the XForm the build wrote and validated (never the XLSX: Central would convert
        it with its own pyxform, through a converter the install must run, and the form
        enumerators fill would not be the one checked); publish only once Central serves the
        draft's XML byte for byte as built. The XML carries its version, so the publish names none
        (with ``?version=`` Central would rewrite the XML)."""
        if form.form_id != self.form_id:
            raise SourceError(
                f"The built form's id is {form.form_id} but [source] form_id is {self.form_id}: "
                "make them the same (or leave [source] form_id out)."
            )
        path = form.xml_path
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SourceError(
                f"Cannot read the built form {path} ({exc.strerror}): run 'kobo-tip form build'."
            ) from None
        headers = {"Content-Type": XFORM_TYPE}
        params = {"ignoreWarnings": "true"} if ignore_warnings else {}
        messages: list[str] = []
        what = f"form {self.form_id} in project {self.project_id}"
        if self._form_exists():
            self._call(
                "POST",
                self._form_url("draft"),
                what=f"the new draft of {what}",
                params=params,
                headers=headers,
                data=content,
            )
            messages.append(f"uploaded {path.name} as a new draft of {self.form_id}")
        else:
            self._call(
                "POST",
                self._api("projects", self.project_id, "forms"),
                what=f"the creation of {what}",
                params=params,
                headers=headers,
                data=content,
            )
            messages.append(f"created form {self.form_id} in ODK Central project {self.project_id}")
        self._check_draft(content, path)
        messages.extend(self._upload_attachments(form))
        self._call(
            "POST", self._form_url("draft", "publish"), what=f"publishing version {form.version} of {what}"
        )
        details, _ = self._get(self._form_url(), what=what)
        enketo_id = details.get("enketoId") if isinstance(details, Mapping) else None
        return DeployResult(
            uid=self.form_id,
            version=str((details or {}).get("version") or form.version),
            url=f"{self.url}/#/projects/{self.project_id}/forms/{path_segment(self.form_id)}",
            enketo_url=f"{self.url}/-/{enketo_id}" if enketo_id else "",
            messages=tuple(messages),
        )

    def _check_draft(self, built: bytes, path: Path) -> None:
        """Refuse to publish a draft whose XForm is not the one built (Central changes it only to
        add a managed-encryption key, and kobo-tip cannot read encrypted submissions anyway)."""
        served, _ = self._call(
            "GET", self._form_url("draft.xml"), what=f"the draft XForm of {self.form_id}", raw=True
        )
        if served != built:
            raise SourceError(
                f"ODK Central serves the draft of {self.form_id} with another XForm than {path}, so it "
                "was not published; Central changes a form when the project uses managed encryption, "
                "whose submissions kobo-tip cannot read: deploy to a project without it."
            )

    def _form_exists(self) -> bool:
        try:
            self._get(self._form_url(), what=f"form {self.form_id} in project {self.project_id}")
        except ServerError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _upload_attachments(self, form: FormFiles) -> list[str]:
        """Upload every file the draft expects that Central does not have, from the form's folder."""
        expected, _ = self._get(
            self._form_url("draft", "attachments"), what=f"the attachments of {self.form_id}"
        )
        uploaded = []
        for item in expected or []:
            name = str(item.get("name", ""))
            if not name or item.get("exists") or item.get("datasetExists"):
                continue  # Central attached it itself (itemsets.csv, entity lists)
            local = form.xml_path.parent / name
            if not local.is_file():
                raise SourceError(
                    f"Form {self.form_id} needs the attachment {name}: put it in {local.parent} "
                    "and deploy again."
                )
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self._call(
                "POST",
                self._form_url("draft", "attachments", name),
                what=f"attachment {name}",
                headers={"Content-Type": content_type},
                data=local.read_bytes(),
            )
            uploaded.append(f"uploaded attachment {name}")
        return uploaded


def _server_time(response: requests.Response) -> dt.datetime | None:
    """The server's clock from the Date header (None when absent or garbled)."""
    try:
        moment = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _stamp(moment: dt.datetime | None) -> str:
    return odata_time(moment) if moment is not None else ""
