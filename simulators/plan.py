"""Publish a prepared plan of MQTT messages from a process of its own, each at its wall-clock offset.

The system tests and ``bench/detection.py`` run the whole platform in their own asyncio loop; a
publisher sharing that loop (and its GIL) would offer only what the platform leaves it, so the
burst a district's terminals upload after an outage is published from here instead: a separate
process reading a plan (msgpack, see :func:`write_plan`), publishing with QoS 1 as fast as the
broker acknowledges (``at_s`` 0) or paced (``at_s`` > 0, seconds after the start), in plan order.

It speaks the few MQTT 5 packets a QoS 1 publisher needs (CONNECT, PUBLISH, PUBACK, DISCONNECT)
on a plain socket instead of going through :mod:`liftwatch.mqtt`: paho spends ~70 µs of CPU per
publish, which on a 2-core machine shared with the platform capped the offered rate near 4,000
messages/s; pre-encoded packets written in blocks offer what the broker can take. It honours the
broker's Receive Maximum and fails on any PUBACK reason code >= 0x80.

A *barrier* entry (empty topic) waits until everything before it is acknowledged, reports on
stdout and waits for a line on stdin: the caller changes the world (a registry patch, a terminal
swap) at a known point of the stream, then lets it go on. Every report is one JSON line::

    {"barrier": 1, "messages": 5120, "total": 5120, "seconds": 0.41, "rate": 12487.8, "peak_offered": 30120.2}

(``rate``: acknowledged messages per second of the section, barrier to barrier; ``peak_offered``:
the fastest burst of at least 500 messages written back to back, in messages per second.)
``python -m liftwatch.simulators.plan URL PLAN`` runs it; ``... plan load ...`` publishes background
load instead (registered cars of the seeded registry at a target rate, see :func:`publish_load`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import struct
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec
from liftwatch.mqtt import BrokerAddress
from liftwatch.schema import Sample
from liftwatch.simulators.fleet import ElevatorSpec
from liftwatch.simulators.specs import generated_registry, specs_from_rows

MAX_IN_FLIGHT = 20_000
"""Publishes awaiting PUBACK before the publisher waits (below the 65,535 packet identifiers)."""
BLOCK = 256
"""Packets written per socket write (and per turn of the loop)."""
CONNECT_TIMEOUT_S = 10.0
MIN_BURST = 500
"""Messages a burst needs for its rate to be reported (a handful written at once says nothing)."""

PlanEntry = tuple[float, str, bytes]
"""(at_s, topic, payload): publish ``payload`` on ``topic`` no earlier than ``at_s`` after the start;
an empty topic is a barrier."""

BARRIER: PlanEntry = (0.0, "", b"")


def write_plan(path: Path, entries: Iterable[PlanEntry]) -> None:
    """Write a plan file for :func:`publish_plan`."""
    path.write_bytes(msgspec.msgpack.encode(list(entries)))


def read_plan(path: Path) -> list[PlanEntry]:
    return [(float(at), str(topic), bytes(payload)) for at, topic, payload in msgspec.msgpack.decode(path.read_bytes())]


# --- the MQTT 5 packets of a QoS 1 publisher ------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_packet(client_id: str, keepalive_s: int = 60) -> bytes:
    body = _string("MQTT") + bytes([5, 0x02]) + struct.pack("!H", keepalive_s) + b"\x00" + _string(client_id)
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """A QoS 1 PUBLISH without properties."""
    body_len = 2 + len(topic) + 2 + 1 + len(payload)
    return (
        b"\x32" + _varint(body_len) + struct.pack("!H", len(topic)) + topic + struct.pack("!HB", packet_id, 0) + payload
    )


class PublishRefused(Exception):
    """The broker refused the connection or a message (reason code >= 0x80)."""


class _Publisher:
    """One QoS 1 connection: ``publish`` writes, a reader task counts PUBACKs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, receive_maximum: int) -> None:
        self.reader, self.writer = reader, writer
        self.limit = min(MAX_IN_FLIGHT, receive_maximum)
        self.in_flight: set[int] = set()
        self.next_id = 0
        self.changed = asyncio.Event()
        self.error: Exception | None = None
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, client_id: str) -> _Publisher:
        address = BrokerAddress.parse(url)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port), CONNECT_TIMEOUT_S)
        writer.write(connect_packet(client_id))
        kind, body = await asyncio.wait_for(_read_packet(reader), CONNECT_TIMEOUT_S)
        if kind != 0x20 or body[1] >= 0x80:
            raise PublishRefused(f"CONNECT refused: packet {kind:#x}, reason {body[1:2].hex()}")
        return cls(reader, writer, _receive_maximum(body))

    def publish_many(self, packets: list[tuple[bytes, bytes]]) -> None:
        """Write QoS 1 PUBLISHes of (topic, payload); the caller keeps below ``limit`` in flight."""
        out = []
        for topic, payload in packets:
            self.next_id = self.next_id % 65535 + 1
            assert self.next_id not in self.in_flight, "packet identifier still in flight"
            self.in_flight.add(self.next_id)
            out.append(publish_packet(topic, self.next_id, payload))
        self.writer.write(b"".join(out))

    async def wait_below(self, limit: int) -> None:
        while len(self.in_flight) >= limit:
            if self.error is not None:
                raise self.error
            self.changed.clear()
            await self.changed.wait()
        if self.error is not None:
            raise self.error

    async def _read(self) -> None:
        try:
            while True:
                kind, body = await _read_packet(self.reader)
                if kind == 0x40:
                    (packet_id,) = struct.unpack_from("!H", body)
                    if len(body) > 2 and body[2] >= 0x80:
                        raise PublishRefused(f"PUBACK {packet_id}: reason {body[2]:#x}")
                    self.in_flight.discard(packet_id)
                    self.changed.set()
                elif kind == 0xE0:
                    raise PublishRefused(f"DISCONNECT from the broker: {body.hex()}")
        except (PublishRefused, asyncio.IncompleteReadError, ConnectionError) as error:
            self.error = error
            self.changed.set()

    async def close(self) -> None:
        self.task.cancel()
        self.writer.write(b"\xe0\x00")
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        self.writer.close()


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        digit = (await reader.readexactly(1))[0]
        length |= (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            break
    return first & 0xF0, await reader.readexactly(length)


def _receive_maximum(connack: bytes) -> int:
    """The broker's Receive Maximum property (0x21) of a CONNACK body, 65,535 when absent."""
    pos, length, shift = 2, 0, 0
    while pos < len(connack):
        digit = connack[pos]
        pos += 1
        length |= (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            break
    end = pos + length
    while pos < end:
        prop = connack[pos]
        pos += 1
        if prop == 0x21:
            return int(struct.unpack_from("!H", connack, pos)[0])
        # Skip the other CONNACK properties by their type.
        if prop in (0x24, 0x25, 0x28, 0x29, 0x2A):  # byte
            pos += 1
        elif prop in (0x13, 0x22):  # two-byte integer
            pos += 2
        elif prop in (0x11, 0x27):  # four-byte integer
            pos += 4
        elif prop == 0x26:  # user property: two strings
            for _ in range(2):
                (n,) = struct.unpack_from("!H", connack, pos)
                pos += 2 + n
        else:  # strings / binary data (0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F)
            (n,) = struct.unpack_from("!H", connack, pos)
            pos += 2 + n
    return 65_535


# --- the plan -------------------------------------------------------------------------------------


async def publish_plan(url: str, plan: list[PlanEntry], client_id: str) -> None:
    """Publish the plan, reporting (stdout) at every barrier and at the end."""
    publisher = await _Publisher.connect(url, client_id)
    loop = asyncio.get_running_loop()
    try:
        started = time.monotonic()
        section_start, section_messages, total, barriers = started, 0, 0, 0
        last_write = started

        # A burst: blocks written back to back, without waiting for their time; its offered rate
        # is its messages over the time from its first to its last write.
        burst_start, burst_messages, peak = started, 0, 0.0

        def end_burst() -> None:
            nonlocal peak
            if burst_messages >= MIN_BURST:
                peak = max(peak, burst_messages / max(last_write - burst_start, 1e-9))

        def report(**extra: object) -> None:
            end_burst()
            seconds = time.monotonic() - section_start
            line = {"messages": section_messages, "total": total, "seconds": round(seconds, 3)}
            line |= {"rate": round(section_messages / max(seconds, 1e-9), 1), "peak_offered": round(peak, 1)}
            print(json.dumps({**line, **extra}), flush=True)

        i = 0
        while i < len(plan):
            at_s, topic, _ = plan[i]
            if not topic:
                await publisher.wait_below(1)
                barriers += 1
                report(barrier=barriers)
                await loop.run_in_executor(None, sys.stdin.readline)
                section_start, section_messages, peak = time.monotonic(), 0, 0.0
                started, i = section_start, i + 1  # offsets count from the end of a barrier
                burst_start, burst_messages = started, 0
                continue
            delay = started + at_s - time.monotonic()
            if delay > 0:
                end_burst()
                await asyncio.sleep(delay)
                burst_start, burst_messages = time.monotonic(), 0
            # A block of entries due by now, up to the next barrier.
            now = time.monotonic() - started
            j = i
            while j < len(plan) and j - i < BLOCK and plan[j][1] and plan[j][0] <= now:
                j += 1
            j = max(j, i + 1)
            await publisher.wait_below(publisher.limit - (j - i) + 1)
            publisher.publish_many([(t.encode(), p) for _, t, p in plan[i:j]])
            await publisher.writer.drain()
            last_write = time.monotonic()
            section_messages += j - i
            burst_messages += j - i
            total += j - i
            i = j
        await publisher.wait_below(1)
        report(done=True)
    finally:
        await publisher.close()


# --- background load -------------------------------------------------------------------------------


LOAD_BATCH = 10
"""Samples per background message, unless told otherwise."""
LOAD_PERIOD_MS = 500
"""Sample period of a background car (2 Hz, event time)."""


def _load_template(spec: ElevatorSpec, topic_root: str, batch: int) -> tuple[bytes, str]:
    """The topic and a ``%``-template of one message of ``batch`` samples of a car standing at its
    lowest landing (doors shut, empty): ``template % (seq, ts_1, ..., ts_batch)``."""
    idle = Sample(
        ts=0,
        mode="normal",
        floor=spec.bottom_floor,
        door_zone=True,
        direction="stop",
        speed=0.0,
        door="closed",
        occupied=False,
        safety_circuit=True,
        door_lock=True,
    )
    sample = msgspec.json.encode(idle).decode().replace('"ts":0', '"ts":%d', 1)
    head = msgspec.json.encode({"v": 1, "terminal": spec.terminal_id}).decode()[:-1]
    template = head + ',"seq":%d,"samples":[' + ",".join([sample] * batch) + "]}"
    return f"{topic_root}lift/v1/{spec.terminal_id}/telemetry".encode(), template


async def publish_load(
    url: str, specs: list[ElevatorSpec], rate: float, seconds: float, topic_root: str, batch: int = LOAD_BATCH
) -> None:
    """``rate`` messages/s of ``batch`` samples for ``seconds`` wall seconds, round after round
    over ``specs`` (every car one message a round, its event time compressed to fit; the newest
    samples about now); reports once connected (``{"ready": true}``: publishing starts) and when done, each report
    with the CPU seconds the process has used (``cpu_s``).

    The cars stand idle: the platform's cost per sample (decode, Kafka, COPY, the vectorized rules)
    does not depend on what the sample says, and formatting a template costs ~3 µs a message where
    the fleet simulator and a msgspec encode cost ~22 µs, too much for 10,000 messages/s on 2
    cores shared with the platform under test.
    """
    templates = [_load_template(spec, topic_root, batch) for spec in specs]
    round_s = len(specs) / rate
    rounds = max(1, math.ceil(seconds / round_s))
    span_ms = rounds * batch * LOAD_PERIOD_MS
    first_ms = int(time.time() * 1000) - span_ms
    publisher = await _Publisher.connect(url, f"load-{time.monotonic_ns()}")
    print(json.dumps({"ready": True, "cpu_s": time.process_time()}), flush=True)
    try:
        started = time.monotonic()
        messages = 0
        for k in range(rounds):
            base = first_ms + k * batch * LOAD_PERIOD_MS
            stamps = tuple(base + j * LOAD_PERIOD_MS for j in range(batch))
            for i in range(0, len(templates), BLOCK):
                delay = started + (k * len(specs) + i) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                block = [(topic, (template % (k, *stamps)).encode()) for topic, template in templates[i : i + BLOCK]]
                await publisher.wait_below(publisher.limit - len(block) + 1)
                publisher.publish_many(block)
                await publisher.writer.drain()
                messages += len(block)
        await publisher.wait_below(1)
        seconds_taken = time.monotonic() - started
        done = {"done": True, "messages": messages, "rate": round(messages / seconds_taken, 1)}
        print(json.dumps(done | {"cpu_s": time.process_time()}), flush=True)
    finally:
        await publisher.close()


def main(argv: list[str]) -> None:
    """``URL PLAN`` publishes a plan; ``load URL RATE SECONDS ELEVATORS FIRST COUNT SEED [TOPIC_ROOT [BATCH]]``
    publishes background load from cars FIRST..FIRST+COUNT of the seeded registry of ELEVATORS rows,
    BATCH samples a message (default ``LOAD_BATCH``)."""
    if argv[0] == "load":
        url, rate, seconds, elevators, first, count, seed = argv[1:8]
        root = argv[8] if len(argv) > 8 else ""
        batch = int(argv[9]) if len(argv) > 9 else LOAD_BATCH
        specs = specs_from_rows(generated_registry(int(elevators), int(seed)))[int(first) : int(first) + int(count)]
        asyncio.run(publish_load(url, specs, float(rate), float(seconds), root, batch))
        return
    url, path = argv[0], Path(argv[1])
    asyncio.run(publish_plan(url, read_plan(path), f"plan-{path.stem}-{time.monotonic_ns()}"))


if __name__ == "__main__":
    main(sys.argv[1:])
