"""core/mqtt.py decodes common packets itself: it must agree with paho on every PUBLISH shape."""

from __future__ import annotations

import random
import struct
from itertools import pairwise
from typing import Any, cast

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.mqtt import _Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode


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

    def close(self) -> None:
        pass


def encoded(header: int, body: bytes) -> bytes:
    length, size = bytearray(), len(body)
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([header]) + bytes(length) + body


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300) | st.integers(60_000, 140_000), min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 200_000), max_size=10),
)
def test_buffered_reads_deliver_every_packet_whatever_the_segments(sizes: list[int], cuts: list[int]) -> None:
    """paho reads through a buffer filled a socket read at a time: the packets reach ``deliver``
    whole and in order however the stream was segmented, including packets larger than a read."""
    payloads = [random.Random(mid).randbytes(size) for mid, size in enumerate(sizes)]
    stream = b"".join(
        encoded(*publish_packet(b"lift/v1/T1/telemetry", mid, 1, b"", payload))
        for mid, payload in enumerate(payloads, 1)
    )
    bounds = sorted({0, len(stream), *(cut % len(stream) for cut in cuts)})
    sock = ChunkedSocket([stream[a:b] for a, b in pairwise(bounds)])
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    delivered: list[tuple[bytes, int]] = []
    client.deliver = lambda topic, payload, qos, mid: delivered.append((payload, mid))
    client._sock = cast(Any, sock)
    while sock.chunks or client.buffered():  # what MqttClient does on a readable socket
        assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert delivered == [(payload, mid) for mid, payload in enumerate(payloads, 1)]
    assert sock.calls <= len(bounds) + sum(len(p) // 65536 + 2 for p in payloads)


def test_bytes_buffered_from_a_closed_socket_are_not_read_from_the_next() -> None:
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    client._sock = cast(Any, ChunkedSocket([b"old bytes"]))
    assert client._sock_recv(1) == b"o" and client.buffered()
    client._sock = cast(Any, ChunkedSocket([b"new"]))
    assert not client.buffered() and client._sock_recv(3) == b"new"
