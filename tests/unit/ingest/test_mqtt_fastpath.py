"""core/mqtt.py decodes common packets itself: it must agree with paho on every PUBLISH shape."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any, cast

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch import mqtt
from liftwatch.mqtt import InboundMessage, MqttClient, _Client
from paho.mqtt.enums import CallbackAPIVersion


def publish_packet(topic: bytes, mid: int, qos: int, properties: bytes, payload: bytes) -> tuple[int, bytearray]:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    body += bytes([len(properties)]) + properties + payload
    return 0x30 | (qos << 1), bytearray(body)


def receive(client_class: type[paho.Client], header: int, body: bytearray) -> paho.MQTTMessage:
    client = client_class(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    got: list[paho.MQTTMessage] = []
    client.on_message = lambda c, u, m: got.append(m)
    client._in_packet["command"] = header
    client._in_packet["packet"] = body
    client._handle_publish()
    assert len(got) == 1
    return got[0]


@settings(max_examples=100, deadline=None)
@given(
    topic=st.text(alphabet="abcXYZ019/_-", min_size=1, max_size=40).map(str.encode),
    mid=st.integers(1, 65535),
    qos=st.sampled_from([0, 1]),
    properties=st.sampled_from([b"", b"\x01\x01", b"\x03\x00\x04json"]),
    payload=st.binary(max_size=300),
)
def test_fast_publish_decoding_matches_paho(
    topic: bytes, mid: int, qos: int, properties: bytes, payload: bytes
) -> None:
    header, body = publish_packet(topic, mid, qos, properties, payload)
    ours, theirs = receive(_Client, header, bytearray(body)), receive(paho.Client, header, bytearray(body))
    assert (ours.topic, ours.payload, ours.qos, ours.mid, ours.retain, ours.dup) == (
        theirs.topic,
        theirs.payload,
        theirs.qos,
        theirs.mid,
        theirs.retain,
        theirs.dup,
    )
    assert ours.payload == payload


def test_malformed_publish_is_left_to_paho() -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever paho raises, we do not swallow it
        receive(_Client, 0x32, bytearray(b"\x00"))


@settings(max_examples=50, deadline=None)
@given(mids=st.lists(st.integers(1, 65535), max_size=40))
def test_coalesced_pubacks_are_the_bytes_paho_sends_one_by_one(mids: list[int]) -> None:
    ours = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    theirs = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    ours.puback_many(mids)  # no socket: the packets stay queued
    for mid in mids:
        theirs.ack(mid, 1)
    assert b"".join(p["packet"] for p in ours._out_packet) == b"".join(p["packet"] for p in theirs._out_packet)
    assert len(ours._out_packet) == (1 if mids else 0)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=100, deadline=None)
@given(
    topic=st.text(min_size=1, max_size=40).map(str.encode) | st.binary(min_size=1, max_size=10),
    mid=st.integers(1, 65535),
    qos=st.sampled_from([0, 1]),
    properties=st.sampled_from([b"", b"\x01\x01"]),
    payload=st.binary(max_size=300),
)
def test_direct_delivery_matches_paho(topic: bytes, mid: int, qos: int, properties: bytes, payload: bytes) -> None:
    """With ``deliver`` set (MqttClient), a message reaches it or on_message, the same as paho decodes it."""
    header, body = publish_packet(topic, mid, qos, properties, payload)
    theirs = receive(paho.Client, header, bytearray(body))
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    delivered: list[tuple[str, bytes, int, int]] = []
    fallback: list[paho.MQTTMessage] = []
    client.deliver = lambda *args: delivered.append(args)
    client.on_message = lambda c, u, m: fallback.append(m)
    client._in_packet["command"] = header
    client._in_packet["packet"] = bytearray(body)
    client._handle_publish()
    if delivered:
        assert not fallback
        assert delivered == [(theirs.topic, theirs.payload, theirs.qos, theirs.mid)]
    else:  # properties or a topic that is not UTF-8: paho's own path
        assert properties or not is_utf8(topic)
        assert [(m._topic, m.payload, m.mid) for m in fallback] == [(theirs._topic, theirs.payload, theirs.mid)]


class ChunkedSocket:
    """A non-blocking socket whose peer wrote ``chunks``: each ``recv`` returns from one chunk at most."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = [chunk for chunk in chunks if chunk]
        self.calls = 0

    def recv(self, size: int) -> bytes:
        self.calls += 1
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks[0]
        self.chunks[0] = chunk[size:]
        if not self.chunks[0]:
            self.chunks.pop(0)
        return chunk[:size]

    def pending(self) -> int:
        """Bytes the peer wrote that were not read yet (what ``mqtt._has_more`` asks a TLS socket)."""
        return sum(map(len, self.chunks))

    def close(self) -> None:
        pass


def variable_byte_integer(value: int) -> bytes:
    """MQTT's encoding of a remaining length: 7 bits a byte, least significant first, 0x80 = more."""
    digits = bytearray()
    while True:
        value, digit = divmod(value, 128)
        digits.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(digits)


def encoded(header: int, body: bytes) -> bytes:
    return bytes([header]) + variable_byte_integer(len(body)) + body


PINGRESP = b"\xd0\x00"


@contextlib.contextmanager
def subscriber(sock: ChunkedSocket) -> Iterator[MqttClient]:
    """A gateway's client whose connection is ``sock``, on the running loop."""
    client = MqttClient("mqtt://127.0.0.1:1", "test", manual_ack=True)
    client._loop = asyncio.get_running_loop()
    client._sock = client._client._sock = cast(Any, sock)
    try:
        yield client
    finally:
        client._loop = None  # paho closes its socket when collected, after the loop


Packet = tuple[str, int, int]  # (kind, payload size, mid): a PUBLISH with or without properties, or a PINGRESP


def stream_of(packets: list[Packet]) -> tuple[bytes, list[tuple[str, bytes, int]]]:
    """The bytes of ``packets`` and the messages they hold, in order."""
    stream, expected = [], []
    for kind, size, mid in packets:
        if kind == "ping":
            stream.append(PINGRESP)
            continue
        topic, payload = f"lift/v1/T{mid}/telemetry", random.Random(mid).randbytes(size)
        properties = b"\x01\x01" if kind == "properties" else b""
        stream.append(encoded(*publish_packet(topic.encode(), mid, 1, properties, payload)))
        expected.append((topic, payload, mid))
    return b"".join(stream), expected


@settings(max_examples=60, deadline=None)
@given(
    packets=st.lists(
        st.tuples(
            st.sampled_from(["plain", "plain", "plain", "properties", "ping"]),
            st.integers(0, 300) | st.integers(60_000, 140_000),
            st.integers(1, 65535),
        ),
        min_size=1,
        max_size=30,
    ),
    cuts=st.lists(st.integers(1, 200_000), max_size=10),
)
def test_every_packet_is_received_in_order_whatever_the_segments(packets: list[Packet], cuts: list[int]) -> None:
    """Reads go through a buffer filled a socket read at a time, and the PUBLISH packets wholly in
    it are delivered without paho's reads: every message reaches the inbox whole and in order
    however the stream was segmented, beside the packets paho handles (properties, PINGRESP),
    including packets larger than a read."""
    stream, expected = stream_of(packets)
    bounds = sorted({0, len(stream), *(cut % len(stream) for cut in cuts)})
    sock = ChunkedSocket([stream[a:b] for a, b in pairwise(bounds)])

    async def receive() -> list[tuple[str, bytes, int]]:
        with subscriber(sock) as client:
            events = 4 * len(bounds) + 10  # a mis-framed stream stops paho reading: fail, do not hang
            while sock.chunks and events:  # one readable event per segment that arrived
                client._on_readable()
                await asyncio.sleep(0)
                events -= 1
            assert not sock.chunks, "the stream was not read to its end"
            return [(m.topic, m.payload, m.mid) for m in client._inbox]

    assert asyncio.run(receive()) == expected
    assert sock.calls <= 2 * len(bounds) + sum(size // 65536 + 2 for _, size, _ in packets)


async def test_what_one_readable_event_left_buffered_is_read_without_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt, "READ_BURST", 3)
    stream, expected = stream_of([("plain", 10, mid) for mid in range(1, 11)])
    with subscriber(ChunkedSocket([stream])) as client:
        client._on_readable()  # the socket is not readable again: its bytes are all in the buffer
        for _ in range(10):
            await asyncio.sleep(0)
        assert [(m.topic, m.payload, m.mid) for m in client._inbox] == expected


async def test_a_flood_keeps_one_resume_pending_and_each_pass_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a steady flood the socket's readable events come on top of the resume scheduled for
    bytes already buffered: still one resume at a time, so a loop pass reads at most a few bursts
    and the rest of the loop (Kafka senders, PUBACKs) runs between them."""
    monkeypatch.setattr(mqtt, "READ_BURST", 3)
    stream, expected = stream_of([("plain", 10, mid) for mid in range(1, 61)])
    with subscriber(ChunkedSocket([stream])) as client:
        scheduled: list[Callable[[], None]] = []

        class Loop:  # what the client schedules, kept instead of run
            def call_soon(self, callback: Callable[[], None]) -> None:
                scheduled.append(callback)

        client._loop = cast(Any, Loop())
        for _ in range(5):  # readable events of a socket that keeps receiving
            client._on_readable()
        assert len(scheduled) == 1
        while scheduled:
            scheduled.pop(0)()
            client._on_readable()
            assert len(scheduled) <= 1
        assert [(m.topic, m.payload, m.mid) for m in client._inbox] == expected


def test_bytes_buffered_from_a_closed_socket_are_not_read_from_the_next() -> None:
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    client._sock = cast(Any, ChunkedSocket([b"old bytes"]))
    assert client._sock_recv(1) == b"o" and client.buffered()
    client._sock = cast(Any, ChunkedSocket([b"new"]))
    assert not client.buffered() and client._sock_recv(3) == b"new"


def test_publishes_wholly_read_are_delivered_without_pahos_read() -> None:
    stream, expected = stream_of([("plain", 10, mid) for mid in range(1, 6)] + [("properties", 10, 6)])
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    delivered: list[tuple[str, bytes, int]] = []
    client.deliver = lambda topic, payload, qos, mid: delivered.append((topic, payload, mid))
    client._sock = cast(Any, ChunkedSocket([stream]))
    client.loop_read()  # paho reads the first packet, and the socket's bytes into the buffer
    assert client.deliver_buffered(2) == 2 and client.deliver_buffered(100) == 2  # not the one with properties
    assert delivered == expected[:5] and client.buffered()


@settings(max_examples=200, deadline=None)
@given(prefix=st.integers(0, 3), garbage=st.binary(max_size=64), limit=st.integers(0, 10))
def test_delivering_from_the_buffer_stops_at_what_it_cannot_read(prefix: int, garbage: bytes, limit: int) -> None:
    """Whatever follows, it never raises, and it delivers only the packets before it (paho's read
    reports the rest)."""
    stream, expected = stream_of([("plain", 5, mid) for mid in range(1, prefix + 1)])
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    delivered: list[tuple[str, bytes, int]] = []
    client.deliver = lambda topic, payload, qos, mid: delivered.append((topic, payload, mid))
    client._sock = cast(Any, ChunkedSocket([]))
    client._buffer, client._buffered_sock = stream + garbage, client._sock
    count = client.deliver_buffered(limit)
    assert count <= limit and delivered[: min(prefix, limit)] == expected[:limit]
    assert client._taken <= len(stream + garbage)


@settings(max_examples=50, deadline=None)
@given(qos=st.lists(st.sampled_from([0, 1, 1, 1, 2]), max_size=20))
def test_acknowledging_many_sends_what_acknowledging_each_sends_in_order(qos: list[int]) -> None:
    ours = MqttClient("mqtt://127.0.0.1:1", "ours", manual_ack=True)
    theirs = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    messages = [InboundMessage("t", b"", level, mid, ours) for mid, level in enumerate(qos, 1)]
    ours.ack_many(iter(messages))  # any iterable
    for message in messages:
        theirs.ack(message.mid, message.qos)
    assert b"".join(p["packet"] for p in ours._client._out_packet) == b"".join(p["packet"] for p in theirs._out_packet)


def buffered_client(data: bytes, manual_ack: bool = True) -> tuple[_Client, list[tuple[str, bytes, int, int]]]:
    """A client whose read buffer holds ``data`` (read from its current socket), and what it delivers."""
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=manual_ack)
    delivered: list[tuple[str, bytes, int, int]] = []
    client.deliver = lambda topic, payload, qos, mid: delivered.append((topic, bytes(payload), qos, mid))
    client.on_socket_register_write = lambda *args: None  # queued packets stay queued, to be compared
    client._sock = cast(Any, ChunkedSocket([]))
    client._buffer, client._buffered_sock = data, client._sock
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    return client, delivered


def queued(client: paho.Client) -> bytes:
    return b"".join(p["packet"] for p in client._out_packet)


def test_bytes_buffered_from_a_closed_socket_are_not_delivered_to_the_next_session() -> None:
    stream, _ = stream_of([("plain", 10, mid) for mid in range(1, 4)])
    client, delivered = buffered_client(b"")
    client._sock = cast(Any, ChunkedSocket([stream]))
    client.loop_read()  # paho reads the first packet; the other two wait in the buffer
    assert client.buffered() and len(delivered) == 1
    client._sock = cast(Any, ChunkedSocket([]))  # reconnected: a new session on a new socket
    assert client.deliver_buffered(100) == 0 and len(delivered) == 1


def test_an_auto_ack_client_sends_the_pubacks_paho_sends_in_receive_order() -> None:
    """Without manual_ack, QoS 1 messages are acknowledged as received, by paho's read and from the
    buffer alike; QoS 0 messages are not."""
    mids_and_qos = [(7, 1), (1, 0), (65535, 1), (300, 1), (2, 0), (1, 1)]
    stream = b"".join(
        encoded(*publish_packet(b"lift/v1/T1/telemetry", mid, qos, b"", b"x" * (mid % 50))) for mid, qos in mids_and_qos
    )
    ours, delivered = buffered_client(b"", manual_ack=False)
    ours._sock = cast(Any, ChunkedSocket([stream]))
    ours.loop_read()
    assert ours.deliver_buffered(100) == len(mids_and_qos) - 1
    theirs = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=False)
    theirs.on_socket_register_write = lambda *args: None
    sock = ChunkedSocket([stream])
    theirs._sock, theirs._state = cast(Any, sock), paho._ConnectionState.MQTT_CS_CONNECTED
    while sock.chunks:
        theirs.loop_read()
    assert [(qos, mid) for _, _, qos, mid in delivered] == [(qos, mid if qos else 0) for mid, qos in mids_and_qos]
    assert queued(ours) == queued(theirs) == b"".join(struct.pack("!BBH", 0x40, 2, mid) for mid in (7, 65535, 300, 1))


@pytest.mark.parametrize("length", [127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_remaining_lengths_of_every_size_are_read_from_the_buffer(length: int) -> None:
    """Lengths of one to four bytes, their boundaries included (128 is 0x80 0x01: a 0x80 byte goes on)."""
    header, body = publish_packet(b"t", 9, 1, b"", b"p" * (length - 6))
    assert len(body) == length
    client, delivered = buffered_client(encoded(header, bytes(body)) + PINGRESP)
    assert client.deliver_buffered(10) == 1 and delivered == [("t", b"p" * (length - 6), 1, 9)]


def test_a_remaining_length_padded_with_0x80_bytes_is_read_as_paho_reads_it() -> None:
    header, body = publish_packet(b"t", 9, 1, b"", b"abc")  # 9 bytes, written as 0x89 0x80 0x00
    client, delivered = buffered_client(bytes([header, 0x89, 0x80, 0x00]) + bytes(body))
    assert client.deliver_buffered(10) == 1 and delivered == [("t", b"abc", 1, 9)]


def malformed_publish(kind: str) -> bytes:
    header, body = publish_packet(b"t", 9, 1, b"", b"abc")  # 9 bytes
    if kind == "five-byte length":
        return bytes([header, 0x89, 0x80, 0x80, 0x80, 0x00]) + bytes(body)
    return encoded(header | 0x06, bytes(body))  # both QoS bits set (MQTT-3.3.1-4)


@pytest.mark.parametrize("kind", ["five-byte length", "QoS 3"])
def test_a_malformed_publish_is_left_to_paho_which_refuses_it(kind: str) -> None:
    plain = encoded(*publish_packet(b"t", 8, 1, b"", b"ok"))
    client, delivered = buffered_client(plain + malformed_publish(kind))
    assert client.deliver_buffered(10) == 1 and delivered == [("t", b"ok", 1, 8)]
    assert client.loop_read() == paho.MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert len(delivered) == 1


def test_a_publish_with_an_empty_topic_is_left_to_paho() -> None:
    """An empty topic stands for a topic alias, which only paho's decoder (properties) knows of."""
    header, body = publish_packet(b"", 9, 1, b"", b"abc")
    client, delivered = buffered_client(encoded(header, bytes(body)))
    fallback: list[paho.MQTTMessage] = []
    client.on_message = lambda c, u, m: fallback.append(m)
    assert client.deliver_buffered(10) == 0
    client._in_packet["command"] = header
    client._in_packet["packet"] = body
    client._handle_publish()
    assert not delivered and [(m._topic, m.payload, m.mid) for m in fallback] == [(b"", b"abc", 9)]


def test_delivering_from_the_buffer_counts_as_hearing_from_the_broker() -> None:
    """paho's keep-alive looks at the time bytes were last received: messages taken from the buffer count."""
    stream, _ = stream_of([("plain", 10, 1)])
    client, _ = buffered_client(stream)
    client._last_bytes_received = 0.0
    assert client.deliver_buffered(10) == 1 and client._last_bytes_received > 0


class NoLoop:
    """Stands in for the asyncio loop: keeps the resumes ``_on_readable`` schedules, drops the rest
    (socket (un)registration: packets to send stay queued, to be compared)."""

    def __init__(self) -> None:
        self.resumes: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.resumes.append(callback)

    def call_soon_threadsafe(self, callback: Callable[..., None], *args: object) -> None:
        pass


Received = tuple[str | None, bytes, int, int]  # topic (None if not UTF-8), payload, QoS, packet id


def read_by_paho(stream: bytes, manual_ack: bool) -> tuple[list[Received], bytes, bool]:
    """What plain paho delivers and queues to send for ``stream``, and whether it dropped the connection."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=manual_ack)
    got: list[Received] = []
    client.on_message = lambda c, u, m: got.append(
        (m._topic.decode() if is_utf8(m._topic) else None, m.payload, m.qos, m.mid)
    )
    client.on_socket_register_write = lambda *args: None
    sock = ChunkedSocket([stream])
    client._sock = cast(Any, sock)
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    while sock.chunks and client.loop_read() == paho.MQTTErrorCode.MQTT_ERR_SUCCESS:
        pass
    return got, queued(client), client._sock is None


def read_by_ours(chunks: list[bytes], manual_ack: bool) -> tuple[list[Received], bytes, bool]:
    """The same for a gateway's MqttClient reading ``chunks`` one readable event at a time."""
    client = MqttClient("mqtt://127.0.0.1:1", "ours", manual_ack=manual_ack)
    loop = NoLoop()
    client._loop = cast(Any, loop)
    client._closing = True  # a dropped connection is not reconnected
    sock = ChunkedSocket(chunks)
    client._sock = client._client._sock = cast(Any, sock)
    client._client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    for _ in range(10_000):
        if client._sock is None:
            break
        if loop.resumes:
            loop.resumes.pop(0)()
        elif sock.chunks:
            client._on_readable()
        else:
            break
    else:
        raise AssertionError("the stream was not read to its end")
    got: list[Received] = [
        (None if m.topic.startswith("<invalid utf-8 topic") else m.topic, m.payload, m.qos, m.mid)
        for m in client._inbox
    ]
    client._loop = None
    return got, queued(client._client), client._sock is None


def remaining_length(size: int, padding: int) -> bytes:
    """``size`` as MQTT's variable byte integer, with ``padding`` more bytes of 0 (0x80 ... 0x00):
    allowed up to four bytes in all, malformed beyond."""
    digits = bytearray(variable_byte_integer(size))
    if padding:
        digits[-1] |= 0x80
        digits += b"\x80" * (padding - 1) + b"\x00"
    return bytes(digits)


TOPICS = {
    "plain": (b"lift/v1/T1/telemetry", b""),
    "properties": (b"lift/v1/T1/telemetry", b"\x01\x01"),
    "alias": (b"", b"\x23\x00\x01"),
    "empty topic": (b"", b""),
    "not utf-8": (b"\xff\xfe", b""),
    "one letter": (b"x", b""),
}


@st.composite
def packets(draw: st.DrawFn, malformed: bool = False) -> bytes:
    """One packet a broker may send a subscriber: PUBLISH of QoS 0, 1 and 2 with dup and retain
    flags, topics of every shape, payloads that look like packets, lengths padded (0x80 ... 0x00,
    as paho reads them); PINGRESP, PUBREL. ``malformed``: a PUBLISH with both QoS bits set or a
    remaining length of five bytes, which paho refuses (it drops the connection)."""
    kind = "publish" if malformed else draw(st.sampled_from(["publish"] * 8 + ["pingresp", "pubrel"]))
    mid = draw(st.integers(1, 65535))
    if kind == "pingresp":
        return PINGRESP
    if kind == "pubrel":
        return b"\x62\x02" + struct.pack("!H", mid)
    five_bytes = malformed and draw(st.booleans())
    qos = 3 if malformed and not five_bytes else draw(st.sampled_from([0, 1, 2]))
    flags = (draw(st.booleans()) and qos > 0) << 3 | draw(st.booleans())
    topic, properties = TOPICS[draw(st.sampled_from(sorted(TOPICS)))]
    size = draw(st.integers(0, 60) | st.sampled_from([125, 126, 16_380, 70_000]))
    fill = draw(st.sampled_from([b"\x00", b"\x30\x82\x00", b"\x00\x07\x00lift"]))  # mis-framed reads fail
    payload = (fill * (size // len(fill) + 1))[:size]
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    body += bytes([len(properties)]) + properties + payload
    length = variable_byte_integer(len(body))
    padding = 5 - len(length) if five_bytes else draw(st.sampled_from([0, 0, 0, 0, 4 - len(length)]))
    return bytes([0x30 | qos << 1 | flags]) + remaining_length(len(body), padding) + body


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Well-formed packets, and in about one stream out of two a malformed one among them."""
    stream = draw(st.lists(packets(), min_size=1, max_size=25))
    if draw(st.booleans()):
        stream.insert(draw(st.integers(0, len(stream))), draw(packets(malformed=True)))
    return b"".join(stream)


@settings(max_examples=150, deadline=None)
@given(stream=streams(), cuts=st.lists(st.integers(0, 200_000), max_size=8), manual_ack=st.booleans())
def test_a_gateway_client_receives_and_acknowledges_any_stream_as_paho_does(
    stream: bytes, cuts: list[int], manual_ack: bool
) -> None:
    """Differential: whatever the broker sends, however it is segmented, the buffered reads and the
    fast path deliver the messages paho delivers (QoS 2 on PUBREL), queue the packets paho queues
    (PUBACK, PUBREC, PUBCOMP) and drop the connection where paho does (malformed packets)."""
    bounds = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    assert read_by_ours([stream[a:b] for a, b in pairwise(bounds)], manual_ack) == read_by_paho(stream, manual_ack)
