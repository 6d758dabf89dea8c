"""Small process helpers shared by the gateway and the writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from liftwatch.runtime import start_metrics
from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

# Retry back-off while a broker or the database is unreachable: a quick first retry, then at
# most every 5 s, so an outage costs little CPU and recovery is noticed within seconds.
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, returning early when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def process_registry(port: int) -> CollectorRegistry:
    """A fresh registry, exposed on ``port`` when one is configured."""
    registry = CollectorRegistry()
    try:
        start_metrics(port, registry)
    except OSError as error:  # e.g. `liftwatch up`, where another process of the platform holds the port
        log.warning("metrics endpoint on port %d not started: %s", port, error)
    return registry
