"""``kobo-tip serve``: Kobo's pushes received, the source polled, the internal report kept current.

One process: uvicorn serves the Starlette app (``app``) on the event loop; the push writer
(``intake``), the poll and the render (``schedule``) are threads of their own, so a long sync
never holds up a push. On SIGTERM uvicorn stops taking requests and lets those in hand finish;
then every queued push is committed, a running sync stops after its batch, and a render still
due is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from kobo_tip.config import Settings
from kobo_tip.person_key import check_secret
from kobo_tip.rows import recognise_project_labels
from kobo_tip.serve.app import make_app
from kobo_tip.serve.events import RepeatLimit, json_log_lines, log_event, loop_error
from kobo_tip.serve.guard import ConnectionLimits, connection_limit, open_file_limit, uvicorn_bounds
from kobo_tip.serve.intake import Intake
from kobo_tip.serve.schedule import Poller, Renderer
from kobo_tip.store import open_store, utc_stamp

SHUTDOWN_SECONDS = 30  # requests in hand get this long to finish after SIGTERM


@dataclass
class Service:
    """The parts of a running service (tests and the status endpoint read them)."""

    settings: Settings
    intake: Intake
    renderer: Renderer
    poller: Poller
    stop: threading.Event
    app: Starlette
    started: str = ""

    def status(self) -> dict[str, Any]:
        """``GET /status``: times, counts and errors; no submission, no person, no secret."""
        with open_store(self.settings) as store:
            last_push, pushes = store.pushes()
            counts = store.counts()
            runs = store.runs(limit=1)
        run = runs[0] if runs else None
        return {
            "started": self.started,
            "source": self.settings.source.kind,
            "submissions": counts.submissions,
            "last_sync": run.finished if run else None,
            "last_sync_error": run.error if run else None,
            "next_sync": self.poller.next_sync or None,
            "last_push": last_push,
            "pushes_stored": pushes,
            "pushes_waiting": self.intake.waiting,
            "push_error": self.intake.last_error or None,
            "last_render": self.renderer.last_render or None,
            "render_error": self.renderer.last_error or None,
        }


def build_service(settings: Settings, repeats: RepeatLimit | None = None) -> Service:
    """Check the secrets and the store, and assemble the service (nothing started yet); the lines
    ``repeats`` left out are reported as it stops."""
    secret = settings.secret()
    credentials = settings.serve.credentials()
    status_token = settings.serve.status_token()
    with open_store(settings) as store:
        check_secret(store, secret, settings.privacy.secret_env)
    recognise_project_labels(settings)  # the pushes' keys are read with the project's labels too
    renderer = Renderer(settings, settings.serve.render_delay_seconds)
    intake = Intake(
        functools.partial(open_store, settings), secret, settings.serve.queue_limit, renderer.request
    )
    stop = threading.Event()
    poller = Poller(settings, renderer, stop)
    service = Service(settings, intake, renderer, poller, stop, app=Starlette())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.started = utc_stamp()
        asyncio.get_running_loop().set_exception_handler(loop_error)
        intake.start()
        renderer.start()
        poller.start()
        log_event(logging.INFO, "started", source=settings.source.kind)
        try:
            yield
        finally:
            stop.set()
            intake.close()  # every push answered or queued is committed
            poller.join(SHUTDOWN_SECONDS)
            renderer.close()
            if repeats is not None:
                repeats.report()
            log_event(logging.INFO, "stopped")

    asset_uid = settings.source.asset_uid if settings.source.kind == "kobo" else ""
    service.app = make_app(
        asset_uid=asset_uid,
        credentials=credentials,
        status_token=status_token,
        intake=intake,
        max_body=settings.serve.max_body_kb * 1024,
        body_seconds=settings.serve.body_timeout_seconds,
        status=service.status,
        lifespan=lifespan,
    )
    return service


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run the service until SIGTERM or SIGINT; one per store."""
    files = open_file_limit()
    limits = ConnectionLimits(
        max_connections=connection_limit(settings.serve.max_connections, files),
        header_seconds=settings.serve.header_timeout_seconds,
    )
    repeats = RepeatLimit()
    service = build_service(settings, repeats)
    with open_store(settings) as store, store.lock_for_serve(), json_log_lines(repeats):
        config = uvicorn.Config(
            service.app,
            host=host or settings.serve.host,
            port=port or settings.serve.port,
            log_config=None,  # our handlers: kobo_tip's lines on stderr
            access_log=False,  # the receiver logs each refusal itself, without the request's secrets
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
            server_header=False,
            **uvicorn_bounds(limits, settings.serve.keep_alive_seconds),
        )
        log_event(
            logging.INFO,
            "listening",
            host=config.host,
            port=config.port,
            max_connections=limits.max_connections,
            open_files=files,
        )
        uvicorn.Server(config).run()
