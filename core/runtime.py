"""Process plumbing shared by every long-running command: logging, signals, metrics endpoint."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)

Service = Callable[[asyncio.Event], Awaitable[None]]

# Allocations of container objects between two collections of the youngest generation in a process
# that streams messages (CPython's default: 700, a few dozen messages). Messages wait for Kafka
# for milliseconds, so at the default most collections find hundreds of them alive and promote
# them; they then fill the oldest generation and trigger full collections of the whole heap.
STREAMING_GC_THRESHOLD = 50_000


def configure_logging(level: str) -> None:
    """One log format for every process."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiokafka narrates every group join and metadata change at INFO; its warnings still show.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


async def serve_until_signal(*services: Service) -> None:
    """Run services concurrently until SIGINT/SIGTERM (or until one of them fails).

    Each service gets the same ``stop`` event and must return soon after it is set; a service
    that fails sets it for the others, so the process exits with the error instead of limping on.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def guarded(service: Service) -> None:
        try:
            await service(stop)
        finally:
            stop.set()

    try:
        async with asyncio.TaskGroup() as group:
            for service in services:
                group.create_task(guarded(service))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def settle_for_streaming() -> None:
    """Tune the cyclic garbage collector for a process streaming messages, once its modules are
    imported: what start-up allocated stays for the life of the process, so ``gc.freeze`` takes it
    out of every later collection, and the youngest generation is collected less often.

    Reference counting frees the messages whatever this says; only reference cycles wait longer.
    """
    gc.freeze()
    gc.set_threshold(STREAMING_GC_THRESHOLD, *gc.get_threshold()[1:])


def run_services(*services: Service) -> None:
    """Blocking entry point of a process command."""
    asyncio.run(serve_until_signal(*services))


def start_metrics(port: int, registry: CollectorRegistry) -> None:
    """Expose ``registry`` on http://0.0.0.0:port/metrics (no-op for port 0)."""
    if port:
        start_http_server(port, registry=registry)
        log.info("metrics on :%d/metrics", port)
