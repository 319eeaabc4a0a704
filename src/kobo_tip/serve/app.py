"""The HTTP side of ``kobo-tip serve`` (Starlette): the Kobo push receiver, ``/healthz`` and
``/status``. Every refusal happens before the body is parsed or anything is queued, and no answer
ever repeats what a request sent."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kobo_tip.config import HookCredentials
from kobo_tip.errors import KoboTipError
from kobo_tip.serve.events import log_event
from kobo_tip.serve.intake import Intake, Overloaded, PushRefused, read_push

RETRY_AFTER = "60"  # seconds; Kobo's own back-off starts at 60 s anyway
JSON_TYPES = ("application/json",)
_LATER = {"Retry-After": RETRY_AFTER}


def _answer(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two texts (as UTF-8 bytes)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def push_allowed(request: Request, credentials: HookCredentials) -> bool:
    """True when the push carries the configured basic auth or header token."""
    if credentials.kind == "header":
        return _same(request.headers.get(credentials.header, ""), credentials.token)
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Both compared, whatever the first gives: the time taken says nothing of which was wrong.
    return _same(username, credentials.username) & _same(password, credentials.password)


def status_allowed(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _same(given, token)


class _TooLarge(Exception):
    """The body passed the limit."""


async def _body(request: Request, limit: int, seconds: float) -> bytes:
    """The body; ``_TooLarge`` as soon as it passes ``limit`` bytes (whatever Content-Length said),
    ``TimeoutError`` when it has not all arrived ``seconds`` after the headers."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    parts, size = [], 0
    async with asyncio.timeout(seconds):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            parts.append(chunk)
    return b"".join(parts)


def make_app(
    *,
    asset_uid: str,
    credentials: HookCredentials,
    status_token: str,
    intake: Intake,
    max_body: int,
    body_seconds: float,
    status: Callable[[], dict[str, Any]],
    lifespan: Any = None,
) -> Starlette:
    """The ASGI application; ``status`` gives the facts of ``GET /status``."""

    # One return per HTTP answer a push can get, in the order the checks run: read top to bottom.
    async def receive_push(request: Request) -> Response:  # noqa: PLR0911
        if not push_allowed(request, credentials):
            log_event(logging.WARNING, "push_refused", status=401, client=_client(request))
            headers = {"WWW-Authenticate": 'Basic realm="kobo-tip"'} if credentials.kind == "basic" else {}
            return _answer(401, "Authentication required.", **headers)
        if request.path_params["asset_uid"] != asset_uid:
            return _answer(404, "No such asset here.")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in JSON_TYPES:
            return _answer(415, "Send the submission as JSON (the REST Service's JSON type).")
        try:
            body = await _body(request, max_body, body_seconds)
        except _TooLarge:
            log_event(logging.WARNING, "push_refused", status=413, client=_client(request))
            return _answer(413, f"A submission is at most {max_body // 1024} KB here.")
        except TimeoutError:
            log_event(logging.WARNING, "push_refused", status=408, client=_client(request))
            return _answer(408, "The body did not arrive in time.", Connection="close")
        try:
            raw = read_push(body, asset_uid)
            future = intake.submit(raw)
        except PushRefused as exc:
            log_event(logging.WARNING, "push_refused", status=exc.status, reason=exc.message)
            return _answer(exc.status, exc.message)
        except Overloaded:
            log_event(logging.WARNING, "push_deferred", waiting=intake.waiting)
            return _answer(503, "Busy: try again later.", **_LATER)
        try:
            answer = await asyncio.wrap_future(future)
        except PushRefused as exc:
            return _answer(exc.status, exc.message)
        except KoboTipError:
            # The store could not take it now (busy, disk): Kobo retries a 503.
            return _answer(503, "The store could not take it now: try again later.", **_LATER)
        return JSONResponse(answer)  # stored, or dropped as stale: 200 either way (intake.py says why)

    async def healthz(request: Request) -> Response:
        if not intake.alive:
            return _answer(503, "The push writer has stopped.")
        return JSONResponse({"status": "ok"})

    async def status_page(request: Request) -> Response:
        if not status_allowed(request, status_token):
            return _answer(401, "Authentication required.", **{"WWW-Authenticate": "Bearer"})
        # The store's reads block (a lock, a slow disk): in a worker thread, not on the event loop.
        return JSONResponse(await run_in_threadpool(status))

    async def failed(request: Request, exc: Exception) -> Response:
        # Its type only: the message or a traceback may quote the request or local paths.
        log_event(logging.ERROR, "request_failed", error=type(exc).__name__)
        return _answer(500, "kobo-tip could not handle this request.")

    return Starlette(
        exception_handlers={Exception: failed},
        routes=[
            Route("/hooks/kobo/{asset_uid}", receive_push, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/status", status_page, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else ""
