"""Fuzz the MQTT decoders: hostile payloads and topics through the gateway's message handler.

The long run of the property test ``tests/unit/ingest/test_handling.py::test_no_input_makes_the_handler_raise``
(300 cases in CI). A seeded mutational fuzzer, reproducible by ``--seed``, feeds
:meth:`liftwatch.ingest.handling.MessageHandler.handle` (JSON decode, schema, time limits, sequence
tracking, encoding of the Kafka records) with:

* valid telemetry and status payloads with bytes flipped, inserted, deleted, truncated or repeated;
* JSON documents whose structure is mutated: fields dropped, retyped, duplicated, nested deeply,
  numbers at the edges of their types, strings with NUL, lone surrogates and invalid UTF-8;
* random bytes, and random or hostile topics (wrong root, wrong kind, terminal ids that the
  topic and the payload disagree on, NULs, very long).

Every case must: not raise; produce only ``telemetry``, ``status`` or ``deadletter`` records that
decode; give every refusal a dead letter that names its reason and keeps the payload (cut at
4 KiB); and count each dead letter in ``liftwatch_dead_letters_total{reason}``. The script prints
the number of cases tried, the outcome counts per reason, the rate, and the first failures.

    .venv/bin/python bench/fuzz_mqtt.py                    # 100,000 cases
    .venv/bin/python bench/fuzz_mqtt.py --cases 1000000 --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections import Counter
from typing import Any

from liftwatch.badinput import BadInputPolicy
from liftwatch.ingest.contract import TimeLimits
from liftwatch.ingest.handling import HandlerConfig, MessageHandler, OutTelemetry
from liftwatch.ingest.metrics import GatewayMetrics
from liftwatch.ingest.sequence import SequenceTracker
from liftwatch.schema import decode_dead_letter, decode_status_record, decode_telemetry_record, encode_record
from prometheus_client import CollectorRegistry

NOW = 1_790_000_000_000
SAMPLE: dict[str, Any] = {
    "ts": NOW - 1000,
    "mode": "normal",
    "floor": 3,
    "door_zone": True,
    "direction": "stop",
    "speed": 0.0,
    "door": "closed",
    "occupied": False,
    "safety_circuit": True,
    "door_lock": True,
    "alarm_button": False,
    "power": True,
    "load_pct": 12.5,
    "limit_up": False,
    "limit_down": False,
}
EDGE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**63 - 1,
    -(2**63),
    2**64,
    10**30,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    0.5,
    "",
    "normal",
    "\x00",
    "\ud800",
    "\u202e",
    "x" * 5000,
    [],
    {},
    [1, 2],
    {"a": 1},
]
TOPICS = [
    "lift/v1/{t}/telemetry",
    "lift/v1/{t}/status",
    "lift/v1/{t}/other",
    "lift/v2/{t}/telemetry",
    "lift/v1/{t}",
    "lift/v1/{t}/telemetry/extra",
    "other/v1/{t}/telemetry",
    "",
    "lift/v1//telemetry",
]
TERMINALS = ["T1", "T2", "t-3_x", "T\x00", "T 1", "Ü1", "T1\n", "A" * 65, "A" * 64, "+", "#", "../T1"]


def valid_telemetry(rng: random.Random, terminal: str) -> dict[str, Any]:
    count = rng.choice([1, 1, 2, 10, 100, 101])
    start = NOW - rng.choice([0, 1000, 86_400_000, 400 * 86_400_000])
    samples = [{**SAMPLE, "ts": start + 100 * i} for i in range(count)]
    return {"v": 1, "terminal": terminal, "seq": rng.randrange(0, 1 << 20), "samples": samples}


def mutate_structure(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """Replace, drop, retype or duplicate parts of a JSON value."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        value = dict(value)
        key = rng.choice(list(value))
        action = rng.randrange(5)
        if action == 0:
            del value[key]
        elif action == 1:
            value[key] = rng.choice(EDGE_VALUES)
        elif action == 2:
            value[key + rng.choice(["", "_", "\x00", "X"])] = rng.choice(EDGE_VALUES)
        elif action == 3:
            value[key] = mutate_structure(rng, value[key], depth + 1)
        else:
            value[rng.choice(["v", "terminal", "seq", "samples", "extra"])] = rng.choice(EDGE_VALUES)
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        value = list(value)
        i = rng.randrange(len(value))
        action = rng.randrange(4)
        if action == 0:
            value[i] = mutate_structure(rng, value[i], depth + 1)
        elif action == 1:
            del value[i]
        elif action == 2:
            value.extend(value[: rng.randrange(1, 3)] * rng.randrange(1, 60))
        else:
            value[i] = rng.choice(EDGE_VALUES)
        return value
    if depth < 3 and rng.random() < 0.1:
        nested: Any = value
        for _ in range(rng.choice([2, 10, 50])):  # deeper: built as text in case()
            nested = [nested]
        return nested
    return rng.choice(EDGE_VALUES)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data or b"{}")
    for _ in range(rng.randrange(1, 9)):
        action = rng.randrange(6)
        i = rng.randrange(len(buffer)) if buffer else 0
        if action == 0 and buffer:
            buffer[i] = rng.randrange(256)
        elif action == 1:
            buffer[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif action == 2 and buffer:
            del buffer[i : i + rng.randrange(1, 16)]
        elif action == 3:
            buffer = buffer[: rng.randrange(len(buffer) + 1)]
        elif action == 4:
            buffer[i:i] = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\\u0000", b"\\ud800", b"1e999", b"-0"])
        else:
            buffer += buffer[: rng.randrange(len(buffer) + 1)]
    return bytes(buffer)


VALID_TERMINALS = ["T1", "T2", "t-3_x", "A" * 64]


def case(rng: random.Random) -> tuple[str, bytes]:
    # Mostly well-addressed messages, so the payload decoders are what is fuzzed; some hostile topics.
    draw = rng.random()
    if draw < 0.75:
        terminal = rng.choice(VALID_TERMINALS)
        topic = f"lift/v1/{terminal}/telemetry"
    elif draw < 0.85:
        terminal = rng.choice(VALID_TERMINALS)
        topic = f"lift/v1/{terminal}/status"
    elif draw < 0.97:
        terminal = rng.choice(TERMINALS)
        topic = rng.choice(TOPICS).format(t=terminal)
    else:
        terminal = rng.choice(TERMINALS)
        topic = "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 100)))
    payload_terminal = terminal if rng.random() < 0.9 else rng.choice(TERMINALS)
    kind = rng.randrange(10)
    if "status" in topic and kind < 6:
        payload = rng.choice([b"online", b"offline", b"", b"ONLINE", b"\x00", b"online\n", b"x" * 5000])
    elif kind < 4:
        body = valid_telemetry(rng, payload_terminal)
        payload = json.dumps(mutate_structure(rng, body), allow_nan=True).encode("utf-8", "surrogatepass")
    elif kind < 8:
        payload = mutate_bytes(rng, json.dumps(valid_telemetry(rng, payload_terminal)).encode())
    elif kind < 9:
        if rng.random() < 0.5:
            depth = rng.choice([100, 1000, 100_000])
            deep = b"[" * depth + b"]" * depth if rng.random() < 0.5 else b'{"a":' * depth + b"1" + b"}" * depth
            payload = b'{"v":1,"terminal":"' + payload_terminal.encode() + b'","seq":1,"samples":' + deep + b"}"
        else:
            payload = json.dumps(valid_telemetry(rng, payload_terminal)).encode()
    else:
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 700)))
    return topic, payload


DECODERS = {
    "telemetry": decode_telemetry_record,
    "status": decode_status_record,
    "deadletter": decode_dead_letter,
}


def run(cases: int, seed: int) -> int:
    registry = CollectorRegistry()
    policy = BadInputPolicy(registry)
    handler = MessageHandler(
        HandlerConfig(
            topic_root="",
            max_payload_bytes=64 * 1024,
            limits=TimeLimits(max_future_ms=86_400_000, max_age_ms=30 * 86_400_000),
        ),
        policy,
        GatewayMetrics(registry),
        SequenceTracker(64),
    )
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    letters = 0
    started = time.perf_counter()
    for n in range(cases):
        topic, payload = case(rng)
        try:
            out = handler.handle(topic, payload, NOW)
            for record in out:
                # An accepted message leaves the handler unencoded: check that it encodes as a record.
                value = encode_record(record.record) if isinstance(record, OutTelemetry) else record.value
                decoded = DECODERS[record.topic](value)
                if record.topic == "deadletter":
                    letters += 1
                    reason = decoded.reason.value
                    outcomes[f"dead letter: {reason}"] += 1
                    if not reason or decoded.payload != payload[:4096]:
                        failures.append(f"case {n}: dead letter without its reason or payload: {decoded!r}"[:300])
                else:
                    outcomes[record.topic] += 1
            if not out:
                outcomes["dropped as a duplicate"] += 1
        except Exception:
            failures.append(f"case {n}: {topic!r} {payload[:120]!r}\n{traceback.format_exc()}")
        if len(failures) >= 10:
            break
    elapsed = time.perf_counter() - started
    counted = sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "liftwatch_dead_letters_total"
    )
    if counted != letters:
        failures.append(f"{letters} dead letters produced, {counted:.0f} counted in liftwatch_dead_letters_total")
    print(
        f"MQTT decoder fuzz: {n + 1:,} cases tried in {elapsed:.1f} s ({(n + 1) / elapsed:,.0f} cases/s), seed {seed}"
    )
    for outcome, count in outcomes.most_common():
        print(f"  {count:>9,}  {outcome}")
    print(f"crashes or broken refusals: {len(failures)}")
    for failure in failures:
        print(failure)
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(run(args.cases, args.seed))


if __name__ == "__main__":
    main()
