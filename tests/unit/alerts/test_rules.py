"""Pure decisions of the alert service: folding, deadlines, routing, signatures and back-off."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.alerts import channels
from liftwatch.alerts.deadlines import DeadlinePolicy, Due, DueKind, IncidentTimes, due
from liftwatch.alerts.incidents import EventKind, Fold, OpenIncident, Outcome, fold
from liftwatch.alerts.routing import ChangeFacts, RoutingPolicy, Target, Webhook, recipients
from liftwatch.schema import FaultCode, FaultEvent, Severity, fault_event_id

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def event(transition: str, at_s: float, *, code: FaultCode = FaultCode.DOOR_HELD_OPEN) -> FaultEvent:
    at_ms = T0_MS + int(at_s * 1000)
    return FaultEvent(
        event_id=fault_event_id("t1", code, transition, at_ms - 1000),
        transition=transition,  # type: ignore[arg-type]
        code=code,
        severity=Severity.MINOR,
        terminal="t1",
        registration_code=None,
        since_ms=at_ms - 1000,
        at_ms=at_ms,
    )


def apply(incident: OpenIncident | None, result: Fold, at_ms: int) -> OpenIncident | None:
    """What the store does with a fold (for sequences)."""
    if result.outcome in (Outcome.ORPHAN_CLEAR, Outcome.STALE):
        return incident
    return OpenIncident(
        id=1,
        occurrences=result.occurrences,
        chattering=result.chattering,
        condition_cleared=result.condition_cleared_ms is not None,
        toggles_ms=result.toggles_ms,
        last_event_ms=max(at_ms, incident.last_event_ms or 0) if incident else at_ms,
    )


def run(transitions: list[tuple[str, float]]) -> list[Fold]:
    incident: OpenIncident | None = None
    results = []
    for transition, at_s in transitions:
        fault_event = event(transition, at_s)
        result = fold(incident, fault_event)
        incident = apply(incident, result, fault_event.at_ms)
        results.append(result)
    return results


@pytest.mark.parametrize(
    ("transitions", "outcomes", "kinds", "chattering"),
    [
        ([("raised", 0)], ["opened"], ["opened"], False),
        ([("cleared", 0)], ["orphan_clear"], [None], False),
        ([("raised", 0), ("raised", 5)], ["opened", "repeated"], ["opened", "updated"], False),
        (
            [("raised", 0), ("cleared", 20), ("raised", 50)],
            ["opened", "cleared", "repeated"],
            ["opened", "condition_cleared", "chattering"],
            True,
        ),
        (
            [("raised", 0), ("cleared", 40), ("raised", 100), ("cleared", 200)],
            ["opened", "cleared", "repeated", "cleared"],
            ["opened", "condition_cleared", "updated", "condition_cleared"],
            False,
        ),
        # A redelivered clear older than the incident (it found nothing open the first time).
        ([("cleared", 5), ("raised", 10), ("cleared", 5)], ["orphan_clear", "opened", "stale"], None, False),
        # A repeated raise without a clear in between is not a toggle.
        ([("raised", 0), ("raised", 1), ("raised", 2), ("raised", 3)], ["opened", *["repeated"] * 3], None, False),
        (
            [("raised", 0), ("cleared", 10), ("raised", 20), ("cleared", 30), ("raised", 300)],
            ["opened", "cleared", "repeated", "cleared", "repeated"],
            ["opened", "condition_cleared", "chattering", "condition_cleared", "updated"],
            True,
        ),
    ],
)
def test_fold_sequences(
    transitions: list[tuple[str, float]], outcomes: list[str], kinds: list[str | None] | None, chattering: bool
) -> None:
    results = run(transitions)
    assert [r.outcome for r in results] == outcomes
    if kinds is not None:
        assert [r.kind for r in results] == kinds
    assert results[-1].chattering is chattering or results[-1].outcome in (Outcome.ORPHAN_CLEAR, Outcome.STALE)


def test_fold_counts_and_clear_time() -> None:
    results = run([("raised", 0), ("raised", 5), ("cleared", 9)])
    assert [r.occurrences for r in results] == [1, 2, 2]
    assert results[-1].condition_cleared_ms == T0_MS + 8000
    assert results[1].seen_ms == T0_MS + 5000 and results[2].seen_ms is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["raised", "cleared"]), st.integers(0, 600)), min_size=1, max_size=30))
def test_fold_opens_at_most_once_and_never_unflags(steps: list[tuple[str, int]]) -> None:
    steps = sorted(steps, key=lambda s: s[1])
    results = run([(t, float(at)) for t, at in steps])
    assert sum(r.outcome is Outcome.OPENED for r in results) <= 1
    flags = [r.chattering for r in results if r.outcome not in (Outcome.ORPHAN_CLEAR, Outcome.STALE)]
    assert flags == sorted(flags)
    assert sum(r.kind is EventKind.CHATTERING for r in results) == (1 if any(flags) else 0)


# --- deadlines --------------------------------------------------------------------------------

POLICY = DeadlinePolicy()


def trapped(**changes: object) -> IncidentTimes:
    """A trapped passenger as opened under the shipped policy: dispatch within 5 min, arrival 30."""
    base = IncidentTimes(
        id=7,
        code="trapped_passenger",
        severity="critical",
        status="detected",
        detected_at=T0,
        opened_at=T0,
        dispatch_deadline_at=T0 + timedelta(minutes=5),
        arrival_deadline_at=T0 + timedelta(minutes=30),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("incident", "now", "expected"),
    [
        (trapped(), at(0.5), []),
        (trapped(), at(1), [(DueKind.RENOTIFY, at(1), None)]),
        (trapped(last_notified_at=at(3)), at(3.5), []),
        (trapped(status="acknowledged"), at(4), []),
        (trapped(status="acknowledged"), at(5.01), [(DueKind.DISPATCH_MISSED, at(5), 2)]),
        (trapped(status="dispatched", dispatched_at=at(4)), at(29), []),
        # Dispatched late while the service was down: still recorded.
        (trapped(status="dispatched", dispatched_at=at(6)), at(7), [(DueKind.DISPATCH_MISSED, at(5), 2)]),
        (
            trapped(status="dispatched", dispatched_at=at(4)),
            at(31),
            [(DueKind.ARRIVAL_MISSED, at(30), 2)],
        ),
        (
            trapped(status="acknowledged", escalation_level=1),
            at(31),
            [(DueKind.DISPATCH_MISSED, at(5), 2), (DueKind.ARRIVAL_MISSED, at(30), None)],
        ),
        (
            trapped(status="dispatched", dispatch_deadline_missed=True, escalation_level=2, dispatched_at=at(6)),
            at(40),
            [(DueKind.ARRIVAL_MISSED, at(30), None)],
        ),
        (trapped(status="arrived", dispatched_at=at(2), arrived_at=at(20)), at(90), []),
        (trapped(status="closed", dispatched_at=None), at(90), []),
        # Closed while the service was down: judged as it stood at closing, never escalated.
        (trapped(status="false_alarm", closed_at=at(3)), at(90), []),
        (trapped(status="false_alarm", closed_at=at(10)), at(90), [(DueKind.DISPATCH_MISSED, at(5), None)]),
        (
            trapped(status="closed", dispatched_at=at(6), arrived_at=at(20), closed_at=at(40)),
            at(90),
            [(DueKind.DISPATCH_MISSED, at(5), None)],
        ),
        (trapped(dispatch_deadline_missed=True, arrival_deadline_missed=True, last_notified_at=at(89.5)), at(90), []),
    ],
)
def test_trapped_passenger_deadlines(
    incident: IncidentTimes, now: datetime, expected: list[tuple[DueKind, datetime, int | None]]
) -> None:
    assert [(d.kind, d.deadline, d.escalate_to) for d in due([incident], now, POLICY)] == expected


def test_level_three_is_never_reached_by_deadlines() -> None:
    incident = trapped(status="acknowledged", escalation_level=3)
    assert all(d.escalate_to is None for d in due([incident], at(60), POLICY))


def test_the_stamped_deadlines_are_what_counts() -> None:
    """Deadlines are judged by the instants stamped when the incident opened, not today's policy."""
    # A replayed old stream (detected long before the service saw it) is due at once.
    late = trapped(status="acknowledged", opened_at=at(40), last_notified_at=at(40))
    assert [d.kind for d in due([late], at(40), POLICY)] == [DueKind.DISPATCH_MISSED, DueKind.ARRIVAL_MISSED]
    stricter = trapped(status="acknowledged", dispatch_deadline_at=at(2), last_notified_at=at(3))
    assert [(d.kind, d.deadline) for d in due([stricter], at(3), POLICY)] == [(DueKind.DISPATCH_MISSED, at(2))]


@pytest.mark.parametrize(("limit", "levels"), [(1, [None, None]), (2, [2, None]), (3, [2, 3])])
def test_automatic_escalation_limit_is_configurable(limit: int, levels: list[int | None]) -> None:
    policy = DeadlinePolicy(auto_escalation_limit=limit)
    incident = trapped(status="acknowledged", last_notified_at=at(40))
    assert [d.escalate_to for d in due([incident], at(31), policy)] == levels


def test_codes_without_deadlines_and_auto_clear() -> None:
    minor = IncidentTimes(
        id=1, code="door_held_open", severity="minor", status="detected", detected_at=T0, opened_at=T0
    )
    day = timedelta(hours=24)
    assert due([minor], T0 + 2 * day, POLICY) == []  # condition still holds: stays open
    cleared = replace(minor, condition_cleared_at=T0 + timedelta(minutes=3))
    assert due([cleared], T0 + day - timedelta(seconds=1), POLICY) == []
    assert due([cleared], T0 + day, POLICY) == [Due(1, DueKind.AUTO_CLEAR, T0 + day)]
    assert due([replace(cleared, status="acknowledged")], T0 + 2 * day, POLICY) == []
    critical_cleared = replace(cleared, severity="critical", code="overspeed", last_notified_at=T0 + 2 * day)
    assert due([critical_cleared], T0 + 2 * day, POLICY) == []


def test_an_incident_opened_without_deadlines_has_none_due() -> None:
    overspeed = trapped(code="overspeed", status="acknowledged", dispatch_deadline_at=at(1), arrival_deadline_at=None)
    assert [d.kind for d in due([overspeed], at(40), POLICY)] == [DueKind.DISPATCH_MISSED]
    unstamped = trapped(status="acknowledged", dispatch_deadline_at=None, arrival_deadline_at=None)
    assert due([unstamped], at(40), POLICY) == []


# --- routing ----------------------------------------------------------------------------------

HOOKS = [
    Webhook(1, "firm A", Target.MAINTENANCE_FIRM, "http://a", "s", maintainer_id=10),
    Webhook(2, "firm B", Target.MAINTENANCE_FIRM, "http://b", "s", maintainer_id=20),
    Webhook(3, "centre", Target.EMERGENCY_CENTRE, "http://c", "s"),
    Webhook(4, "rescue Futian", Target.DISTRICT_RESCUE, "http://d", "s", district="Futian"),
    Webhook(5, "rescue Nanshan", Target.DISTRICT_RESCUE, "http://e", "s", district="Nanshan"),
    Webhook(6, "119", Target.FIRE_BRIGADE, "http://f", "s"),
    Webhook(7, "old firm A", Target.MAINTENANCE_FIRM, "http://g", "s", maintainer_id=10, enabled=False),
]


@pytest.mark.parametrize(
    ("kind", "severity", "level", "maintainer", "expected"),
    [
        ("opened", "critical", 1, 10, [1, 3]),
        ("opened", "major", 1, 10, [1]),
        ("opened", "minor", 1, 20, [2]),
        ("updated", "critical", 1, 10, []),
        ("deadline_missed", "critical", 2, 10, [1, 3, 4]),
        ("escalated", "critical", 3, 10, [1, 3, 4, 6]),
        ("opened", "critical", 1, None, [3]),
        ("opened", "minor", 1, None, []),
    ],
)
def test_routing(kind: str, severity: str, level: int, maintainer: int | None, expected: list[int]) -> None:
    facts = ChangeFacts(
        kind=kind, severity=severity, maintainer_id=maintainer, district="Futian", escalation_level=level
    )
    assert [hook.id for hook in recipients(facts, HOOKS, RoutingPolicy())] == expected


def test_routing_is_configurable() -> None:
    policy = RoutingPolicy(emergency_severities=frozenset({"critical", "major"}), quiet_kinds=frozenset())
    facts = ChangeFacts(kind="updated", severity="major", maintainer_id=20, district="Nanshan", escalation_level=1)
    assert [hook.id for hook in recipients(facts, HOOKS, policy)] == [2, 3]


# --- channels ---------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_the_timestamp_and_body() -> None:
    # Reference value: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
    expected = "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
    assert channels.sign("key", b'{"a":1}', 1_700_000_000) == expected
    assert channels.verify("key", b'{"a":1}', expected, "1700000000", now=1_700_000_010)
    assert not channels.verify("other", b'{"a":1}', expected, "1700000000", now=1_700_000_010)
    assert not channels.verify("key", b'{"a":2}', expected, "1700000000", now=1_700_000_010)
    # a captured request replayed later, or with another timestamp, is refused
    assert not channels.verify("key", b'{"a":1}', expected, "1700000000", now=1_700_000_000 + 3600)
    assert not channels.verify("key", b'{"a":1}', expected, "1700000001", now=1_700_000_010)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [channels.backoff_s(n, base_s=1, cap_s=10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
