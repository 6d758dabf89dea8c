"""The one module that talks to paho-mqtt.

paho runs its network loop in a thread; this adapter turns its callbacks into asyncio with
``call_soon_threadsafe`` and exposes what liftwatch needs:

* subscribers (the gateway) receive :class:`InboundMessage` objects on an asyncio queue and
  acknowledge QoS 1 messages *explicitly* (paho ``manual_ack``), after the data is safe in Kafka;
* publishers (the simulator, tests) publish from any thread or coroutine.

MQTT 5 is used for the persistent session (clean_start=False with a session expiry) and for
Receive Maximum, which bounds the messages the broker sends us before we acknowledge: that
bound is the back-pressure that keeps a gateway from buffering without limit when Kafka stalls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from liftwatch.errors import ServiceUnavailable
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)

# A gateway restarted within this time finds the messages published meanwhile waiting for it.
SESSION_EXPIRY_S = 3600
# Seconds between keep-alive pings; the broker declares us dead (and fires our will) after 1.5x.
KEEPALIVE_S = 30
# paho's reconnect back-off, doubling from the first to the second bound.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
# How long to wait for CONNACK/SUBACK before calling the broker unreachable.
CONNECT_TIMEOUT_S = 10.0


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message received by a subscriber; ``ack()`` it once its content is durable."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    client: MqttClient

    def ack(self) -> None:
        """Send the PUBACK (thread-safe); a no-op for QoS 0."""
        if self.qos > 0:
            self.client.ack(self.mid, self.qos)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Host, port and credentials parsed from an ``mqtt://user:pass@host:port`` URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "mqtts",
        )


class MqttClient:
    """An MQTT 5 client whose events arrive in an asyncio loop."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        persistent_session: bool = False,
        manual_ack: bool = False,
        receive_maximum: int = 1000,
        will: tuple[str, bytes] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.address = BrokerAddress.parse(url)
        self.client_id = client_id
        self._persistent = persistent_session
        self._receive_maximum = receive_maximum
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            manual_ack=manual_ack,
        )
        user = username or self.address.username
        if user:
            self._client.username_pw_set(user, password or self.address.password)
        if self.address.tls:
            self._client.tls_set()
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        # Unbounded client-side queues: publishers bound themselves (see Publisher.wait_below).
        self._client.max_inflight_messages_set(receive_maximum)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self._connack = threading.Event()  # any CONNACK, accepted or refused: connect() stops waiting
        self._connect_error: str | None = None
        self._subscriptions: list[tuple[str, int]] = []
        self._suback = threading.Event()
        # Inbound messages cross from paho's thread through a deque (append/popleft are atomic);
        # the loop is woken once per burst instead of once per message (see _on_message).
        self._inbox: deque[InboundMessage] = deque()
        self._inbox_ready: asyncio.Event | None = None
        self._wakeup_pending = False
        self._pending_publishes = 0
        # (limit, future) of a coroutine in wait_below(), resolved from paho's thread.
        self._below: tuple[int, asyncio.Future[None]] | None = None
        self._lock = threading.Lock()
        self.on_connection_change: Callable[[bool], None] | None = None

    # --- paho thread callbacks (never block here) ---------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            log.error("MQTT connect refused: %s", reason)
            self._connack.set()
            return
        self._connect_error = None
        self._connected.set()
        self._connack.set()
        if self._subscriptions:
            client.subscribe([(topic, SubscribeOptions(qos=qos)) for topic, qos in self._subscriptions])
        self._notify(True)

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.warning("MQTT disconnected (%s); paho reconnects", reason)
        self._notify(False)

    def _on_subscribe(
        self, client: paho.Client, userdata: object, mid: int, reasons: list[ReasonCode], properties: object
    ) -> None:
        self._suback.set()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # the broker should refuse these; never let one kill paho's thread
            topic = f"<invalid utf-8 topic {message._topic[:200]!r}>"
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        self._inbox.append(InboundMessage(topic, payload, message.qos, message.mid, self))
        # One call_soon_threadsafe per burst: it costs a lock and a self-pipe write, which at
        # thousands of messages per second was the largest cost of the receive path.
        if not self._wakeup_pending and self._loop is not None:
            self._wakeup_pending = True
            self._loop.call_soon_threadsafe(self._wake_receiver)

    def _wake_receiver(self) -> None:
        self._wakeup_pending = False  # before set(): a message appended after this schedules a new wake-up
        if self._inbox_ready is not None:
            self._inbox_ready.set()

    def _on_publish(
        self, client: paho.Client, userdata: object, mid: int, reason: ReasonCode, properties: object
    ) -> None:
        with self._lock:
            self._pending_publishes -= 1
            below = self._below
            if below is None or self._pending_publishes >= below[0]:
                return
            self._below = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, below[1])

    def _notify(self, up: bool) -> None:
        callback = self.on_connection_change
        if callback is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(callback, up)

    # --- asyncio side --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect (starting paho's thread) and wait for the CONNACK."""
        self._loop = asyncio.get_running_loop()
        if self._inbox_ready is None:
            self._inbox_ready = asyncio.Event()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = self._receive_maximum
        if self._persistent:
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._connack.clear()
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=KEEPALIVE_S,
            clean_start=not self._persistent,
            properties=properties,
        )
        self._client.loop_start()
        await asyncio.to_thread(self._connack.wait, CONNECT_TIMEOUT_S)
        if not self._connected.is_set():
            self._client.loop_stop()
            detail = self._connect_error or "no answer"
            raise ServiceUnavailable(f"MQTT broker {self.address.host}:{self.address.port}: {detail}")

    async def subscribe(self, *filters: str, qos: int = 1) -> None:
        """Subscribe (and re-subscribe after every reconnect)."""
        self._subscriptions.extend((topic, qos) for topic in filters)
        self._suback.clear()
        result, _ = self._client.subscribe([(topic, SubscribeOptions(qos=qos)) for topic in filters])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ServiceUnavailable(f"MQTT subscribe failed: {paho.error_string(result)}")
        if not await asyncio.to_thread(self._suback.wait, CONNECT_TIMEOUT_S):
            raise ServiceUnavailable("MQTT SUBACK not received")

    async def _wait_inbox(self) -> None:
        ready = self._inbox_ready
        assert ready is not None, "connect() first"
        while not self._inbox:
            ready.clear()
            if self._inbox:  # appended between the check and clear(); its wake-up may have run already
                break
            await ready.wait()

    async def receive(self) -> InboundMessage:
        """The next inbound message."""
        await self._wait_inbox()
        return self._inbox.popleft()

    async def receive_many(self, limit: int) -> list[InboundMessage]:
        """Wait for at least one inbound message, then take every waiting one (at most ``limit``)."""
        await self._wait_inbox()
        inbox = self._inbox
        count = min(limit, len(inbox))
        return [inbox.popleft() for _ in range(count)]

    def receive_nowait(self) -> InboundMessage | None:
        """The next inbound message if one is waiting."""
        try:
            return self._inbox.popleft()
        except IndexError:
            return None

    @property
    def waiting(self) -> int:
        """Inbound messages received and not yet taken."""
        return len(self._inbox)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message (thread-safe)."""
        self._client.ack(mid, qos)

    def ack_many(self, messages: Iterable[InboundMessage]) -> None:
        """Acknowledge received messages, in the given (receive) order."""
        ack = self._client.ack
        for message in messages:
            if message.qos > 0:
                ack(message.mid, message.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> paho.MQTTMessageInfo:
        """Queue a message for publishing (thread-safe); the returned info completes on PUBACK."""
        with self._lock:
            self._pending_publishes += 1
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            with self._lock:
                self._pending_publishes -= 1
        return info

    @property
    def pending_publishes(self) -> int:
        """Published messages not yet acknowledged by the broker."""
        return self._pending_publishes

    async def wait_below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` publishes await their PUBACK (publisher back-pressure)."""
        while self._pending_publishes >= limit:
            waiter = asyncio.get_running_loop().create_future()
            with self._lock:
                if self._pending_publishes < limit:
                    return
                self._below = (limit, waiter)
            await waiter

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def disconnect(self) -> None:
        """Disconnect cleanly (no will is sent) and stop paho's thread."""
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
