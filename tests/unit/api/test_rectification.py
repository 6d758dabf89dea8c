"""Rectification orders: who may take which action in which status, and when an order is overdue."""

from __future__ import annotations

import datetime as dt

import pytest
from liftwatch.api.rectification import NotAllowed, OrderAction, OrderStatus, actions, overdue, step

OPEN, A, C = OrderStatus.OPEN, OrderStatus.ANSWERED, OrderStatus.CLOSED


@pytest.mark.parametrize(
    ("action", "status", "role", "after"),
    [
        (OrderAction.ANSWER, OPEN, "maintainer", A),
        (OrderAction.REOPEN, A, "regulator", OPEN),
        (OrderAction.CLOSE, A, "regulator", C),
        (OrderAction.CLOSE, OPEN, "admin", C),  # withdrawn without an answer
        (OrderAction.ANSWER, A, "maintainer", "status"),  # answered once; a reopen allows another
        (OrderAction.CLOSE, C, "regulator", "status"),
        (OrderAction.CLOSE, A, "maintainer", "role"),  # a firm never closes its own order
        (OrderAction.ANSWER, OPEN, "regulator", "role"),
        (OrderAction.ANSWER, OPEN, "operator", "role"),
    ],
)
def test_transitions(action: OrderAction, status: OrderStatus, role: str, after: object) -> None:
    if isinstance(after, OrderStatus):
        assert step(action, status, role).status is after
        assert action in actions(status, role)
    else:
        with pytest.raises(NotAllowed) as error:
            step(action, status, role)
        assert error.value.role is (after == "role")
        assert action not in actions(status, role)


def test_overdue_after_the_due_day_until_closed() -> None:
    due = dt.date(2026, 5, 10)
    assert (
        not overdue(OPEN, due, due)
        and overdue(OPEN, due, dt.date(2026, 5, 11))
        and overdue(A, due, dt.date(2026, 6, 1))
    )
    assert not overdue(C, due, dt.date(2026, 6, 1))
