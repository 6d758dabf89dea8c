"""The one policy for bad input: count it, dead-letter it with the reason, go on.

Every adapter that accepts input from outside (MQTT, Kafka records, CSV, HTTP bodies) reports
refusals here. The counter ``liftwatch_dead_letters_total{source, reason}`` lives in the
registry the process injects; the sink (Kafka ``deadletter`` topic, a table, a list in tests) is
given by the caller and must not raise into the pipeline.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable

from liftwatch.schema import DeadLetter, DeadLetterReason
from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_PAYLOAD = 4096

DeadLetterSink = Callable[[DeadLetter], None]

# One counter per registry: `liftwatch up` runs every process on one registry, so the gateway,
# writer, rules and alerts policies share the counter (told apart by ``source``).
_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def _dead_letter_counter(registry: CollectorRegistry) -> Counter:
    counter = _COUNTERS.get(registry)
    if counter is None:
        counter = Counter(
            "liftwatch_dead_letters", "Inputs refused, by source and reason.", ["source", "reason"], registry=registry
        )
        _COUNTERS[registry] = counter
    return counter


class BadInputPolicy:
    """Counts and dead-letters refused input for one process."""

    def __init__(self, registry: CollectorRegistry, sink: DeadLetterSink | None = None) -> None:
        self.counter = _dead_letter_counter(registry)
        self._sink = sink

    def refuse(
        self,
        *,
        source: str,
        topic: str,
        reason: DeadLetterReason,
        detail: str,
        payload: bytes,
        terminal: str | None = None,
    ) -> DeadLetter:
        """Record one refused input; returns the dead letter (already handed to the sink)."""
        self.counter.labels(source=source, reason=reason.value).inc()
        letter = DeadLetter(
            source=source,
            topic=topic,
            reason=reason,
            detail=detail[:1000],
            received_ms=int(time.time() * 1000),
            payload=bytes(payload[:MAX_DEAD_LETTER_PAYLOAD]),
            terminal=terminal,
        )
        if self._sink is not None:
            try:
                self._sink(letter)
            except Exception:  # a failing sink must not stop the pipeline; the counter still counts
                log.exception("dead-letter sink failed for %s/%s", source, reason.value)
        return letter
