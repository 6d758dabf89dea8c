"""The API process: uvicorn serving :func:`liftwatch.api.app.create_app` until ``stop`` is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn
from liftwatch.api.app import create_app
from liftwatch.config import ApiSettings
from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's ``stop`` event decides."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: ApiSettings, stop: asyncio.Event, *, registry: CollectorRegistry | None = None) -> None:
    """Serve HTTP on ``settings.api_host:api_port`` until ``stop`` is set (signals are the caller's)."""
    app = create_app(settings, registry=registry)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        proxy_headers=True,
        # Open SSE streams must not hold a shutdown for long: clients reconnect and replay.
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopper.cancel()
    await task
    if not server.started and task in done and not stop.is_set():
        raise RuntimeError(f"the API could not start on {settings.api_host}:{settings.api_port}")
    log.info("api stopped")
