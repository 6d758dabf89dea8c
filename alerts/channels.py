"""Notification channels: a small base class and two adapters (webhook, Kafka ``incidents``).

A channel either delivers or raises a :class:`NotificationError` saying what to do next:
:class:`Backpressure` (saturated, try later), :class:`DeliveryFailed` (transient, retry with
back-off), :class:`DeliveryRejected` (permanent, dead-letter). Retrying, back-off and
dead-lettering are the caller's business (the delivery worker of the service), so channels stay
stateless and are easy to test against a real receiver.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from liftwatch.alerts.errors import Backpressure, DeliveryFailed, DeliveryRejected
from liftwatch.schema import IncidentChange, encode_record

SIGNATURE_HEADER = "X-Liftwatch-Signature"
DELIVERY_HEADER = "X-Liftwatch-Delivery"

T = TypeVar("T")


class Channel(abc.ABC, Generic[T]):
    """Somewhere notifications go."""

    name: str = "channel"

    @abc.abstractmethod
    async def send(self, item: T) -> None:
        """Deliver one notification or raise a :class:`liftwatch.alerts.errors.NotificationError`."""

    async def close(self) -> None:
        """Release connections."""


def sign(secret: str, body: bytes) -> str:
    """The ``X-Liftwatch-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` (for receivers; constant-time)."""
    return hmac.compare_digest(sign(secret, body), header)


def backoff_s(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Delay before retry number ``attempt`` (1-based): base * 2^(attempt-1), at most ``cap_s``."""
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class WebhookCall:
    """One signed POST of a stored delivery."""

    url: str
    secret: str
    body: bytes
    idempotency_key: str
    attempt: int = 1


class WebhookChannel(Channel[WebhookCall]):
    """HTTP POST of a JSON body with an HMAC-SHA256 signature; at most ``max_in_flight`` at once."""

    name = "webhook"

    def __init__(self, *, timeout_s: float = 10.0, max_in_flight: int = 32) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._slots = asyncio.Semaphore(max_in_flight)

    async def send(self, item: WebhookCall) -> None:
        if self._slots.locked():
            raise Backpressure("too many webhook calls in flight")
        async with self._slots:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(item.secret, item.body),
                DELIVERY_HEADER: item.idempotency_key,
                "Idempotency-Key": item.idempotency_key,
                "X-Liftwatch-Attempt": str(item.attempt),
                "User-Agent": "liftwatch-alerts",
            }
            try:
                response = await self._client.post(item.url, content=item.body, headers=headers)
            except httpx.HTTPError as error:
                raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            raise Backpressure("receiver answered 429", retry_after_s=_retry_after(response))
        if status == 408 or status >= 500:
            raise DeliveryFailed(f"receiver answered {status}")
        raise DeliveryRejected(f"receiver answered {status}")

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


class KafkaChannel(Channel[IncidentChange]):
    """The ``incidents`` topic (key = registration code, else terminal id), acks=all."""

    name = "kafka"

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def enqueue(self, item: IncidentChange) -> asyncio.Future[object]:
        """Hand the change to the producer; the returned future resolves when Kafka acknowledged it."""
        key = item.registration_code or item.terminal or ""
        try:
            future: asyncio.Future[object] = await self._producer.send(
                self._topic, encode_record(item), key=key.encode()
            )
        except KafkaTimeoutError as error:
            raise Backpressure(f"producer buffer full: {error}") from error
        except KafkaError as error:
            raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
        return future

    async def send(self, item: IncidentChange) -> None:
        future = await self.enqueue(item)
        try:
            await future
        except KafkaError as error:
            raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
