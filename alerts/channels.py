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
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from liftwatch.alerts.errors import Backpressure, DeliveryFailed, DeliveryRejected
from liftwatch.alerts.targets import TargetRefused, check_addresses, check_url, redact
from liftwatch.schema import IncidentChange, encode_record

SIGNATURE_HEADER = "X-Liftwatch-Signature"
TIMESTAMP_HEADER = "X-Liftwatch-Timestamp"
DELIVERY_HEADER = "X-Liftwatch-Delivery"
REPLAY_TOLERANCE_S = 300
"""How far a signed timestamp may be from the receiver's clock (the verification recipe's default)."""

# httpx logs every request line at INFO with the full URL, query-string keys and user:password
# included: webhook URLs are secrets of their receivers. Its warnings still show; our own lines
# show URLs through targets.redact only.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

Resolver = Callable[[str, int], Awaitable[list[str]]]

T = TypeVar("T")


class Channel(abc.ABC, Generic[T]):
    """Somewhere notifications go."""

    name: str = "channel"

    @abc.abstractmethod
    async def send(self, item: T) -> None:
        """Deliver one notification or raise a :class:`liftwatch.alerts.errors.NotificationError`."""

    async def close(self) -> None:
        """Release connections."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Liftwatch-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``.

    The timestamp (``X-Liftwatch-Timestamp``, Unix seconds) is signed with the body, so a
    captured request cannot be replayed later with a fresh timestamp.
    """
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    body: bytes,
    signature: str,
    timestamp: str,
    *,
    now: float | None = None,
    tolerance_s: float = REPLAY_TOLERANCE_S,
) -> bool:
    """A receiver's check (constant-time): the signature matches and the timestamp is recent.

    Within the tolerance a receiver still dedupes on ``Idempotency-Key`` (a retry is legitimate).
    """
    if not timestamp.isdigit() or len(timestamp) > 12:
        return False
    moment = time.time() if now is None else now
    if abs(moment - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, int(timestamp)), signature)


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


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class WebhookChannel(Channel[WebhookCall]):
    """HTTP POST of a JSON body with a timestamped HMAC-SHA256 signature; at most ``max_in_flight`` at once.

    Targets are checked before every call (:mod:`liftwatch.alerts.targets`): ``https://`` to
    public addresses only, unless ``allow_private``. A refused target is dead-lettered with the
    reason (``insecure_scheme``, ``private_target``, ``unresolved``, ``bad_url``), never called.
    (The check and httpx's own connection resolve the name separately: a name re-pointed
    between the two within its TTL is not caught; receivers are configured by the platform's
    administrators, so this bounds mistakes and stale records rather than a resolver attack.)
    """

    name = "webhook"

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        max_in_flight: int = 32,
        allow_private: bool = False,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = resolve,
    ) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._allow_private = allow_private
        self._clock = clock
        self._resolve = resolver

    async def _check_target(self, url: str) -> None:
        try:
            host, port = check_url(url, allow_private=self._allow_private)
            try:
                addresses = await self._resolve(host, port)
            except OSError as error:
                # A name that does not resolve now may tomorrow (DNS outage): retried.
                raise DeliveryFailed(f"{host} does not resolve: {error}", reason="unresolved") from error
            check_addresses(host, addresses, allow_private=self._allow_private)
        except TargetRefused as error:
            raise DeliveryRejected(str(error), reason=error.reason) from error

    async def send(self, item: WebhookCall) -> None:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(item.secret, item.body, timestamp),
            TIMESTAMP_HEADER: str(timestamp),
            DELIVERY_HEADER: item.idempotency_key,
            "Idempotency-Key": item.idempotency_key,
            "X-Liftwatch-Attempt": str(item.attempt),
        }
        await self.post(item.url, item.body, headers)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST ``body`` to a checked target; a 2xx answer is returned, anything else raised as a NotificationError."""
        if self._slots.locked():
            raise Backpressure("too many webhook calls in flight")
        async with self._slots:
            await self._check_target(url)
            try:
                response = await self._client.post(
                    url, content=body, headers={**headers, "User-Agent": "liftwatch-alerts"}
                )
            except httpx.HTTPError as error:
                # httpx's messages may quote the URL: only its redacted form is stored and logged.
                text = str(error).replace(url, redact(url))
                raise DeliveryFailed(f"{type(error).__name__}: {text}") from error
        status = response.status_code
        if 200 <= status < 300:
            return response
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
