"""One HTTP session factory for every server kobo-tip talks to, and one way to turn failures into errors.

A session belongs to one origin (scheme, host and port: the configured server). Every request it
makes, to a URL kobo-tip built or to one the server sent (a ``next`` page, an import's ``url``, an
OData ``nextLink``), is checked against that origin before anything is sent, so a credential goes
there only; a URL of another origin is an error that names it. Redirects are followed by the
session itself, within the origin and for GET and HEAD only: a redirected POST (which may carry a
password) is an error, never re-sent.

Transient faults (connection errors, read timeouts, 429, 502/503/504, and 500 on GET) are retried
by urllib3 with exponential backoff, honouring ``Retry-After``. Only idempotent methods are retried
on a response or a read error: a repeated POST could create a second import on the server.
A body that breaks off mid-way or is not valid JSON is re-requested by :func:`get_json`.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from kobo_tip import __version__
from kobo_tip.errors import ServerError

log = logging.getLogger(__name__)
USER_AGENT = f"kobo-tip/{__version__}"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A server asking for a longer pause than this is treated as down rather than waited for.
MAX_RETRY_AFTER = 120.0
# Query parameters that can carry a credential (Central's "st" session token among them).
_SECRET_PARAMS = ("token", "key", "secret", "password", "passwd", "auth", "signature", "sig", "st")
_BODY_ATTEMPTS = 3
# requests reads a body in 10 KiB pieces, each a pass through urllib3's reader; a data page of a
# megabyte then costs the sync's worker about a tenth more CPU than read in pieces of this size.
_BODY_PIECE = 1 << 20
_MAX_REDIRECTS = 10
_FOLLOWED = frozenset({"GET", "HEAD"})  # the only methods whose redirects are followed


class ServerTimeout(ServerError):
    """The server did not answer within the read timeout, even after the retries."""


class _Retry(Retry):
    """urllib3 Retry that retries 500 only on GET, caps ``Retry-After`` and says each retry
    (what failed, the attempt, the wait) in a warning: a sync that waits is never silent."""

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: urllib3.BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        new = super().increment(method, url, response, error, _pool, _stacktrace)  # raises when spent
        attempt = len(new.history)
        wait = new.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = new.get_backoff_time()
        where = url or ""
        if _pool is not None:
            where = f"{_pool.scheme}://{_pool.host}:{_pool.port}{where}"
        cause = f"answered {response.status}" if response is not None else _cause(error)
        limit = attempt + new.total if isinstance(new.total, int) else attempt
        say_retry(method or "", where, cause, attempt, limit, wait=wait)
        return new

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 500 and method.upper() not in ("GET", "HEAD"):
            return False
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response: urllib3.BaseHTTPResponse) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def say_retry(method: str, url: str, cause: str, attempt: int, limit: int, *, wait: float) -> None:
    """The warning of one retry (the run log keeps these lines): no secret of the URL."""
    log.warning("%s %s: %s; retry %d of %d in %.1f s", method, safe_url(url), cause, attempt, limit, wait)


def _cause(error: Exception | None) -> str:
    """What went wrong, in words: the exception's own text may quote headers."""
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return "no answer within the read timeout"
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError subclass
        return "could not connect"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return "no connection within the connect timeout"
    if isinstance(error, urllib3.exceptions.ProtocolError):
        return "the connection broke off"
    return f"failed ({type(error).__name__})"


class _HeaderAuth(requests.auth.AuthBase):
    """Sets ``Authorization`` (or nothing) on every request.

    As the session's auth it also stops requests from reading ~/.netrc, whose credentials would
    replace the token: kobo-tip takes secrets from environment variables only.
    """

    def __init__(self, value: str | None) -> None:
        self._value = value

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._value is not None:
            prepared.headers["Authorization"] = self._value
        return prepared


class TimeoutSession(requests.Session):
    """A Session bound to one origin, with a default (connect, read) timeout on every request."""

    def __init__(self, origin: str, timeout: tuple[float, float], token_name: str = "") -> None:
        super().__init__()
        self.origin = origin_of(origin)
        self.timeout = timeout
        self.token_name = token_name  # where the token came from, for error messages

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Send to the session's origin only, following its redirects within it (GET and HEAD)."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs["allow_redirects"] = False
        target = url.decode() if isinstance(url, bytes) else url
        method = method.upper()
        for _ in range(_MAX_REDIRECTS):
            self._check_origin(target, "asked for")
            response = super().request(method, target, *args, **kwargs)
            if not response.is_redirect:
                return response
            location = urljoin(response.url, response.headers.get("location", ""))
            self._check_origin(location, f"redirected {method} {urlsplit(safe_url(target)).path} to")
            if method not in _FOLLOWED:
                response.close()
                raise ServerError(
                    f"{safe_url(target)} answered {response.status_code} to a {method}, redirecting it: "
                    "kobo-tip never sends a request body (it may hold a password) anywhere it was not "
                    f"addressed to; set [source] url to {origin_of(location)} if that is the server.",
                    url=safe_url(target),
                    detail="redirect",
                )
            response.close()
            target = location
        raise ServerError(
            f"{self.origin} redirected more than {_MAX_REDIRECTS} times: check [source] url.",
            url=safe_url(target),
            detail="redirect",
        )

    def _check_origin(self, url: str, what: str) -> None:
        if origin_of(url) != self.origin:
            raise ServerError(
                f"The server {what} {origin_of(url)}, which is not the configured {self.origin}: "
                "kobo-tip sends its credentials to the configured server only and went no further; "
                "if that address is the server's, set [source] url to it.",
                url=safe_url(url),
                detail="another origin",
            )


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``, the port written out (``https://kf.org`` -> ``:443``)."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is not a number
        port = None
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def new_session(
    origin: str,
    *,
    token: str | None = None,
    token_scheme: str = "Token",
    timeout: tuple[float, float] = (10, 150),
    retries: int = 5,
    backoff: float = 0.5,
    token_name: str = "",
) -> requests.Session:
    """A session for the server at ``origin`` (its configured url) with kobo-tip's User-Agent,
    JSON Accept header, timeouts, retries and the token; it sends to that origin only.

    ``token_name`` (the environment variable holding the token) is named in 401/403 errors.
    """
    session = TimeoutSession(origin, timeout, token_name)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    session.auth = _HeaderAuth(f"{token_scheme} {token}" if token else None)
    retry = _Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=IDEMPOTENT_METHODS,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last response comes back and is mapped to a ServerError
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def safe_url(url: str) -> str:
    """``url`` without user:password and without query parameters that may hold a credential."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not any(word == name.lower() or word in name.lower().split("_") for word in _SECRET_PARAMS)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def server_message(response: requests.Response) -> str:
    """The server's own words: ``detail``/``error``/``message`` of a JSON body, else the text's start."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return text[:300]
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if body.get(key):
                return str(body[key])
        return "; ".join(f"{key}: {value}" for key, value in body.items())[:300]
    if isinstance(body, list):
        return "; ".join(str(item) for item in body)[:300]
    return str(body)[:300]


def _error_for(response: requests.Response, what: str, token_name: str) -> ServerError:
    status = response.status_code
    url = safe_url(response.url)
    message = server_message(response)
    if status in (401, 403):
        sentence = (
            f"{url} answered {status} ({message}): the API token is wrong or lacks permission on "
            f"{what}; check the token in {token_name or 'the environment variable the config names'}."
        )
    elif status == 404:
        sentence = f"{what} was not found at {url} (404): check the uid or id in the config."
    else:
        sentence = f"{url} answered {status}: {message or response.reason}."
    return ServerError(sentence, status=status, url=url, detail=message)


def _failure(exc: requests.RequestException, method: str, url: str) -> ServerError:
    host = _host(url)
    clean = safe_url(url)
    # requests wraps urllib3's errors: MaxRetryError(reason=ReadTimeoutError) or the error itself.
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    if isinstance(exc, requests.Timeout) or isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return ServerTimeout(
            f"{host} did not answer {method} {urlsplit(clean).path} in time, even after retries: "
            "the server is overloaded or the page is too large; try again later.",
            url=clean,
            detail="timeout",
        )
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return ServerError(
            f"{host} broke off its answer to {method} {urlsplit(clean).path} mid-way: "
            "a proxy or the network is cutting responses short; try again later or lower [source] page_size.",
            url=clean,
            detail=type(exc).__name__,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return ServerError(
            f"The TLS connection to {host} failed: check the [source] url and the server's certificate.",
            url=clean,
            detail="ssl",
        )
    return ServerError(
        f"Could not reach {host} ({type(exc).__name__}), even after retries: check the [source] url "
        "and the network.",
        url=clean,
        detail=type(exc).__name__,
    )


def request(
    session: requests.Session, method: str, url: str, *, what: str = "", **kwargs: Any
) -> requests.Response:
    """Send a request and read its body; any failure becomes a :class:`ServerError`.

    ``what`` names the resource for 401/403/404 messages ("asset aXXX"); default: the URL path.
    A body that breaks off mid-way is re-requested for idempotent methods.
    """
    method = method.upper()
    attempts = _BODY_ATTEMPTS if method in IDEMPOTENT_METHODS else 1
    for attempt in range(attempts):
        try:
            response = session.request(method, url, stream=True, **kwargs)
            _read_body(response)  # here, so a broken body is caught here
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            if attempt + 1 < attempts:
                wait = _pause(session, attempt)
                say_retry(method, url, "the answer broke off mid-way", attempt + 1, attempts - 1, wait=wait)
                time.sleep(wait)
                continue
            raise _failure(exc, method, url) from None
        except requests.RequestException as exc:
            raise _failure(exc, method, url) from None
        break
    if response.status_code >= 400:
        what = what or f"the resource {urlsplit(url).path}"
        raise _error_for(response, what, getattr(session, "token_name", ""))
    return response


def _read_body(response: requests.Response) -> None:
    """What ``response.content`` does, in larger pieces; ``content`` then holds the body."""
    if response.raw is None or response.status_code == 0:
        return
    response._content = b"".join(response.iter_content(_BODY_PIECE))


def get_json(session: requests.Session, url: str, *, what: str = "", **kwargs: Any) -> Any:
    """GET ``url`` and decode its JSON body, re-requesting a truncated or garbled body."""
    for attempt in range(_BODY_ATTEMPTS):
        response = request(session, "GET", url, what=what, **kwargs)
        try:
            return orjson.loads(response.content)  # a data page parses in a third of json's time
        except orjson.JSONDecodeError:
            if attempt + 1 < _BODY_ATTEMPTS:
                wait = _pause(session, attempt)
                say_retry(
                    "GET", url, "the answer is not valid JSON", attempt + 1, _BODY_ATTEMPTS - 1, wait=wait
                )
                time.sleep(wait)
    clean = safe_url(response.url)
    raise ServerError(
        f"{clean} sent a body that is not valid JSON {_BODY_ATTEMPTS} times: the server or a proxy "
        "is cutting responses short; try again later or lower [source] page_size.",
        status=response.status_code,
        url=clean,
        detail="invalid JSON",
    )


def _pause(session: requests.Session, attempt: int) -> float:
    adapter = session.get_adapter("http://")
    retry = getattr(adapter, "max_retries", None)
    backoff = getattr(retry, "backoff_factor", 0.5)
    return backoff * (2**attempt)
