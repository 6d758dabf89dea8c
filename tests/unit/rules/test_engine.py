"""The vectorized engine against the per-sample reference, on random streams cut at random points."""

from __future__ import annotations

import io
import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.rules import catalog, watermark
from liftwatch.rules.columns import DOOR_CODE, MODE_CODE, Columns
from liftwatch.rules.params import TerminalInfo
from liftwatch.rules.processor import RuleProcessor
from liftwatch.rules.thresholds import Thresholds, build

from tests.unit.rules.reference import Event, Reference, fast_thresholds, random_stream

REGISTRY = {
    "T0": TerminalInfo("00000000000000000000", 1.0, -1, 10),
    "T1": TerminalInfo("00000000000000000001", 1.75, 0, 12, "M2"),
    "T2": TerminalInfo("00000000000000000002", 1.0, 1, 9, "M2"),
    "T3": TerminalInfo("00000000000000000003", 2.5, -2, 11, "other"),
}
TERMINALS = ["T0", "T1", "T2", "T3", "U9"]  # U9 is not registered


@contextmanager
def held_back_chunks(eager: bool) -> Iterator[None]:
    """``eager``: every partly passed held-back chunk waits once, and chunks merge beyond two.

    In production only large chunks wait (a load the small streams here never reach); this runs
    the same release paths on small streams.
    """
    if not eager:
        yield
        return
    with mock.patch.object(watermark, "DEFER_MIN_SAMPLES", 0), mock.patch.object(watermark, "MAX_CHUNKS", 2):
        yield


def to_columns(proc: RuleProcessor, stream: list[tuple[str, dict[str, Any]]]) -> Columns:
    return Columns.from_arrays(
        slot=[proc.slot(t) for t, _ in stream],
        ts=[s["ts"] for _, s in stream],
        mode=[MODE_CODE[s["mode"]] for _, s in stream],
        floor=[s["floor"] for _, s in stream],
        door_zone=[s["door_zone"] for _, s in stream],
        speed=[s["speed"] for _, s in stream],
        door=[DOOR_CODE[s["door"]] for _, s in stream],
        occupied=[s["occupied"] for _, s in stream],
        safety=[s["safety_circuit"] for _, s in stream],
        alarm=[s["alarm_button"] for _, s in stream],
        power=[s["power"] for _, s in stream],
        limit_up=[s["limit_up"] for _, s in stream],
        limit_down=[s["limit_down"] for _, s in stream],
    )


def new_processor(thresholds: Thresholds, lateness_ms: int) -> RuleProcessor:
    proc = RuleProcessor(thresholds, lateness_ms=lateness_ms)
    proc.set_registry(REGISTRY)
    return proc


def run_engine(
    thresholds: Thresholds,
    stream: list[tuple[str, dict[str, Any]]],
    cuts: list[int],
    restarts: set[int],
    lateness_ms: int,
) -> tuple[list[Event], int, int]:
    proc = new_processor(thresholds, lateness_ms)
    bounds = [0, *sorted(set(cuts)), len(stream)]
    events: list[Event] = []
    late = evaluated = 0
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if i in restarts:
            # A restart: a fresh process restores the snapshot (terminals in a different slot order).
            blob = proc.snapshot(sorted(proc.slots))
            proc = new_processor(thresholds, lateness_ms)
            proc.slot("U9")
            proc.restore(blob)
        last = hi == len(stream)
        found, det = proc.evaluate(to_columns(proc, stream[lo:hi]), flush=last)
        late += det.late
        evaluated += det.evaluated
        events += [(e.terminal, e.code.value, e.transition, e.since_ms, e.at_ms) for e in found]
    return sorted(events), late, evaluated


def run_reference(
    thresholds: Thresholds, stream: list[tuple[str, dict[str, Any]]], lateness_ms: int
) -> tuple[list[Event], int, int]:
    ref = Reference(thresholds, REGISTRY, lateness_ms=lateness_ms)
    for terminal, sample in stream:
        ref.feed(terminal, sample)
    ref.flush()
    return sorted(ref.events), ref.late, ref.evaluated


def assert_same(
    thresholds: Thresholds,
    stream: list[tuple[str, dict[str, Any]]],
    cuts: list[int],
    restarts: set[int],
    lateness_ms: int,
) -> list[Event]:
    expected = run_reference(thresholds, stream, lateness_ms)
    got = run_engine(thresholds, stream, cuts, restarts, lateness_ms)
    assert got[1:] == expected[1:]
    missing = sorted(set(expected[0]) - set(got[0]))
    extra = sorted(set(got[0]) - set(expected[0]))
    assert (missing, extra) == ([], [])
    assert got[0] == expected[0]
    return expected[0]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut_fracs=st.lists(st.floats(0, 1), max_size=8),
    restart=st.sets(st.integers(1, 8), max_size=2),
    lateness_ms=st.sampled_from([0, 2_000, 5_000]),
    fast=st.booleans(),
    eager=st.booleans(),
)
def test_results_do_not_depend_on_batches_or_restarts(
    seed: int, cut_fracs: list[float], restart: set[int], lateness_ms: int, fast: bool, eager: bool
) -> None:
    rng = np.random.default_rng(seed)
    stream = random_stream(rng, TERMINALS, 300)
    cuts = [int(f * len(stream)) for f in cut_fracs]
    with held_back_chunks(eager):
        assert_same(fast_thresholds() if fast else build(), stream, cuts, restart, lateness_ms)


@pytest.mark.parametrize("eager", [False, True])
def test_large_random_stream_matches_reference(eager: bool) -> None:
    rng = np.random.default_rng(7)
    terminals = [f"T{i % 4}" if i < 4 else f"X{i}" for i in range(24)]
    stream = random_stream(rng, terminals, 1200)
    cuts = sorted(rng.integers(0, len(stream), 30).tolist())
    with held_back_chunks(eager):
        events = assert_same(fast_thresholds(), stream, cuts, {5, 17}, 5_000)
    codes = {e[1] for e in events}
    # The stream is rich enough to exercise every rule (a weak oracle comparison would prove little).
    assert codes >= {spec.code.value for spec in catalog.SAMPLE_RULES} | {"unregistered_terminal"}
    assert {e[2] for e in events} == {"raised", "cleared"}


def test_slot_order_and_merge_paths_agree_with_a_plain_sort() -> None:
    from liftwatch.rules.batches import merge_all, slot_order

    rng = np.random.default_rng(3)
    shuffled = rng.integers(0, 300_000, 100_000).astype(np.int32)  # many short runs: the radix path
    tiled = np.tile(np.arange(5_000, dtype=np.int32), 20)  # a few long runs: timsort
    for slot in (shuffled, tiled):
        assert np.array_equal(slot_order(slot), np.argsort(slot, kind="stable"))

    def sorted_cols(slot: list[int], ts: list[int], floor: int) -> Columns:
        order = np.lexsort((ts, slot))
        n = len(ts)
        return Columns.from_arrays(
            slot=np.asarray(slot)[order],
            ts=np.asarray(ts)[order],
            mode=np.zeros(n),
            floor=np.full(n, floor),
            door_zone=np.zeros(n, bool),
            speed=np.zeros(n),
            door=np.zeros(n),
            occupied=np.zeros(n, bool),
            safety=np.ones(n, bool),
        )

    # in-order arrivals, out-of-order ones (a later arrival older in time), and ts decades apart
    for ts_a, ts_b in (([1, 2], [3, 4]), ([5, 9], [6, 7]), ([0, 2**40], [2**61, 5])):
        a = sorted_cols([1, 1], ts_a, floor=1)
        b = sorted_cols([0, 1], ts_b, floor=2)
        merged = merge_all([a, b])
        rows = sorted(
            [(int(s), int(t), 0, int(f)) for s, t, f in zip(a.slot, a.ts, a.floor, strict=True)]
            + [(int(s), int(t), 1, int(f)) for s, t, f in zip(b.slot, b.ts, b.floor, strict=True)]
        )
        assert list(zip(merged.slot.tolist(), merged.ts.tolist(), merged.floor.tolist(), strict=True)) == [
            (s, t, f) for s, t, _, f in rows
        ]


def test_a_large_partly_passed_batch_waits_once_and_an_empty_batch_releases_it() -> None:
    rng = np.random.default_rng(11)
    stream = random_stream(rng, ["T0", "T1"], 400)
    with mock.patch.object(watermark, "DEFER_MIN_SAMPLES", 100):
        proc = new_processor(build(), 5_000)
        _, first = proc.evaluate(to_columns(proc, stream))
        assert (first.evaluated, proc.waiting) == (0, True)  # all of it waits: it passed only in part
        # a restart keeps it waiting (for the next poll, not for another batch)
        blob = proc.snapshot(sorted(proc.slots))
        proc = new_processor(build(), 5_000)
        proc.restore(blob)
        assert proc.waiting
        _, second = proc.evaluate(Columns.empty())
        assert second.evaluated > 0 and not proc.waiting
        _, rest = proc.evaluate(Columns.empty(), flush=True)
    assert first.late + second.evaluated + rest.evaluated == len(stream)


@pytest.mark.parametrize("eager", [False, True])
def test_one_sample_batches_match_reference(eager: bool) -> None:
    # Every batch is in order by itself: a sample older than held ones of its terminal is only seen
    # against the held-back chunks (the path that moves that terminal's samples to a chunk of their own).
    stream = random_stream(np.random.default_rng(5), TERMINALS, 300)
    with held_back_chunks(eager):
        assert_same(build(), stream, list(range(1, len(stream))), set(), 5_000)


class CountingReference(Reference):
    """The reference, counting each terminal's evaluated samples."""

    def __init__(self, thresholds: Thresholds, lateness_ms: int) -> None:
        super().__init__(thresholds, REGISTRY, lateness_ms=lateness_ms)
        self.per_terminal: Counter[str] = Counter()

    def _evaluate(self, terminal: str, t: Any, s: dict[str, Any]) -> None:
        self.per_terminal[terminal] += 1
        super()._evaluate(terminal, t, s)


def lag_in_batches(stream: list[tuple[str, dict[str, Any]]], cuts: list[int], lateness_ms: int) -> int:
    """The most batches any terminal's evaluated count trails the reference's (which evaluates at once)."""
    ref = CountingReference(build(), lateness_ms)
    proc = new_processor(build(), lateness_ms)
    by_slot: dict[int, str] = {}
    evaluated: Counter[str] = Counter()
    ref_after: list[Counter[str]] = []
    worst = 0
    for lo, hi in itertools.pairwise([0, *sorted(set(cuts)), len(stream)]):
        for terminal, sample in stream[lo:hi]:
            ref.feed(terminal, sample)
        ref_after.append(Counter(ref.per_terminal))
        columns = to_columns(proc, stream[lo:hi])
        by_slot.update({slot: terminal for terminal, slot in proc.slots.items()})
        _, det = proc.evaluate(columns)
        evaluated.update(by_slot[int(slot)] for slot in det.samples.slot)
        behind = [b for b, seen in enumerate(ref_after) if any(evaluated[t] < n for t, n in seen.items())]
        worst = max(worst, len(ref_after) - min(behind) - 1 if behind else 0)
    return worst


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut_fracs=st.lists(st.floats(0, 1), min_size=5, max_size=40),
    lateness_ms=st.sampled_from([0, 2_000, 5_000]),
    max_chunks=st.sampled_from([2, 3, 16]),
)
def test_waiting_samples_trail_by_one_batch_at_most(
    seed: int, cut_fracs: list[float], lateness_ms: int, max_chunks: int
) -> None:
    stream = random_stream(np.random.default_rng(seed), TERMINALS, 200)
    cuts = [int(f * len(stream)) for f in cut_fracs]
    with mock.patch.object(watermark, "DEFER_MIN_SAMPLES", 0), mock.patch.object(watermark, "MAX_CHUNKS", max_chunks):
        assert lag_in_batches(stream, cuts, lateness_ms) <= 1


def test_a_terminal_overtaken_in_every_batch_is_still_evaluated() -> None:
    # Batch k carries seconds 4k, 4k+2 and 4k+3 of T0; second 4k+1 arrives first in batch k+1, older
    # than samples already delivered (two gateways racing), every batch. Every chunk is "large".
    rng = np.random.default_rng(2)
    samples = [s for _, s in random_stream(rng, ["T0"], 400)][:240]
    for i, sample in enumerate(samples):
        sample["ts"] = 1_700_000_000_000 + 1000 * i
    stream: list[tuple[str, dict[str, Any]]] = []
    cuts = []
    for k in range(len(samples) // 4):
        late_one = [samples[4 * k - 3]] if k else []
        stream += [("T0", s) for s in [*late_one, samples[4 * k], samples[4 * k + 2], samples[4 * k + 3]]]
        cuts.append(len(stream))
    with mock.patch.object(watermark, "DEFER_MIN_SAMPLES", 2):
        assert lag_in_batches(stream, cuts[:-1], 5_000) <= 1


def test_a_version_3_checkpoint_restores() -> None:
    """A checkpoint written before the state columns had names (version 3, numbered columns) restores.

    ``data/rules_checkpoint_v3.npz`` was written by that code after the first half of the stream
    beside it; restored and fed the second half, it gives the events of an uninterrupted run.
    """
    import gzip
    import json
    from pathlib import Path

    data = Path(__file__).parent / "data"
    saved = json.loads(gzip.decompress((data / "rules_checkpoint_v3_stream.json.gz").read_bytes()))
    stream = [(terminal, sample) for terminal, sample in saved["stream"]]
    cut = saved["cut"]
    blob = (data / "rules_checkpoint_v3.npz").read_bytes()
    with np.load(data / "rules_checkpoint_v3.npz") as stored:
        assert int(stored["version"][0]) == 3
    thresholds = fast_thresholds()

    def events(found: list[Any]) -> list[Event]:
        return [(e.terminal, e.code.value, e.transition, e.since_ms, e.at_ms) for e in found]

    whole, _late, _evaluated = run_engine(thresholds, stream, [cut], set(), 2_000)
    first = new_processor(thresholds, 2_000)
    before, _ = first.evaluate(to_columns(first, stream[:cut]))
    restored = new_processor(thresholds, 2_000)
    restored.slot("U9")  # terminals in another slot order than when the checkpoint was written
    assert sorted(restored.restore(blob)) == sorted(first.slots)
    after, _ = restored.evaluate(to_columns(restored, stream[cut:]), flush=True)
    assert sorted(events(before) + events(after)) == whole
    assert len(after) > 0


def test_a_snapshot_is_zstd_and_a_damaged_one_is_refused() -> None:
    """Snapshots are zstd-compressed .npz (a fifth of zlib's CPU); one whose frame is damaged is a
    CheckpointError, as an unreadable .npz is, not a crash of the rules service."""
    import cramjam
    from liftwatch.rules.errors import CheckpointError

    thresholds = fast_thresholds()
    rng = np.random.default_rng(5)
    stream = random_stream(rng, ["T0", "T1"], 50)
    proc = new_processor(thresholds, 2_000)
    proc.evaluate(to_columns(proc, stream))
    blob = proc.snapshot(sorted(proc.slots))
    assert blob[:4] == b"\x28\xb5\x2f\xfd"
    with np.load(io.BytesIO(bytes(cramjam.zstd.decompress(blob)))) as data:
        assert int(data["version"][0]) == 4
    restored = new_processor(thresholds, 2_000)
    assert sorted(restored.restore(blob)) == ["T0", "T1"]
    for damaged in (blob[:4] + b"\0" * 12 + blob[16:], blob[:40], b"not a checkpoint"):
        with pytest.raises(CheckpointError):
            new_processor(thresholds, 2_000).restore(damaged)
