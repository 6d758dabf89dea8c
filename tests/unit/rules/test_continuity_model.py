"""Message-sequence continuity against an independent model that knows which message is which.

The engine tells copies, holes, reboots and late messages apart from ``seq`` and sample times
only. The model here is told the truth (each delivery names the message it carries) and applies
the documented rules to it: a message's first delivery is late when its terminal has already
judged a later message (a hole given up after the allowed lateness in gateway receive time), every
further delivery is a copy. Streams have reboots (seq back to 0), terminals whose first message is
not seq 0, holes that fill in time, holes given up and filled late, copies of judged, held and late
messages, several terminals interleaved, batch cuts and restarts from snapshots.

Checked: the late and duplicate counts, that the live lane releases every other sample exactly
once and in time order per terminal, and that its events equal the per-sample reference over
exactly those samples. Also the fast (vectorized) admission against the per-message one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.rules import watermark
from liftwatch.rules.continuity import Continuity
from liftwatch.rules.processor import RuleProcessor
from liftwatch.rules.state import State
from liftwatch.schema import Sample, TelemetryRecord

from tests.unit.rules.forms import FORMS, Form, as_sent
from tests.unit.rules.reference import Event, Reference, fast_thresholds, random_stream
from tests.unit.rules.test_engine import REGISTRY

LATENESS_MS = 5_000
STEP_MS = 100
"""Gateway receive time between two deliveries: a hole is given up 50 deliveries after it opened."""
T = 1_700_000_000_000


@dataclass
class Message:
    terminal: str
    index: int
    """Position in its terminal's message order (the truth the engine does not see)."""
    run: int
    record: TelemetryRecord


def messages_of(rng: Any, terminals: list[str], per_terminal: int) -> dict[str, list[Message]]:
    """Each terminal's samples in strictly rising time, cut into messages; seq restarts at reboots."""
    out: dict[str, list[Message]] = {}
    for terminal in terminals:
        stream = random_stream(rng, [terminal], per_terminal, disorder_ms=0, late_share=0.0)
        samples, last = [], None
        for _, s in stream:  # strictly rising times: a message's place in time is unambiguous
            ts = s["ts"] if last is None or s["ts"] > last else last + 1
            samples.append({**s, "ts": ts})
            last = ts
        seq = int(rng.choice([0, 0, 3, 1_000]))  # not every terminal is first seen at seq 0
        run, i, messages = 0, 0, []
        while i < len(samples):
            n = int(rng.integers(1, 5))
            if len(messages) >= 10 and rng.random() < 0.05:
                run, seq = run + 1, 0  # a reboot: counting starts again, the clock goes on
                for s in samples[i:]:
                    s["ts"] += 30_000
            record = TelemetryRecord(terminal, seq, 0, [Sample(direction="stop", **s) for s in samples[i : i + n]])
            messages.append(Message(terminal, len(messages), run, record))
            seq, i = seq + 1, i + n
        out[terminal] = messages
    return out


def deliveries(rng: Any, per: dict[str, list[Message]], short: float, long: float, copy: float) -> list[Message]:
    """Interleaved by time; some messages overtaken by a few (a hole that fills) or by many (given up),
    some delivered twice. Nothing is overtaken across a reboot, nor is the message that reboots,
    and a terminal's first message only by a few of its own."""
    slots: list[tuple[float, int, Message]] = []
    every = sorted((m for ms in per.values() for m in ms), key=lambda m: m.record.samples[0].ts)
    position = {(m.terminal, m.index): i for i, m in enumerate(every)}
    for i, m in enumerate(every):
        at = float(i)
        later = [n for n in per[m.terminal][m.index :] if n.run != m.run]
        reboot = float(position[(m.terminal, later[0].index)]) if later else float("inf")
        r = rng.random()
        if m.index > 0 and per[m.terminal][m.index - 1].run != m.run:
            pass  # a reboot message overtaken can look like the run going on (seq 1 after seq 0)
        elif r < short:
            at += float(rng.integers(1, 4)) + 0.5
        elif m.index > 0 and r < short + long:
            at += float(rng.integers(80, 120)) + 0.5
        at = min(at, reboot - 0.5)  # before the next run starts (the reboot message is not delayed)
        slots.append((at, i, m))
        if rng.random() < copy:
            # a copy from before a reboot is late: it cannot be told from a buffer numbered after live messages
            slots.append((min(at + float(rng.integers(0, 150)), reboot - 0.5) + 0.25, i, m))
    slots.sort(key=lambda item: (item[0], item[1]))
    return [m for _, _, m in slots]


@dataclass
class _Truth:
    judged: int = -1
    """Messages up to this index are judged (or given up)."""
    seen: set[int] = field(default_factory=set)
    beyond: set[int] = field(default_factory=set)
    hole_since: int | None = None


class Model:
    """The documented semantics over the true identity of each delivery."""

    def __init__(self) -> None:
        self.terminals: dict[str, _Truth] = {}
        self.late_messages: set[tuple[str, int]] = set()
        self.duplicates = 0

    def deliver(self, m: Message, received: int) -> None:
        t = self.terminals.setdefault(m.terminal, _Truth())
        if t.hole_since is not None and received - t.hole_since > LATENESS_MS:
            t.judged = min(t.beyond) - 1  # given up: the run resumes at the oldest held message
            self._follow_on(t, received)
        if m.index in t.seen:
            self.duplicates += 1
            return
        t.seen.add(m.index)
        if not t.seen - {m.index}:
            t.judged = m.index  # the first message seen starts the run
        elif m.index <= t.judged:
            self.late_messages.add((m.terminal, m.index))
        elif m.index == t.judged + 1:
            t.judged = m.index
            self._follow_on(t, None)
        else:
            t.beyond.add(m.index)
            if t.hole_since is None:
                t.hole_since = received

    @staticmethod
    def _follow_on(t: _Truth, received: int | None) -> None:
        while t.judged + 1 in t.beyond:
            t.judged += 1
        t.beyond = {i for i in t.beyond if i > t.judged}
        t.hole_since = (received if received is not None else t.hole_since) if t.beyond else None


@contextmanager
def eager_release(eager: bool) -> Iterator[None]:
    """Every partly passed held-back chunk waits one batch (as large ones do under load)."""
    if not eager:
        yield
        return
    with mock.patch.object(watermark, "DEFER_MIN_SAMPLES", 0), mock.patch.object(watermark, "MAX_CHUNKS", 2):
        yield


def fresh() -> RuleProcessor:
    proc = RuleProcessor(fast_thresholds(), lateness_ms=LATENESS_MS)
    proc.set_registry(REGISTRY)
    return proc


def stamped(sent: list[Message]) -> list[TelemetryRecord]:
    return [TelemetryRecord(m.terminal, m.record.seq, T + STEP_MS * i, m.record.samples) for i, m in enumerate(sent)]


def run_engine(
    records: list[TelemetryRecord], cuts: list[int], restarts: set[int], form: Form = "messages"
) -> tuple[list[Event], int, int, dict[str, list[int]]]:
    proc = fresh()
    events: list[Event] = []
    late = duplicates = 0
    released: dict[str, list[int]] = {}

    def note(found: list[Any], det: Any) -> None:
        nonlocal late, duplicates
        late += det.late
        duplicates += det.duplicates
        s = det.samples
        for slot, ts in zip(s.slot.tolist(), s.ts.tolist(), strict=True):
            released.setdefault(proc.terminals[slot], []).append(ts)
        events.extend(
            (e.terminal, e.code.value, e.transition, e.since_ms, e.at_ms) for e in found if not e.evidence.get("late")
        )

    bounds = [0, *sorted(set(cuts)), len(records)]
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if i in restarts:
            blob = proc.snapshot(sorted(proc.slots))
            proc = fresh()
            proc.slot("U9")  # another slot numbering
            proc.restore(blob)
        note(*proc.process(as_sent(records[lo:hi], form, np.random.default_rng(lo))))
    # The stream ends: the holes still open are given up (a silent terminal), the rest released.
    proc.expire(T + STEP_MS * len(records) + 10 * LATENESS_MS)
    note(*proc.evaluate(proc.state.pending.take(np.zeros(0, np.bool_))))
    note(*proc.evaluate(proc.state.pending.take(np.zeros(0, np.bool_))))
    assert len(proc.state.pending) == 0
    return sorted(events), late, duplicates, released


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut_fracs=st.lists(st.floats(0, 1), max_size=6),
    restart=st.sets(st.integers(1, 6), max_size=2),
    short=st.sampled_from([0.0, 0.1, 0.3]),
    long=st.sampled_from([0.0, 0.02, 0.05]),
    copy=st.sampled_from([0.0, 0.05, 0.2]),
    eager=st.booleans(),
    form=st.sampled_from(FORMS),
)
def test_engine_agrees_with_a_model_that_knows_each_message(
    seed: int,
    cut_fracs: list[float],
    restart: set[int],
    short: float,
    long: float,
    copy: float,
    eager: bool,
    form: Form,
) -> None:
    rng = np.random.default_rng(seed)
    per = messages_of(rng, ["T0", "T1", "T2", "U9"], 120)
    sent = deliveries(rng, per, short, long, copy)
    model = Model()
    for i, m in enumerate(sent):
        model.deliver(m, T + STEP_MS * i)
    records = stamped(sent)
    cuts = [int(f * len(records)) for f in cut_fracs]
    with eager_release(eager):
        events, late, duplicates, released = run_engine(records, cuts, restart, form)

    live = {
        terminal: [s for m in messages if (terminal, m.index) not in model.late_messages for s in m.record.samples]
        for terminal, messages in per.items()
    }
    late_samples = sum(len(per[t][i].record.samples) for t, i in model.late_messages)
    assert (late, duplicates) == (late_samples, model.duplicates)
    # The live lane: every other sample once, in time order per terminal.
    assert {t: ts for t, ts in released.items()} == {t: [s.ts for s in samples] for t, samples in live.items()}
    ref = Reference(fast_thresholds(), REGISTRY, lateness_ms=10**12)
    for terminal, samples in live.items():
        for s in samples:
            ref.feed(terminal, {f: getattr(s, f) for f in s.__struct_fields__})
    ref.flush()
    assert events == sorted(ref.events)


# --- the fast path is the slow path, vectorized -------------------------------------------------


def _slow(cont: Continuity, st_: State, slot: Any, seq: Any, newest: Any, received: Any) -> tuple[Any, Any]:
    floor = np.zeros(len(slot), np.int64)
    keep = np.ones(len(slot), np.bool_)
    for i in range(len(slot)):
        floor[i], keep[i] = cont._one(st_, int(slot[i]), int(seq[i]), int(newest[i]), int(received[i]))
    return floor, keep


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(-1, 3), st.integers(0, 3_000)),
            min_size=0,
            max_size=12,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fast_admission_equals_one_message_at_a_time(batches: list[list[tuple[int, int, int, int]]]) -> None:
    """Per batch of (slot, seq step, time step, receive step): the same floors, keeps and state."""
    fast, slow = (Continuity(LATENESS_MS), State(4)), (Continuity(LATENESS_MS), State(4))
    for s in (fast[1], slow[1]):
        s.grow(4)
    seq_of, ts_of, now = [0, 5, 0, 1], [T, T, T, T], T
    for batch in batches:
        slot, seq, newest, received = [], [], [], []
        for terminal, step, dt, dr in batch:
            seq_of[terminal] = max(0, seq_of[terminal] + step - (1 if step == 2 else 0) * 3)
            ts_of[terminal] += dt * 700
            now += dr
            slot.append(terminal)
            seq.append(seq_of[terminal])
            newest.append(ts_of[terminal])
            received.append(now)
        args = [np.asarray(a, np.int64) for a in (slot, seq, newest, received)]
        got = fast[0].admit(fast[1], *args)
        floor, keep = _slow(slow[0], slow[1], *args)
        assert got.floor.tolist() == floor.tolist()
        assert got.keep.tolist() == keep.tolist()
        for name in ("seq_next", "seq_bound", "hole_since", "seq_unseen_below", "seq_unseen_newest"):
            assert getattr(fast[1], name)[:4].tolist() == getattr(slow[1], name)[:4].tolist(), name
        assert fast[0].beyond == slow[0].beyond
        assert fast[0].skipped == slow[0].skipped
