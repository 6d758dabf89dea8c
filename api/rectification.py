"""Rectification orders (the hidden-hazard closed loop): statuses, actions and the permission each needs.

An order's lifecycle::

    open --answer (the firm: what it did)--> answered --close (regulator)--> closed
      ^                                          |
      +------------reopen (regulator: not done)--+

A regulator (or admin) opens an order on an elevator or a firm, from a risk list, an incident or
the league; the firm that maintains it answers with what it did; the regulator closes it or sends
it back. Every action needs a note and appends an event (the audit trail). An order still not
closed after its due date is **overdue**. Pure: the routes (``api/orders.py``) store the result.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from liftwatch.api.access import Permission, allows
from liftwatch.api.auth import Role


class OrderStatus(enum.StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class OrderAction(enum.StrEnum):
    ANSWER = "answer"
    REOPEN = "reopen"
    CLOSE = "close"


# action -> (statuses it applies to, status after, event kind, permission it needs: access.POLICY)
_RULES: dict[OrderAction, tuple[frozenset[OrderStatus], OrderStatus, str, Permission]] = {
    OrderAction.ANSWER: (frozenset({OrderStatus.OPEN}), OrderStatus.ANSWERED, "answered", Permission.ANSWER_ORDERS),
    OrderAction.REOPEN: (frozenset({OrderStatus.ANSWERED}), OrderStatus.OPEN, "reopened", Permission.DECIDE_ORDERS),
    OrderAction.CLOSE: (frozenset({OrderStatus.OPEN, OrderStatus.ANSWERED}), OrderStatus.CLOSED, "closed",
                        Permission.DECIDE_ORDERS),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Step:
    """What an allowed action does: the new status and the event to append."""

    status: OrderStatus
    kind: str


class NotAllowed(Exception):
    """The action does not apply: ``role`` is True when the role may never take it (403), False when
    the order's status does not allow it now (409)."""

    def __init__(self, *, role: bool) -> None:
        super().__init__("role" if role else "status")
        self.role = role


def step(action: OrderAction, status: OrderStatus, role: Role) -> Step:
    """The transition ``role`` takes with ``action`` on an order in ``status`` (NotAllowed otherwise)."""
    applies, after, kind, permission = _RULES[action]
    if not allows(role, permission):
        raise NotAllowed(role=True)
    if status not in applies:
        raise NotAllowed(role=False)
    return Step(after, kind)


def actions(status: OrderStatus, role: Role) -> list[OrderAction]:
    """The actions ``role`` may take now (what the console offers)."""
    return [a for a, (applies, _, _, needed) in _RULES.items() if allows(role, needed) and status in applies]


def overdue(status: OrderStatus, due_on: dt.date, today: dt.date) -> bool:
    """Not closed and past its due date (the due day itself is still on time)."""
    return status is not OrderStatus.CLOSED and due_on < today
