"""KoboToolbox (KPI API v2): keyset-paged incremental sync, reconcile pass, asset list, form deploy,
and the REST Service (hook) that pushes new submissions to ``kobo-tip serve``.

Facts this module relies on (reference kobo-api.md, sections 3, 4 and 6): ``_id`` never changes and
is never reused, ``_uuid`` changes on every edit, deletions are hard (no tombstone), the data
endpoint caps pages at 1000 rows and only ``start``/``limit``/``query``/``sort``/``fields`` reach
the database, an import is asynchronous and must be polled, and a hook's ``settings`` (which hold
its password or header token) come back in every hook object the server sends.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import itertools
import json
import logging
import operator
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import requests

from kobo_tip import indicator
from kobo_tip.answers import field_name
from kobo_tip.config import KOBO_TOKEN_ENV, read_secret
from kobo_tip.errors import ConfigError, ServerError, SourceError
from kobo_tip.http import ServerTimeout, get_json, new_session, request
from kobo_tip.sources.base import Batch, DeployResult, FormFiles, RawSubmission, SyncState

if TYPE_CHECKING:
    from kobo_tip.config import HookCredentials, ServeSettings, Settings

T = TypeVar("T")
log = logging.getLogger(__name__)

WATERMARK = "kobo_last_id"
MAX_PAGE = 1000
MIN_PAGE = 10  # below this a timeout is the server's fault, not the page size's
RECONCILE_FIELDS = ("_id", "_uuid", "_validation_status")
REFETCH_CHUNK = 200  # ids per `$in` query: keeps the URL well under proxies' limits
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 150.0)
IMPORT_WAIT_SECONDS = 300.0
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NO_ASSET_UID = (
    "[source] asset_uid is empty: run 'kobo-tip form deploy --save-uid' or copy the uid "
    "from the project's URL in KoboToolbox."
)
HOOK_NAME = "kobo-tip"  # the REST Service kobo-tip registers, found again by this name
HOOK_PATH = "/hooks/kobo/"  # where kobo-tip serve receives an asset's pushes: HOOK_PATH + asset uid
HOOK_LOG_FAILED = 0  # HookLog.status: 0 failed, 1 pending, 2 success, 3 processing (kobo-api.md 6)


@dataclass(frozen=True)
class Hook:
    """A REST Service of the asset, as ``/hooks/`` lists it; its ``settings`` (secrets) are not kept."""

    uid: str
    name: str
    endpoint: str
    active: bool
    auth_level: str  # no_auth | basic_auth
    success_count: int
    failed_count: int
    pending_count: int
    # The password and header values of its settings, in their quoted forms: kept only to blank
    # them out of the hook's failure messages, never shown.
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class HookFailure:
    """A failed push of one submission, from the hook's logs (the receiver's answer in ``message``)."""

    submission_id: str
    status_code: int | None
    message: str
    date_modified: str
    tries: int


def review_status(row: Mapping[str, Any]) -> str:
    """The store's review status of a Kobo row: ``_validation_status.uid`` mapped; ``{}`` is unreviewed."""
    status = row.get("_validation_status")
    uid = status.get("uid") if isinstance(status, Mapping) else None
    return indicator.KOBO_REVIEW_STATUS.get(uid or "", "unreviewed")


def raw_submission(row: dict[str, Any]) -> RawSubmission:
    """A data-endpoint row as the sync needs it; the row itself is kept exactly as sent."""
    try:
        submission_id = str(kobo_id(row["_id"]))
        version_id = str(row["_uuid"])
    except (KeyError, TypeError, ValueError):
        raise SourceError(
            f"A Kobo submission lacks a valid _id or _uuid (keys: {', '.join(sorted(row)[:8])}): "
            "the server is not a KoboToolbox data endpoint."
        ) from None
    form_version = row.get(indicator.FORM_VERSION) or next(
        (value for key, value in row.items() if field_name(key) == indicator.FORM_VERSION and value), None
    )
    submitted_at = row.get("_submission_time")
    return RawSubmission(  # positional: a sync makes one per row
        submission_id,
        version_id,
        review_status(row),
        # Stored as naive UTC 'YYYY-MM-DDTHH:MM:SS'; some servers add a fraction or a 'Z'.
        submitted_at[:19] if type(submitted_at) is str else str(submitted_at or "")[:19],
        form_version if type(form_version) is str else str(form_version or row.get("__version__") or ""),
        row,
    )


@dataclass
class KoboSource:
    """A KoboToolbox asset: its submissions, its deployment, and the account's other surveys."""

    url: str
    asset_uid: str
    token_env: str = KOBO_TOKEN_ENV
    page_size: int = MAX_PAGE
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    retries: int = 5
    backoff: float = 0.5
    import_wait: float = IMPORT_WAIT_SECONDS
    kind: str = field(default="kobo", init=False)
    _session: requests.Session | None = field(default=None, init=False, repr=False)
    _http: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> KoboSource:
        source = settings.source
        return cls(
            url=source.url.rstrip("/"),
            asset_uid=source.asset_uid,
            token_env=source.token_env,
            page_size=min(source.page_size, MAX_PAGE),
            timeout=DEFAULT_TIMEOUT,
        )

    def describe(self) -> str:
        return f"KoboToolbox {self.url}/ asset {self.asset_uid or '(none yet)'}"

    def ready_to_deploy(self) -> None:
        _ = self.session  # reads the token

    # --- transport ---------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """The HTTP session; the token is read from the environment on first use only."""
        if self._session is None:
            token = read_secret(self.token_env, "the KoboToolbox API token (Account settings > Security)")
            self._session = new_session(
                self.url,
                token=token,
                timeout=self.timeout,
                retries=self.retries,
                backoff=self.backoff,
                token_name=self.token_env,
            )
        return self._session

    def _api(self, *parts: str) -> str:
        """An API v2 URL; always with the trailing slash (Django's redirect would drop POST bodies)."""
        path = "/".join(quote(part, safe="") for part in parts)
        return f"{self.url}/api/v2/{path}/"

    def _asset_url(self) -> str:
        if not self.asset_uid:
            raise ConfigError(NO_ASSET_UID)
        return self._api("assets", self.asset_uid)

    def _what(self) -> str:
        return f"asset {self.asset_uid} on {self.url}"

    # --- submissions -------------------------------------------------------------------------

    def _data_page(
        self, query: Mapping[str, Any], *, fields: tuple[str, ...] = (), limit: int | None = None
    ) -> dict[str, Any]:
        """One page of ``/data/`` in ``_id`` order; halves the page size while the server times out."""
        while True:
            size = limit or self.page_size
            params = {
                "query": json.dumps(query, separators=(",", ":")),
                "sort": '{"_id":1}',
                "limit": str(size),
            }
            if fields:
                params["fields"] = json.dumps(list(fields), separators=(",", ":"))
            url = self._asset_url() + "data/"
            try:
                with self._http:  # a refetch and the next page's prefetch share one session
                    page = get_json(self.session, url, params=params, what=self._what())
            except ServerError as exc:
                timed_out = isinstance(exc, ServerTimeout) or exc.status == 504
                if not timed_out or size // 2 < MIN_PAGE or limit is not None:
                    raise
                self.page_size = size // 2
                log.info("The server timed out on %d rows; asking for %d per page.", size, self.page_size)
                continue
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                raise SourceError(
                    f"The data endpoint of {self._what()} did not send a results list: "
                    "check [source] url points at the KoboToolbox server (the kf. address)."
                )
            return page

    def _pages(
        self, *, after: int, fields: tuple[str, ...] = ()
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Pages of rows with ``_id > after``, in ``_id`` order, until the server has no more; each
        with the rows the server counted for the query on the first page (None after).

        Keyset paging: each request asks for ``_id`` above the last one received, so rows arriving
        or vanishing while paging can neither shift a page nor be read twice.
        """
        announced: int | None = None
        received = 0
        last = after
        for page in _ReadAhead(self._server_pages(after, fields)):
            rows = page["results"]
            count = page.get("count")
            if announced is None and isinstance(count, int):
                announced = count
            if not rows:
                break
            ids = _row_ids(rows)
            if ids[0] <= last or not all(map(operator.lt, ids, itertools.islice(ids, 1, None))):
                raise SourceError(
                    f"{self._what()} returned rows out of _id order: the server ignores the "
                    "query/sort parameters and cannot be synced safely."
                )
            last = ids[-1]
            yield rows, announced if received == 0 else None
            received += len(rows)
        if announced is not None and received < announced:
            log.info(
                "Received %d rows where the server first counted %d (rows deleted while paging).",
                received,
                announced,
            )

    def _server_pages(self, after: int, fields: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """The data pages as the server sends them, each asked for with the last ``_id`` of the one before."""
        last = after
        while True:
            page = self._data_page({"_id": {"$gt": last}}, fields=fields)
            yield page
            rows = page["results"]
            # The last page: no `next`, and the page holds all the rows the server counted for it.
            if not rows or (page.get("next") is None and page.get("count") == len(rows)):
                return
            last = _row_id(rows[-1])

    def batches(self, state: SyncState) -> Iterator[Batch]:
        """New submissions after the ``_id`` watermark, one batch per page; then a reconcile pass if due.

        A first pull into an empty store that completes is itself a reconcile: it read every row.
        """
        mark = state.watermark(WATERMARK)
        first_pull = mark is None and not state.known()
        last = int(mark) if mark else 0
        for rows, expected in self._pages(after=last):
            last = _row_id(rows[-1])
            yield Batch(
                submissions=[raw_submission(row) for row in rows],
                watermarks={WATERMARK: str(last)},
                fetched=len(rows),
                expected=expected,
            )
        if first_pull:
            yield Batch(reconciled=True)
        elif state.reconcile_due or mark is None:
            yield from self._reconcile(state, last)

    def _reconcile(self, state: SyncState, last: int) -> Iterator[Batch]:
        """Compare ``_uuid`` and review status of every server row with the store's copy.

        Edited rows (new ``_uuid``) and rows the store lacks are re-fetched whole; status-only changes
        travel as review statuses; store rows absent from the complete scan are deletions.
        """
        known = state.known()
        seen: set[str] = set()
        for rows, expected in self._pages(after=0, fields=RECONCILE_FIELDS):
            refetch: list[int] = []
            statuses: dict[str, str] = {}
            for row in rows:
                submission_id = str(_row_id(row))
                seen.add(submission_id)
                stored = known.get(submission_id)
                if stored is None or stored.version_id != row.get("_uuid"):
                    refetch.append(_row_id(row))
                elif (status := review_status(row)) != stored.review_status:
                    statuses[submission_id] = status
            # Every server row up to this page's end is now in the store: the watermark may follow.
            last = max(last, _row_id(rows[-1]))
            yield Batch(
                submissions=self._fetch_ids(refetch),
                review_statuses=statuses,
                watermarks={WATERMARK: str(last)},
                fetched=len(rows),
                expected=expected,
            )
        deleted = sorted((sid for sid in known if sid not in seen), key=int)
        yield Batch(deleted=deleted, reconciled=True)

    def _fetch_ids(self, ids: list[int]) -> list[RawSubmission]:
        """Whole rows for ``ids`` (edited or missing), in ``$in`` chunks; ids gone meanwhile are skipped."""
        found: list[RawSubmission] = []
        for start in range(0, len(ids), REFETCH_CHUNK):
            chunk = ids[start : start + REFETCH_CHUNK]
            page = self._data_page({"_id": {"$in": chunk}}, limit=len(chunk))
            found.extend(raw_submission(row) for row in page["results"])
        return found

    # --- assets ------------------------------------------------------------------------------

    def list_assets(self) -> list[dict[str, str]]:
        """The account's survey assets: uid, name, deployment status, submission count."""
        # `q=asset_type:survey`: a plain `asset_type=` parameter is ignored by KPI (kobo-api.md 2.1).
        url = self._api("assets") + "?" + "q=asset_type%3Asurvey&limit=100"
        assets: list[dict[str, str]] = []
        for item in self._paged(url, f"the asset list on {self.url}"):
            if item.get("asset_type", "survey") != "survey":
                continue
            count = item.get("deployment__submission_count")
            assets.append(
                {
                    "uid": str(item.get("uid", "")),
                    "name": str(item.get("name", "")),
                    "deployment_status": str(item.get("deployment_status") or "draft"),
                    "submission_count": "" if count is None else str(count),
                }
            )
        return assets

    def _paged(self, url: str, what: str) -> Iterator[dict[str, Any]]:
        """The items of a paged list (``results``, then the ``next`` page until there is none).

        Each ``next`` goes through the session, which refuses one on another origin before sending
        anything; a ``next`` seen before would page forever, so it ends the list with an error.
        """
        seen: set[str] = set()
        page_url: str | None = url
        while page_url:
            if page_url in seen:
                raise SourceError(f"{what} sent the same next page twice: the server is paging in a loop.")
            seen.add(page_url)
            page = get_json(self.session, page_url, what=what)
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise SourceError(
                    f"{what} is not a paged list: check [source] url points at the KoboToolbox "
                    "server (the kf. address)."
                )
            yield from (item for item in results if isinstance(item, dict))
            following = page.get("next")
            page_url = following if isinstance(following, str) and following else None

    # --- REST Services (hooks) -----------------------------------------------------------------

    def hook_endpoint(self, public_url: str) -> str:
        """The URL Kobo pushes this asset's submissions to: ``public_url`` (where ``kobo-tip serve``
        is reachable) plus ``/hooks/kobo/<asset_uid>``; a URL unfit for credentials is a ConfigError."""
        return hook_endpoint(public_url, self.asset_uid)

    def _hooks_url(self, *parts: str) -> str:
        return self._asset_url() + "".join(quote(part, safe="") + "/" for part in ("hooks", *parts))

    def hooks(self) -> list[Hook]:
        """The asset's REST Services, every page of them."""
        return [
            _hook(item) for item in self._paged(self._hooks_url(), f"the REST Services of {self._what()}")
        ]

    def register_hook(
        self, endpoint: str, credentials: HookCredentials, *, name: str = HOOK_NAME
    ) -> tuple[Hook, bool]:
        """Create the REST Service pushing to ``endpoint`` with ``credentials``, or update the one
        already named ``name`` or pushing to ``endpoint`` (a second one would push every submission
        twice); returns it and whether it was created. Errors never hold the credentials."""
        if credentials.kind == "basic":
            auth_level = "basic_auth"
            settings: dict[str, Any] = {"username": credentials.username, "password": credentials.password}
        else:
            auth_level = "no_auth"  # the header is the authentication; basic auth would add a second
            settings = {"custom_headers": {credentials.header: credentials.token}}
        body = {
            "name": name,
            "endpoint": endpoint,
            "active": True,
            "export_type": "json",
            "auth_level": auth_level,
            "settings": settings,  # replaces the stored settings whole: no old password stays behind
            "email_notification": True,
        }
        secrets = [credentials.password, credentials.token]
        existing = self.hooks()
        # The same endpoint first (one typed in Kobo's form may end in a slash): renaming that one
        # leaves no second hook pushing to kobo-tip.
        same = [h for h in existing if h.endpoint.rstrip("/") == endpoint.rstrip("/")]
        matches = same + [h for h in existing if h.name == name and h not in same]
        if len(matches) > 1:
            log.warning(
                "REST Services %s of %s also push to kobo-tip or are named '%s': delete them in "
                "KoboToolbox (Project > Settings > REST Services) or each submission arrives twice.",
                ", ".join(h.uid for h in matches[1:]),
                self._what(),
                name,
            )
        if matches:
            response = self._hook_call("PATCH", self._hooks_url(matches[0].uid), body, secrets)
            sent = _json_object(response)
            return _hook({"uid": matches[0].uid, **body, **sent}), False
        response = self._hook_call("POST", self._hooks_url(), body, secrets)
        sent = _json_object(response)
        if not sent.get("uid"):
            raise SourceError(
                f"{self._what()} accepted the REST Service but did not answer with it (no uid): "
                "the server is not a KoboToolbox API v2; check [source] url."
            )
        return _hook({**body, **sent}), True

    def _hook_call(
        self, method: str, url: str, body: dict[str, Any], secrets: list[str]
    ) -> requests.Response:
        """Send the hook ``body``; a refusal is shown in Kobo's words, with the ``secrets`` blanked
        out (a validation error may quote a field back)."""
        try:
            return request(self.session, method, url, json=body, what=self._what())
        except ServerError as exc:
            detail = _blank(str(exc.detail or ""), secrets)
            if exc.status == 400 and detail:
                message = f"KoboToolbox refused the REST Service for {self._what()} (400): {detail}"
            else:
                message = _blank(exc.message, secrets)
            # The same class (a timeout stays a ServerTimeout), the words without the secrets.
            raise type(exc)(message, status=exc.status, url=exc.url, detail=detail) from None

    def hook_failures(self, hook: Hook, limit: int = 5, secrets: Sequence[str] = ()) -> list[HookFailure]:
        """The ``limit`` newest failed pushes of ``hook`` (one log per hook and submission), their
        messages with ``secrets`` and anything shaped like a credential blanked out: a message
        quotes the receiver's answer, or an error naming the endpoint with its password."""
        # KPI orders logs newest first (-date_created) and pages them by start/limit: one page.
        url = self._hooks_url(hook.uid, "logs") + f"?status={HOOK_LOG_FAILED}&limit={int(limit)}"
        page = get_json(self.session, url, what=f"the REST Service logs of {self._what()}")
        results = page.get("results") if isinstance(page, dict) else None
        if not isinstance(results, list):
            raise SourceError(f"The REST Service logs of {self._what()} are not a paged list.")
        failures = [_hook_failure(item, secrets) for item in results if isinstance(item, dict)]
        # A retry moves date_modified on: the newest attempt first, whatever order the server kept.
        failures.sort(key=lambda failure: failure.date_modified, reverse=True)
        return failures[:limit]

    # --- deploy ------------------------------------------------------------------------------

    def deploy(self, form: FormFiles, *, ignore_warnings: bool = False) -> DeployResult:
        """Import the XLSForm (replacing the configured asset, if any), then deploy it.

        KPI reports no warnings of its own (pyxform's are handled when the form is built), so
        ``ignore_warnings`` changes nothing here.
        """
        uid = self._import(form)
        asset = get_json(self.session, self._api("assets", uid), what=f"asset {uid} on {self.url}")
        version_id = str(asset.get("version_id") or "")
        deployment_url = self._api("assets", uid, "deployment")
        if asset.get("has_deployment"):
            body: dict[str, Any] = {"active": True, "version_id": version_id}
            response = self._deploy_call("PATCH", deployment_url, body, uid)
        else:
            response = self._deploy_call("POST", deployment_url, {"active": True}, uid)
        deployed = _json_object(response)
        asset = deployed.get("asset") or get_json(
            self.session, self._api("assets", uid), what=f"asset {uid} on {self.url}"
        )
        links = asset.get("deployment__links") or {}
        return DeployResult(
            uid=uid,
            version=str(deployed.get("version_id") or asset.get("deployed_version_id") or version_id),
            url=self._api("assets", uid),
            enketo_url=str(links.get("offline_url") or links.get("url") or ""),
        )

    def _import(self, form: FormFiles) -> str:
        """POST the XLSForm to /imports/ and wait for it; returns the asset uid it created or updated."""
        data = {"library": "false"}  # a missing `library` means True: the form would land in the library
        if self.asset_uid:
            data["destination"] = self._asset_url()
        try:
            content = form.xlsx_path.read_bytes()
        except OSError as exc:
            raise SourceError(
                f"Cannot read the built form {form.xlsx_path} ({exc.strerror}): run 'kobo-tip form build'."
            ) from None
        response = request(
            self.session,
            "POST",
            self._api("imports"),
            what=self._what() if self.asset_uid else f"the imports endpoint of {self.url}",
            data=data,
            files={"file": (form.xlsx_path.name, content, XLSX_MIME)},
        )
        task = _json_object(response)
        status_url = str(task.get("url") or self._api("imports", str(task.get("uid", ""))))
        deadline = time.monotonic() + self.import_wait
        pause = 0.5
        while task.get("status") not in ("complete", "error"):
            if time.monotonic() > deadline:
                raise ServerError(
                    f"The form import on {self.url} was still '{task.get('status')}' after "
                    f"{self.import_wait:.0f} s: check the project list in KoboToolbox, then deploy again.",
                    url=status_url,
                    detail=task,
                )
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
            task = get_json(self.session, status_url, what=f"the form import on {self.url}")
        messages = task.get("messages") or {}
        if task["status"] == "error":
            error = messages.get("error") or json.dumps(messages)
            kind = messages.get("error_type")
            raise ServerError(
                f"KoboToolbox rejected the form import: {f'{kind}: ' if kind else ''}{error}",
                url=status_url,
                detail=messages,
            )
        for key in ("updated", "created"):
            for item in messages.get(key) or []:
                if item.get("uid"):
                    return str(item["uid"])
        if self.asset_uid:
            return self.asset_uid
        raise ServerError(
            f"The form import on {self.url} completed without naming the asset it created.",
            url=status_url,
            detail=messages,
        )

    def _deploy_call(self, method: str, url: str, body: dict[str, Any], uid: str) -> requests.Response:
        try:
            return request(self.session, method, url, json=body, what=f"asset {uid} on {self.url}")
        except ServerError as exc:
            if exc.status in (400, 405, 500) and exc.detail:
                # Kobo's own words (an invalid form surfaces here): verbatim, nothing added inside.
                raise ServerError(
                    f"KoboToolbox could not deploy asset {uid}: {exc.detail}",
                    status=exc.status,
                    url=exc.url,
                    detail=exc.detail,
                ) from None
            raise


def hook_endpoint(public_url: str, asset_uid: str) -> str:
    """``public_url`` (https, no user name, password, query or fragment) + ``/hooks/kobo/<asset_uid>``.

    Kobo sends the hook's password or token with every push: over plain http it would cross the
    internet readable, so only https is taken (KPI's SSRF guard refuses private addresses anyway,
    so a local http receiver could not be reached either).
    """
    try:
        parts = urlsplit(public_url.strip())
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ConfigError("--url is not a valid URL: give the https:// address of kobo-tip serve.") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ConfigError(
            "--url must be an https:// address: Kobo sends the hook's credentials with every "
            "submission, and over http they would cross the internet in clear (put kobo-tip serve "
            "behind a TLS proxy and give its address)."
        )
    if parts.username is not None or parts.password is not None:
        # Not echoed: the URL holds a password.
        raise ConfigError(
            "--url holds a user name or password: give the bare address; the hook's credentials "
            "come from the environment variables of [serve]."
        )
    if parts.query or parts.fragment or "?" in public_url or "#" in public_url:
        raise ConfigError(
            "--url has a query or fragment: give the base address of kobo-tip serve only "
            f"(kobo-tip adds {HOOK_PATH}<asset uid>)."
        )
    if not asset_uid:
        raise ConfigError(NO_ASSET_UID)
    if _private_host(parts.hostname):
        log.warning(
            "%s is a private or loopback address: KoboToolbox's servers refuse to push there (SSRF "
            "protection); give the public address of the TLS proxy unless your own server allows it.",
            parts.hostname,
        )
    return public_url.strip().rstrip("/") + HOOK_PATH + quote(asset_uid, safe="")


def _private_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or an IP literal Kobo's SSRF guard blocks by default."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: only Kobo's resolver can tell
    return not address.is_global


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _hook(item: Mapping[str, Any]) -> Hook:
    """A hook object of the API; of its ``settings``, only the secrets to blank out."""
    settings = item.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    headers = settings.get("custom_headers")
    tokens = [str(value) for value in headers.values()] if isinstance(headers, dict) else []
    username, password = str(settings.get("username") or ""), str(settings.get("password") or "")
    return Hook(
        secrets=tuple(secret_forms(username, password, tokens)),
        uid=str(item.get("uid") or ""),
        name=str(item.get("name") or ""),
        endpoint=str(item.get("endpoint") or ""),
        active=item.get("active") is True,
        auth_level=str(item.get("auth_level") or "no_auth"),
        success_count=_count(item.get("success_count")),
        failed_count=_count(item.get("failed_count")),
        pending_count=_count(item.get("pending_count")),
    )


def _hook_failure(item: Mapping[str, Any], secrets: Sequence[str]) -> HookFailure:
    code = item.get("status_code")
    return HookFailure(
        submission_id=str(item.get("submission_id") or ""),
        status_code=code if type(code) is int else None,
        message=blank_credentials(str(item.get("message") or ""), secrets),
        date_modified=str(item.get("date_modified") or ""),
        tries=_count(item.get("tries")),
    )


def _blank(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# Credentials by their shape, whoever's they are: a URL's user:password@, an Authorization value,
# a password= or "token": field.
_CREDENTIAL_SHAPES = (
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^/\s@]*@"), r"\1:***@"),
    # A value after an auth scheme: 8 characters or more with a digit or a base64 sign, or 24 or
    # more ("Basic authentication required" keeps its words).
    (
        re.compile(
            r"(?i)\b(basic|bearer|token|digest)(\s+)"
            r"(?:(?=[\w+/=.~-]*[0-9+/=])[\w+/=.~-]{8,}|[\w+/=.~-]{24,})"
        ),
        r"\1\2***",
    ),
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|pwd|token|secret|api_?key)[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;&}]+"
        ),
        r"\1***",
    ),
)


def blank_credentials(text: str, secrets: Sequence[str]) -> str:
    """``text`` with each of ``secrets`` and anything shaped like a credential as ``***``."""
    text = _blank(text, sorted(secrets, key=len, reverse=True))
    for shape, replacement in _CREDENTIAL_SHAPES:
        text = shape.sub(replacement, text)
    return text


def hook_secrets(serve: ServeSettings) -> list[str]:
    """The hook's password and header token from the environment (those set), in every form a
    receiver or a proxy may quote them in (``secret_forms``)."""
    return secret_forms(
        os.environ.get(serve.hook_username_env, ""),
        os.environ.get(serve.hook_password_env, ""),
        [os.environ.get(serve.hook_header_env, "")],
    )


def secret_forms(username: str, password: str, tokens: Sequence[str]) -> list[str]:
    """A password and tokens as set, URL-encoded, and the password in basic auth's base64."""
    values = [value for value in (password, *tokens) if value]
    forms = [form for value in values for form in (value, quote(value, safe=""), quote_plus(value))]
    if password:
        forms.append(base64.b64encode(f"{username}:{password}".encode()).decode("ascii"))
    return sorted(set(forms), key=len, reverse=True)


class _ReadAhead(Generic[T]):
    """Iterates ``items`` in a thread of its own, ``depth`` items ahead of the caller.

    For data pages: the next page is requested, received and parsed while the caller stores
    this one, so neither the server's time nor the parse waits for the other. Errors arrive in
    order, after the items before them. A daemon thread: an interrupted sync exits without
    waiting for the request in flight; a caller that stops early stops it after that request.
    """

    def __init__(self, items: Iterator[T], depth: int = 1) -> None:
        self._queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(depth)
        self._stop = threading.Event()
        threading.Thread(target=self._run, args=(items,), name="kobo-tip-pages", daemon=True).start()

    def _run(self, items: Iterator[T]) -> None:
        try:
            while not self._stop.is_set():
                item = next(items, _END)
                self._queue.put((item, None))
                if item is _END:
                    return
        except BaseException as exc:  # handed to the caller's thread
            self._queue.put((None, exc))

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item, error = self._queue.get()
                if error is not None:
                    raise error
                if item is _END:
                    return
                yield item
        finally:
            self._stop.set()
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()  # frees a put the thread may be waiting in


_END = object()


def _json_object(response: requests.Response) -> dict[str, Any]:
    """The JSON object of a success response; an empty or non-object body gives ``{}``."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _row_ids(rows: list[Any]) -> list[int]:
    """The ``_id`` of each row, read in C; the first row without a valid one raises the SourceError."""
    try:
        ids = list(map(_ID, rows))
    except (KeyError, TypeError):
        return [_row_id(row) for row in rows]
    # The common case checked in C: every id an int (not a bool, a subclass) within range.
    if ids and set(map(type, ids)) == {int} and min(ids) >= 1 and max(ids) <= MAX_KOBO_ID:
        return ids
    return [_row_id(row) for row in rows]


_ID = operator.itemgetter("_id")
MAX_KOBO_ID = 2**63 - 1  # a PostgreSQL bigint, as kpi's own primary keys are
_DECIMAL = re.compile(r"[1-9][0-9]{0,18}")  # ASCII digits, no leading zero: one text per id


def kobo_id(value: Any) -> int:
    """A submission's ``_id``: a JSON integer from 1 to 2**63 - 1, or that integer's ASCII decimal
    text; anything else (a bool, a float, Infinity, Arabic-Indic or full-width digits) is a
    ValueError. ``int()`` alone would take ``true`` as 1, ``3.9`` as 3 and ``"١٢"`` as 12, and so
    lay a hostile submission over another's row."""
    if type(value) is int:
        number = value
    elif type(value) is str and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise ValueError("not a submission _id")
    if not 1 <= number <= MAX_KOBO_ID:
        raise ValueError("a submission _id out of range")
    return number


def _row_id(row: Mapping[str, Any]) -> int:
    try:
        return kobo_id(row["_id"])
    except (KeyError, TypeError, ValueError):
        raise SourceError(
            "A row from the Kobo data endpoint has no valid _id (a whole number from 1 to 2**63 - 1): "
            "the server is not a KoboToolbox data endpoint, or the [source] url is wrong."
        ) from None
