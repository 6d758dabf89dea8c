"""Message-sequence continuity: in-order terminals are judged at once, holes wait, copies are dropped.

The property: however the messages of a terminal are delayed behind each other (holes that fill),
copied (re-deliveries) and cut into batches, with restarts from snapshots in between, the events
equal the per-sample reference over the terminal's samples in time order, nothing is late, and
every copy is counted as a duplicate.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.rules.processor import RuleProcessor
from liftwatch.schema import Sample, TelemetryRecord

from tests.unit.rules_reference import Event, Reference, fast_thresholds, random_stream
from tests.unit.test_rules_engine import REGISTRY, TERMINALS

OPTIONAL = ("alarm_button", "power", "limit_up", "limit_down")


def messages_of(stream: list[tuple[str, dict[str, Any]]], rng: Any) -> list[TelemetryRecord]:
    """Each terminal's samples in time order, cut into messages of 1-10 samples numbered 0, 1, 2, ..."""
    per: dict[str, list[dict[str, Any]]] = {}
    for terminal, sample in stream:
        per.setdefault(terminal, []).append(sample)
    out: list[TelemetryRecord] = []
    for terminal, samples in per.items():
        samples.sort(key=lambda s: s["ts"])
        seq, i = 0, 0
        while i < len(samples):
            n = int(rng.integers(1, 11))
            out.append(TelemetryRecord(terminal, seq, 0, [Sample(direction="stop", **s) for s in samples[i : i + n]]))
            seq, i = seq + 1, i + n
    # interleave the terminals in time order of their first sample, as a broker would deliver them
    out.sort(key=lambda r: r.samples[0].ts)
    return out


def delivered(messages: list[TelemetryRecord], rng: Any, delay_share: float, copy_share: float) -> list[Any]:
    """Some messages overtaken by up to 5 later ones (a hole that fills), some delivered twice."""
    order: list[tuple[float, int, TelemetryRecord]] = []
    copies = 0
    for i, message in enumerate(messages):
        # a terminal's first message is never overtaken: the first one seen starts its run
        delayed = message.seq > 0 and rng.random() < delay_share
        at = float(i) + (float(rng.integers(1, 6)) + 0.5 if delayed else 0.0)
        order.append((at, i, message))
        if rng.random() < copy_share:
            order.append((at + float(rng.integers(0, 4)) + 0.25, i, message))
            copies += 1
    order.sort(key=lambda item: (item[0], item[1]))
    return [[m for _, _, m in order], copies]


def reference(stream: list[tuple[str, dict[str, Any]]]) -> list[Event]:
    ref = Reference(fast_thresholds(), REGISTRY, lateness_ms=5_000)
    for terminal, sample in sorted(stream, key=lambda item: item[1]["ts"]):
        ref.feed(terminal, sample)
    ref.flush()
    assert ref.late == 0
    return sorted(ref.events)


def engine(messages: list[TelemetryRecord], cuts: list[int], restarts: set[int]) -> tuple[list[Event], int, int]:
    def fresh() -> RuleProcessor:
        proc = RuleProcessor(fast_thresholds(), lateness_ms=5_000)
        proc.set_registry(REGISTRY)
        return proc

    proc = fresh()
    events: list[Event] = []
    late = duplicates = 0
    bounds = [0, *sorted(set(cuts)), len(messages)]
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if i in restarts:
            blob = proc.snapshot(sorted(proc.slots))
            proc = fresh()
            proc.slot("U9")  # another slot numbering
            proc.restore(blob)
        found, det = proc.process(messages[lo:hi])
        late += det.late
        duplicates += det.duplicates
        events += [(e.terminal, e.code.value, e.transition, e.since_ms, e.at_ms) for e in found]
    # Every hole filled, so nothing may wait for the end of the stream.
    assert len(proc.state.pending) == 0
    return sorted(events), late, duplicates


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut_fracs=st.lists(st.floats(0, 1), max_size=6),
    restart=st.sets(st.integers(1, 6), max_size=2),
    delay_share=st.sampled_from([0.0, 0.05, 0.3]),
    copy_share=st.sampled_from([0.0, 0.05]),
)
def test_order_holes_copies_batches_and_restarts_do_not_change_the_events(
    seed: int, cut_fracs: list[float], restart: set[int], delay_share: float, copy_share: float
) -> None:
    rng = np.random.default_rng(seed)
    stream = random_stream(rng, TERMINALS, 150, disorder_ms=0, late_share=0.0)
    sent, copies = delivered(messages_of(stream, rng), rng, delay_share, copy_share)
    cuts = [int(f * len(sent)) for f in cut_fracs]
    events, late, duplicates = engine(sent, cuts, restart)
    assert (late, duplicates) == (0, copies)
    assert events == reference(stream)


def test_in_order_messages_are_judged_in_the_batch_they_arrive_in() -> None:
    rng = np.random.default_rng(7)
    stream = random_stream(rng, TERMINALS, 300, disorder_ms=0, late_share=0.0)
    messages = messages_of(stream, rng)
    proc = RuleProcessor(fast_thresholds(), lateness_ms=5_000)
    proc.set_registry(REGISTRY)
    for message in messages:
        _, det = proc.process([message])
        assert det.evaluated == len(message.samples)
