"""The rescue lifecycle: every (status, action) pair, close causes, escalation, auto-clear, and
the SQL conditions built from it (equal to the partial indexes' predicates)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from liftwatch.alerts import lifecycle
from liftwatch.alerts.errors import IllegalTransition, InvalidCause, NoteRequired
from liftwatch.alerts.lifecycle import Action, CloseCause
from liftwatch.schema import IncidentStatus as Status

S, A = Status, Action
MIGRATIONS = Path(__file__).resolve().parents[3] / "core" / "migrations"

# The whole table: (status, action) -> resulting status, or None = refused.
EXPECTED: dict[tuple[Status, Action], Status | None] = {
    (S.DETECTED, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.ARRIVE): S.ARRIVED,
    (S.ARRIVED, A.RELEASE): S.RELEASED,
    (S.RELEASED, A.CLOSE): S.CLOSED,
    **{(status, A.FALSE_ALARM): S.FALSE_ALARM for status in lifecycle.OPEN_STATUSES},
    **{(status, A.ESCALATE): status for status in lifecycle.OPEN_STATUSES},
}


@pytest.mark.parametrize(("status", "action"), list(itertools.product(Status, Action)))
def test_every_status_action_pair(status: Status, action: Action) -> None:
    expected = EXPECTED.get((status, action))
    if expected is None:
        with pytest.raises(IllegalTransition) as caught:
            lifecycle.transition(status, action)
        assert caught.value.reason == "illegal_transition"
        assert caught.value.current_status == status
        assert caught.value.action == action
    else:
        assert lifecycle.transition(status, action) is expected


@pytest.mark.parametrize("status", list(Status))
def test_actions_are_those_transition_accepts(status: Status) -> None:
    accepted = [action for action in Action if (status, action) in EXPECTED]
    assert list(lifecycle.actions(status)) == accepted


def test_open_and_final_statuses_split_every_status_in_order() -> None:
    assert tuple(Status) == lifecycle.OPEN_STATUSES + lifecycle.FINAL_STATUSES
    assert lifecycle.AT_RISK_STATUSES == (S.DETECTED, S.ACKNOWLEDGED, S.DISPATCHED, S.ARRIVED)


def test_sql_conditions_are_the_partial_indexes_predicates() -> None:
    """PostgreSQL uses a partial index only for a query whose condition implies its predicate: the
    conditions built from the lifecycle must read exactly as the migrations wrote them."""
    assert lifecycle.OPEN_SQL == "status NOT IN ('closed', 'false_alarm', 'auto_cleared')"
    assert lifecycle.FINAL_SQL == "status IN ('closed', 'false_alarm', 'auto_cleared')"
    predicates = set()
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        for statement in migration.read_text(encoding="utf-8").split(";"):
            if re.search(r"CREATE\s+(UNIQUE\s+)?INDEX\b.*\bON\s+incidents\b", statement, re.S):
                predicates |= set(re.findall(r"status (?:NOT )?IN \([^)]*\)", statement))
    assert predicates == {lifecycle.OPEN_SQL, lifecycle.FINAL_SQL}


def test_main_path_reaches_closed_in_order() -> None:
    status = Status.DETECTED
    for action in (A.ACKNOWLEDGE, A.DISPATCH, A.ARRIVE, A.RELEASE, A.CLOSE):
        status = lifecycle.transition(status, action)
    assert status is Status.CLOSED
    assert not lifecycle.is_open(status)


def test_every_new_status_has_a_timestamp_column() -> None:
    for (_, action), after in EXPECTED.items():
        if after is not None and action is not A.ESCALATE:
            assert after in lifecycle.STATUS_TIMESTAMP


@pytest.mark.parametrize("cause", [None, "bad_luck"])
def test_close_needs_a_known_cause(cause: str | None) -> None:
    with pytest.raises(InvalidCause) as caught:
        lifecycle.close_cause(A.CLOSE, cause, "released")
    assert caught.value.reason == ("cause_required" if cause is None else "unknown_cause")
    assert isinstance(caught.value, IllegalTransition)


@pytest.mark.parametrize("note", ["", "   \n"])
def test_close_needs_a_note(note: str) -> None:
    with pytest.raises(NoteRequired) as caught:
        lifecycle.require_note(A.CLOSE, note, "released")
    assert caught.value.reason == "note_required" and isinstance(caught.value, IllegalTransition)
    lifecycle.require_note(A.CLOSE, "brake pad replaced", "released")
    lifecycle.require_note(A.FALSE_ALARM, "", "detected")  # a false alarm may close without one
    lifecycle.require_note(A.ACKNOWLEDGE, "", "detected")


def test_cause_is_optional_for_false_alarm_and_ignored_elsewhere() -> None:
    assert lifecycle.close_cause(A.CLOSE, "vandalism", "released") is CloseCause.VANDALISM
    assert lifecycle.close_cause(A.FALSE_ALARM, None, "detected") is None
    assert lifecycle.close_cause(A.FALSE_ALARM, "terminal_fault", "detected") is CloseCause.TERMINAL_FAULT
    assert lifecycle.close_cause(A.ACKNOWLEDGE, "vandalism", "detected") is None


def test_escalation_stops_at_the_fire_brigade() -> None:
    assert lifecycle.escalate("arrived", 1) == 2
    assert lifecycle.escalate("detected", 2) == 3
    with pytest.raises(IllegalTransition) as caught:
        lifecycle.escalate("detected", 3)
    assert caught.value.reason == "escalation_exhausted"
    with pytest.raises(IllegalTransition):
        lifecycle.escalate("closed", 1)


@pytest.mark.parametrize("status", list(Status))
def test_only_the_system_auto_clears_and_only_unacknowledged(status: Status) -> None:
    assert "auto_clear" not in set(Action)
    if status is Status.DETECTED:
        assert lifecycle.auto_clear(status) is Status.AUTO_CLEARED
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.auto_clear(status)
