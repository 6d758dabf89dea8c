"""The one module that talks to paho-mqtt.

paho's network loop is driven by the asyncio loop itself (paho's "external event loop" mode:
the socket is registered with ``add_reader``/``add_writer``, ``loop_misc`` runs on a timer), so
there is no paho thread. A paho thread competing with the asyncio thread for the GIL convoyed on
every socket call and capped a gateway or publisher near 2,000 messages/s at a fraction of a core.
The adapter exposes what liftwatch needs:

* subscribers (the gateway) receive :class:`InboundMessage` objects on an asyncio queue and
  acknowledge QoS 1 messages *explicitly* (paho ``manual_ack``), after the data is safe in Kafka;
* publishers (the simulator, tests) publish from any thread or coroutine.

MQTT 5 is used for the persistent session (clean_start=False with a session expiry) and for
Receive Maximum, which bounds the messages the broker sends us before we acknowledge: that
bound is the back-pressure that keeps a gateway from buffering without limit when Kafka stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal
from urllib.parse import unquote, urlsplit

import msgspec
import paho.mqtt.client as paho
from liftwatch.config import MqttTls
from liftwatch.errors import ServiceUnavailable
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)

# A gateway restarted within this time finds the messages published meanwhile waiting for it:
# a day covers a night-long outage of every gateway. A session retired on purpose ends at once
# (`liftwatch gateway --leave`), so the long expiry costs nothing in normal operation.
SESSION_EXPIRY_S = 86_400
# Seconds between keep-alive pings; the broker declares us dead (and fires our will) after 1.5x.
KEEPALIVE_S = 30
# Reconnect back-off, doubling from the first to the second bound.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0
# How long to wait for CONNACK/SUBACK before calling the broker unreachable.
CONNECT_TIMEOUT_S = 10.0
# paho's housekeeping (keep-alive pings, retries) runs this often.
MISC_INTERVAL_S = 1.0
# Packets read per readable event at most: large enough that a burst arrives as one batch,
# small enough that a flood cannot starve the rest of the event loop.
READ_BURST = 500
# Bytes asked of the socket per read: paho reads a packet in three or four calls (type, length
# bytes, body), so reads are served from one buffer of up to this many bytes (dozens of packets).
RECV_BYTES = 65536
# How long disconnect() waits for the DISCONNECT to be written before closing anyway.
DISCONNECT_TIMEOUT_S = 2.0


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class InboundMessage(msgspec.Struct, frozen=True):
    """One message received by a subscriber; ``ack()`` it once its content is durable.

    A msgspec Struct, not a frozen dataclass: one is made per message, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) costs 0.5 us where this costs 0.08.
    """

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


_U16 = struct.Struct("!H")
_qos_of = attrgetter("qos")
PUBACK_HEADER = 0x40  # MQTT control packet type 4, no flags
# A bare PUBACK as one big-endian 32-bit word: the header, remaining length 2, then the packet id.
_PUBACK_WORD = PUBACK_HEADER << 24 | 2 << 16
PUBLISH_HEADER = 0x30  # type 3; its flags are dup, QoS and retain
# Shared, never modified: what a bare MQTT 5 PUBACK decodes to.
_PUBACK_SUCCESS = ReasonCode(PacketTypes.PUBACK)
_NO_PUBACK_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]


class _Client(paho.Client):
    """paho's client with a fast path for a gateway's commonest packet: a QoS 0/1 PUBLISH without properties.

    paho decodes every MQTT 5 PUBLISH into a fresh ``Properties`` object whose construction and
    ``clear()`` were a third of the gateway's receive CPU in the profile; terminals send no
    properties, so the fast path skips the object. Anything else (properties, QoS 2, MQTT 3,
    malformed input) goes through paho's own decoder.
    """

    _buffer = b""
    """Bytes read from ``_buffered_sock`` and not yet taken by paho, from ``_taken`` on."""
    _taken = 0
    _buffered_sock: object = None

    deliver: Callable[[str, bytes, int, int], None] | None = None
    """Receives (topic, payload, qos, mid) of fast-path messages instead of ``on_message``.

    Skips paho's ``MQTTMessage`` and its per-message topic matching against filtered callbacks
    (``message_callback_add``), so it is only for clients that use none (``MqttClient``).
    """

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        data = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != paho.MQTTv5 or qos >= 2:  # QoS 2, or both bits set (malformed): paho's way
            return super()._handle_publish()
        try:
            (length,) = _U16.unpack_from(data, 0)
            offset = 2 + length
            mid = 0
            if qos:
                (mid,) = _U16.unpack_from(data, offset)
                offset += 2
            if length == 0 or data[offset] != 0:  # empty topic (alias) or properties present
                return super()._handle_publish()
        except (struct.error, IndexError):
            return super()._handle_publish()
        deliver = self.deliver
        if deliver is not None:
            try:
                topic = data[2 : 2 + length].decode()
            except UnicodeDecodeError:  # paho's path reports it through on_message
                return super()._handle_publish()
            deliver(topic, bytes(data[offset + 1 :]), qos, mid)
            if qos == 1 and not self._manual_ack:
                return self._send_puback(mid)
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        message = paho.MQTTMessage(mid=mid, topic=bytes(data[2 : 2 + length]))
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.payload = bytes(data[offset + 1 :])
        message.timestamp = paho.time_func()
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho's read of up to ``bufsize`` bytes, served from a buffer filled ``RECV_BYTES`` at a time.

        paho reads one or two bytes at a time (a packet's type and length) and then its body, each
        a system call; from the buffer, a burst of packets costs one. A short read (what is left of
        the buffer) is what ``recv`` may return too; paho reads on for the rest.
        """
        taken = self._taken
        if taken < len(self._buffer) and self._buffered_sock is self._sock:
            self._taken = taken + bufsize
            return self._buffer[taken : taken + bufsize]
        data = super()._sock_recv(max(bufsize, RECV_BYTES))
        if len(data) <= bufsize:
            self._buffer = b""
            return data
        self._buffer, self._taken, self._buffered_sock = data, bufsize, self._sock
        return data[:bufsize]

    def deliver_buffered(self, limit: int) -> int:
        """Deliver the wholly read QoS 0/1 PUBLISH packets at the head of the read buffer (at most
        ``limit``) as ``_handle_publish`` does, without paho's read of each; how many.

        paho reads a packet through three or four ``_sock_recv`` calls and a fresh state dict, which
        was half of a gateway's receive path at 15,000 messages/s. This stops at anything else
        (another packet type, properties, a topic alias, a packet not wholly read, malformed input),
        which paho's own read takes next, in order.
        """
        deliver = self.deliver
        buffer, position = self._buffer, self._taken
        if (
            deliver is None
            or self._in_packet["command"]  # paho is inside a packet
            or self._buffered_sock is not self._sock
            or self._protocol != paho.MQTTv5
        ):
            return 0
        end = len(buffer)
        count = 0
        while count < limit and position < end:
            header = buffer[position]
            qos = (header & 0x06) >> 1
            if header & 0xF0 != PUBLISH_HEADER or qos >= 2:  # QoS 2, or malformed (MQTT-3.3.1-4)
                break
            length = shift = 0  # the remaining length: 1 to 4 bytes of 7 bits, least significant first
            body = position + 1
            while body < end and shift < 28:
                byte = buffer[body]
                body += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            else:
                break  # not wholly read, or malformed
            packet_end = body + length
            if packet_end > end or length < 2:
                break
            topic_end = body + 2 + ((buffer[body] << 8) | buffer[body + 1])
            offset, mid = topic_end, 0
            if qos:
                if offset + 2 > packet_end:
                    break
                mid = (buffer[offset] << 8) | buffer[offset + 1]
                offset += 2
            if topic_end == body + 2 or offset >= packet_end or buffer[offset] != 0:
                break  # empty topic (alias), no property length, or properties present
            try:
                topic = buffer[body + 2 : topic_end].decode()
            except UnicodeDecodeError:
                break
            self._taken = position = packet_end
            count += 1
            deliver(topic, buffer[offset + 1 : packet_end], qos, mid)
            if qos == 1 and not self._manual_ack:
                self._send_puback(mid)
        if count:
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()
        return count

    def buffered(self) -> bool:
        """True when bytes already read from the socket wait for paho (the socket may not be readable)."""
        return self._taken < len(self._buffer) and self._buffered_sock is self._sock

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        """paho's TLS handshake, closing the socket when it fails (paho leaves it open: an
        unreachable or untrusted broker would leak one socket per reconnect attempt)."""
        assert self._ssl_context is not None and self._ssl_context.check_hostname
        tls_sock = self._ssl_context.wrap_socket(tcp_sock, server_hostname=self._host, do_handshake_on_connect=False)
        try:
            tls_sock.settimeout(self._connect_timeout)
            tls_sock.do_handshake()
        except BaseException:
            tls_sock.close()
            raise
        return tls_sock

    def puback_many(self, mids: Iterable[int]) -> None:
        """Queue the PUBACKs of QoS 1 messages as one write.

        paho queues each PUBACK as its own packet and writes each with its own ``send()``; a
        gateway acknowledging thousands per Kafka batch spent more CPU on those system calls than
        on decoding. Byte for byte these are the packets ``ack()`` sends (MQTT 5 allows the
        bare form: reason 0 and no properties are omitted), in the given order.
        """
        words = [_PUBACK_WORD | mid for mid in mids]  # packet ids are 16 bits (1-65535)
        packet = struct.pack(f"!{len(words)}I", *words)
        if packet:
            self._packet_queue(PUBACK_HEADER, packet, 0, 0)

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        # A publisher's commonest packet: a successful PUBACK without properties (the packet id,
        # then optionally reason 0 and an empty property length). paho builds a ReasonCode and a
        # Properties object for each; shared instances do here.
        data = self._in_packet["packet"]
        if cmd != "PUBACK" or self._protocol != paho.MQTTv5 or len(data) > 4 or any(data[2:]):
            return super()._handle_pubackcomp(cmd)
        (mid,) = _U16.unpack_from(data, 0)
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, _PUBACK_SUCCESS, _NO_PUBACK_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


class MqttClient:
    """An MQTT 5 client driven by the running asyncio loop."""

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
        tls: MqttTls | None = None,
    ) -> None:
        self.address = BrokerAddress.parse(url)
        self.client_id = client_id
        self._persistent = persistent_session
        self._receive_maximum = receive_maximum
        self._client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            manual_ack=manual_ack,
        )
        user = username or self.address.username
        if user:
            self._client.username_pw_set(user, password or self.address.password)
        if self.address.tls:
            self._client.tls_set_context(_tls_context(tls or MqttTls()))
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        # No client-side in-flight cap: publishers bound themselves with wait_below() (below the
        # broker's Receive Maximum). paho's cap costs a scan of every queued message per PUBACK,
        # which capped a publisher with thousands in flight at ~1,700 messages/s.
        self._client.max_inflight_messages_set(0)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.deliver = self._deliver
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.on_publish = self._on_publish
        self._client.on_socket_open = self._on_socket_open
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_socket_register_write
        self._client.on_socket_unregister_write = self._on_socket_unregister_write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resume_pending = False  # a call to _on_readable scheduled for bytes already read
        self._loop_thread: int | None = None
        self._sock: paho.SocketLike | None = None
        self._connected = False
        self._connack: asyncio.Event | None = None  # any CONNACK, accepted or refused
        self._disconnected: asyncio.Event | None = None
        self._connect_error: str | None = None
        self._subscriptions: list[tuple[str, int]] = []
        self._suback: asyncio.Event | None = None
        self._inbox: deque[InboundMessage] = deque()
        self._inbox_ready: asyncio.Event | None = None
        self._pending_publishes = 0
        # (limit, future) of a coroutine in wait_below().
        self._below: tuple[int, asyncio.Future[None]] | None = None
        self._lock = threading.Lock()  # publish() may be called from other threads
        self._closing = False
        self._misc_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self.on_connection_change: Callable[[bool], None] | None = None

    # --- running something on the loop, from the loop or another thread --------------------------

    def _in_loop(self, callback: Callable[..., object], *args: object) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    # --- socket registration (paho's external-loop callbacks) ----------------------------------

    def _on_socket_open(self, client: paho.Client, userdata: object, sock: paho.SocketLike) -> None:
        self._sock = sock
        self._in_loop(self._add_reader, sock)

    def _add_reader(self, sock: paho.SocketLike) -> None:
        if self._loop is not None and sock is self._sock:
            self._loop.add_reader(sock, self._on_readable)

    def _on_socket_close(self, client: paho.Client, userdata: object, sock: paho.SocketLike) -> None:
        if sock is self._sock:
            self._sock = None
        self._in_loop(self._remove, sock)

    def _remove(self, sock: paho.SocketLike) -> None:
        if self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    def _on_socket_register_write(self, client: paho.Client, userdata: object, sock: paho.SocketLike) -> None:
        self._in_loop(self._add_writer, sock)

    def _add_writer(self, sock: paho.SocketLike) -> None:
        if self._loop is not None and sock is self._sock:
            self._loop.add_writer(sock, self._on_writable)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: object, sock: paho.SocketLike) -> None:
        self._in_loop(self._remove_writer, sock)

    def _remove_writer(self, sock: paho.SocketLike) -> None:
        if self._loop is not None:
            self._loop.remove_writer(sock)

    def _on_readable(self) -> None:
        sock = self._sock
        client = self._client
        budget = READ_BURST
        while budget > 0:
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or sock is not self._sock or sock is None:
                return
            budget -= 1 + client.deliver_buffered(budget - 1)
            if not client.buffered() and not _has_more(sock):
                return
        if client.buffered() and self._loop is not None and not self._resume_pending:
            # Bytes already read do not make the socket readable again: come back for them, once
            # (the socket's readable events call in too: one pending resume each would pile up
            # under a steady flood, and the 500-packet bound per pass would no longer hold).
            self._resume_pending = True
            self._loop.call_soon(self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume_pending = False
        self._on_readable()

    def _on_writable(self) -> None:
        self._client.loop_write()

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(MISC_INTERVAL_S)
            if self._sock is not None:
                self._client.loop_misc()

    # --- paho callbacks (on the loop) ----------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        if self._connack is not None:
            self._connack.set()
        if reason.is_failure:
            self._connect_error = str(reason)
            log.error("MQTT connect refused: %s", reason)
            return
        self._connect_error = None
        self._connected = True
        if self._subscriptions:
            client.subscribe([(topic, SubscribeOptions(qos=qos)) for topic, qos in self._subscriptions])
        self._notify(True)

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        was_connected, self._connected = self._connected, False
        if self._disconnected is not None:
            self._disconnected.set()
        if self._closing:
            return
        log.warning("MQTT disconnected (%s); reconnecting", reason)
        if was_connected:
            self._notify(False)
        self._in_loop(self._start_reconnect)

    def _start_reconnect(self) -> None:
        if self._closing or (self._reconnect_task is not None and not self._reconnect_task.done()):
            return
        self._reconnect_task = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._closing and not self._connected:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
            if self._closing:
                return
            try:
                await asyncio.to_thread(self._client.reconnect)  # blocking TCP connect, off the loop
            except OSError as error:
                log.warning("MQTT reconnect to %s:%d failed: %s", self.address.host, self.address.port, error)
                continue
            # Wait for the CONNACK (or the next disconnect) before trying again.
            for _ in range(int(CONNECT_TIMEOUT_S / 0.1)):
                if self._connected or self._sock is None:
                    break
                await asyncio.sleep(0.1)

    def _on_subscribe(
        self, client: paho.Client, userdata: object, mid: int, reasons: list[ReasonCode], properties: object
    ) -> None:
        if self._suback is not None:
            self._suback.set()

    def _on_unsubscribe(
        self, client: paho.Client, userdata: object, mid: int, reasons: list[ReasonCode], properties: object
    ) -> None:
        if self._suback is not None:
            self._suback.set()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # the broker should refuse these; never let one break the read loop
            topic = f"<invalid utf-8 topic {message._topic[:200]!r}>"
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        self._inbox.append(InboundMessage(topic, payload, message.qos, message.mid, self))
        if self._inbox_ready is not None:
            self._inbox_ready.set()

    def _deliver(self, topic: str, payload: bytes, qos: int, mid: int) -> None:
        self._inbox.append(InboundMessage(topic, payload, qos, mid, self))
        ready = self._inbox_ready
        if ready is not None:
            ready.set()

    def _on_publish(
        self, client: paho.Client, userdata: object, mid: int, reason: ReasonCode, properties: object
    ) -> None:
        with self._lock:
            self._pending_publishes -= 1
            below = self._below
            if below is None or self._pending_publishes >= below[0]:
                return
            self._below = None
        _resolve(below[1])

    def _notify(self, up: bool) -> None:
        callback = self.on_connection_change
        if callback is not None:
            self._in_loop(callback, up)

    # --- public API ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and wait for the CONNACK; raises ServiceUnavailable if refused or unreachable."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        self._connack = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._suback = asyncio.Event()
        if self._inbox_ready is None:
            self._inbox_ready = asyncio.Event()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = self._receive_maximum
        if self._persistent:
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=KEEPALIVE_S,
            clean_start=not self._persistent,
            properties=properties,
        )
        try:
            await asyncio.to_thread(self._client.reconnect)  # blocking TCP connect, off the loop
        except OSError as error:
            raise ServiceUnavailable(f"MQTT broker {self.address.host}:{self.address.port}: {error}") from error
        self._misc_task = asyncio.ensure_future(self._misc())
        # A broker that closes the connection instead of answering (a TLS listener refusing our
        # certificate, a plain listener spoken to in TLS) is as refused as one that says so.
        answered = asyncio.ensure_future(self._connack.wait())
        closed = asyncio.ensure_future(self._disconnected.wait())
        try:
            await asyncio.wait((answered, closed), timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (answered, closed):
                waiter.cancel()
        if not self._connected:
            detail = self._connect_error or ("connection closed" if self._disconnected.is_set() else "no answer")
            await self.disconnect()
            raise ServiceUnavailable(f"MQTT broker {self.address.host}:{self.address.port}: {detail}")

    async def subscribe(self, *filters: str, qos: int = 1) -> None:
        """Subscribe (and re-subscribe after every reconnect)."""
        assert self._suback is not None, "connect() first"
        self._subscriptions.extend((topic, qos) for topic in filters)
        self._suback.clear()
        result, _ = self._client.subscribe([(topic, SubscribeOptions(qos=qos)) for topic in filters])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ServiceUnavailable(f"MQTT subscribe failed: {paho.error_string(result)}")
        try:
            await asyncio.wait_for(self._suback.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError as error:
            raise ServiceUnavailable("MQTT SUBACK not received") from error

    async def unsubscribe(self, *filters: str) -> None:
        """Remove subscriptions (messages already queued in a persistent session still arrive)."""
        assert self._suback is not None, "connect() first"
        self._subscriptions = [(topic, qos) for topic, qos in self._subscriptions if topic not in filters]
        self._suback.clear()
        result, _ = self._client.unsubscribe(list(filters))
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ServiceUnavailable(f"MQTT unsubscribe failed: {paho.error_string(result)}")
        try:
            await asyncio.wait_for(self._suback.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError as error:
            raise ServiceUnavailable("MQTT UNSUBACK not received") from error

    async def _wait_inbox(self) -> None:
        ready = self._inbox_ready
        assert ready is not None, "connect() first"
        while not self._inbox:
            ready.clear()
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
        """Acknowledge a received message (on the loop's thread)."""
        self._client.ack(mid, qos)

    def ack_many(self, messages: Iterable[InboundMessage]) -> None:
        """Acknowledge received messages, in the given (receive) order, in one socket write."""
        if not self._client._manual_ack:
            return
        messages = list(messages)
        if 2 not in map(_qos_of, messages):  # a QoS 1 subscriber's case, in two C-speed passes
            self._client.puback_many([message.mid for message in messages if message.qos == 1])
            return
        mids: list[int] = []
        for message in messages:
            if message.qos == 1:
                mids.append(message.mid)
            elif message.qos == 2:  # not for a QoS 1 subscriber; kept in order all the same
                self._client.puback_many(mids)
                mids.clear()
                self._client.ack(message.mid, message.qos)
        self._client.puback_many(mids)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> paho.MQTTMessageInfo:
        """Queue a message for publishing (thread-safe); the returned info completes on PUBACK."""
        with self._lock:
            self._pending_publishes += 1
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0 or info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
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
        return self._connected

    async def disconnect(self, end_session: bool = False) -> None:
        """Disconnect cleanly (no will is sent) and release the socket; ``end_session`` drops a persistent session."""
        self._closing = True
        for task in (self._reconnect_task, self._misc_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._sock is not None:
            properties = None
            if end_session:
                properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = 0
            self._client.disconnect(properties=properties)
            if self._disconnected is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._disconnected.wait(), DISCONNECT_TIMEOUT_S)
        sock = self._sock
        if sock is not None:  # the DISCONNECT could not be written: close it ourselves
            self._remove(sock)
            self._sock = None
            sock.close()
        self._connected = False


def _tls_context(files: MqttTls) -> ssl.SSLContext:
    """An mqtts:// client context: the broker's certificate chain and host name verified, TLS 1.2+."""
    context = ssl.create_default_context(cafile=files.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.client_cert is not None:
        context.load_cert_chain(files.client_cert, files.client_key)
    return context


def _has_more(sock: paho.SocketLike) -> bool:
    """True when more bytes wait on the socket (another packet may be complete)."""
    pending = getattr(sock, "pending", None)
    if pending is not None:  # TLS: decrypted bytes buffered in the SSL object
        return bool(pending() > 0)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))  # type: ignore[call-arg]
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True  # let paho's read report the error
