"""Sequence tracking: duplicates dropped, gaps counted, reboots recognised."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.ingest.sequence import SequenceTracker, SeqVerdict

N, D, R = SeqVerdict.NEW, SeqVerdict.DUPLICATE, SeqVerdict.RESTART


@pytest.mark.parametrize(
    ("seqs", "verdicts", "gaps"),
    [
        ([0, 1, 2, 3], [N, N, N, N], 0),
        ([0, 1, 1, 2, 0], [N, N, D, N, D], 0),
        ([0, 1, 5, 6], [N, N, N, N], 3),
        ([5, 3, 4, 3], [N, N, N, D], 0),
        ([100, 101, 0, 1, 1], [N, N, R, N, D], 0),
        ([1000, 10], [N, R], 0),
        ([7], [N], 0),
    ],
    ids=["in-order", "duplicates", "gap", "late-then-duplicate", "reboot", "far-below-window", "first"],
)
def test_verdicts(seqs: list[int], verdicts: list[SeqVerdict], gaps: int) -> None:
    tracker = SequenceTracker(window=64)
    results = [tracker.observe("T1", s) for s in seqs]
    assert [r.verdict for r in results] == verdicts
    assert sum(r.gap for r in results) == gaps


def test_terminals_are_independent() -> None:
    tracker = SequenceTracker()
    assert tracker.observe("A", 1).verdict is N
    assert tracker.observe("B", 1).verdict is N
    assert tracker.observe("A", 1).verdict is D


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=200), st.integers(1, 100))
def test_every_seq_within_window_seen_once_is_new_and_twice_is_duplicate(seqs: list[int], window: int) -> None:
    """Replaying a strictly increasing stream doubled (each message twice in a row) keeps each once."""
    stream = sorted(set(seqs))
    tracker = SequenceTracker(window=window)
    kept = []
    for s in stream:
        first = tracker.observe("T", s)
        second = tracker.observe("T", s)
        assert second.verdict is D
        if first.verdict is not D:
            kept.append(s)
    assert kept == stream
