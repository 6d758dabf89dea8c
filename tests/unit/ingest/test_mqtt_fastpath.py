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


def encoded(header: int, body: bytes) -> bytes:
    length, size = bytearray(), len(body)
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([header]) + bytes(length) + body


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
