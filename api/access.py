"""Who may see what and do what: the API's access policy, in one place.

:data:`POLICY` says which role holds which :class:`Permission`. A route asks for a permission
through its caller's alias in :mod:`liftwatch.api.deps` (403 without it); the decisions that
depend on more than the route (an incident action, an order action, a statistics scope) ask the
functions here.

A role without ``EVERY_FIRM`` (the maintenance firm, role ``maintainer``) sees only what belongs to
its own firm, decided by the firm's **id**, never its name (firms can be renamed, and a name can
pass from one firm to another); another firm's object answers 404 exactly as if it did not exist.
The SQL helpers add that restriction to a query (every list and every lookup of one object); the
plain functions decide for one object (the live feed) or one statistics scope.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from liftwatch.alerts.lifecycle import Action
from liftwatch.api.auth import ROLES, Principal, Role
from liftwatch.reports.stats import Scope


class Permission(enum.StrEnum):
    """What a role may be allowed to do (reading its own firm's objects needs none: every role may)."""

    EVERY_FIRM = "every_firm"
    """See every firm's objects and statistics (without it: only its own firm's)."""
    ADMINISTER = "administer"
    """Write the registry (elevators, firms, terminals), set operator desks, read dead letters."""
    WORK_INCIDENTS = "work_incidents"
    """Take every lifecycle action on an incident (acknowledge, dispatch, close, ...)."""
    REPORT_ON_SITE = "report_on_site"
    """Take the on-site actions on an incident: ``ON_SITE_ACTIONS``."""
    COMMENT = "comment"
    """Comment on an incident's trail."""
    RUN_CENTRE = "run_centre"
    """The emergency centre's work: record calls, assign incidents, acknowledge groups, shelve alarms."""
    DECLARE_WINDOWS = "declare_windows"
    """Declare and end maintenance windows."""
    SET_OUT_OF_SERVICE = "set_out_of_service"
    """Mark an elevator out of service and back."""
    READ_ALARM_LOAD = "read_alarm_load"
    """Read the operator desks and their alarm load."""
    DECIDE_ORDERS = "decide_orders"
    """Open, reopen and close rectification orders."""
    ANSWER_ORDERS = "answer_orders"
    """Answer a rectification order (say what was done)."""


_P = Permission
POLICY: Mapping[Role, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "operator": frozenset(
        {_P.EVERY_FIRM, _P.WORK_INCIDENTS, _P.COMMENT, _P.RUN_CENTRE, _P.DECLARE_WINDOWS, _P.READ_ALARM_LOAD}
    ),
    "regulator": frozenset({_P.EVERY_FIRM, _P.SET_OUT_OF_SERVICE, _P.READ_ALARM_LOAD, _P.DECIDE_ORDERS}),
    "maintainer": frozenset(
        {_P.REPORT_ON_SITE, _P.COMMENT, _P.DECLARE_WINDOWS, _P.SET_OUT_OF_SERVICE, _P.ANSWER_ORDERS}
    ),
}
"""Which role may do what: the one table of the API's rights (a permission a role lacks is 403)."""

ON_SITE_ACTIONS = frozenset({Action.ARRIVE, Action.RELEASE})
"""The incident actions of whoever is on site (``REPORT_ON_SITE``): marking arrival and release."""

# No firm has this id (identity columns start at 1): a firm-bound caller without a firm sees nothing.
_NO_FIRM = -1


def allows(role: Role, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission``."""
    return permission in POLICY[role]


def roles_with(permission: Permission) -> list[Role]:
    """The roles holding ``permission`` (for SQL over stored roles)."""
    return [role for role in ROLES if permission in POLICY[role]]


def may_take(principal: Principal, action: Action) -> bool:
    """Whether the caller may take the incident lifecycle ``action`` (on an incident it may see)."""
    return allows(principal.role, _P.WORK_INCIDENTS) or (
        allows(principal.role, _P.REPORT_ON_SITE) and action in ON_SITE_ACTIONS
    )


def own_firm(principal: Principal) -> int | None:
    """The firm whose objects alone the caller sees, or None when it sees every firm's."""
    if allows(principal.role, _P.EVERY_FIRM):
        return None
    return principal.maintainer_id if principal.maintainer_id is not None else _NO_FIRM


def may_see_firm(principal: Principal, maintainer_id: int | None) -> bool:
    """Whether the caller may see an object of firm ``maintainer_id`` (None: no firm); the live feed asks this."""
    firm = own_firm(principal)
    return firm is None or maintainer_id == firm


def may_read_statistics(principal: Principal, scope: Scope) -> bool:
    """Whether the caller may read statistics of ``scope`` (a firm: its own firm's scope only)."""
    firm = own_firm(principal)
    return firm is None or scope == Scope("maintainer", firm)


def restrict(principal: Principal, column: str, where: list[str], params: list[Any]) -> None:
    """Restrict a query to the caller's firm (``column`` holds a firm id) when it does not see every firm."""
    firm = own_firm(principal)
    if firm is not None:
        where.append(f"{column} = %s")
        params.append(firm)


def same_scope(before: Principal, now: Principal | None) -> bool:
    """Whether a caller re-resolved later (token looked up again) still sees exactly what it saw."""
    return now is not None and (now.role, now.maintainer_id) == (before.role, before.maintainer_id)


_ALL_TIME = "SELECT '-infinity'::timestamptz AS since, 'infinity'::timestamptz AS until"
_FIRM_PERIODS = (
    "SELECT since, coalesce(until, 'infinity') AS until FROM elevator_maintainers"
    " WHERE registration_code = %(periods_elevator)s AND maintainer_id = %(periods_firm)s"
)


def telemetry_periods(principal: Principal, registration_code: str | None) -> tuple[str, dict[str, Any]]:
    """SQL of the ``(since, until)`` periods whose samples of an elevator the caller may read, and its parameters.

    A maintenance firm reads the samples taken while it maintained the elevator (the history the
    ``elevator_maintainers`` triggers keep): after a handover the previous firm sees nothing newer,
    the new firm nothing older. Other roles read all of it. Periods do not overlap, so a join on
    them never repeats a sample.
    """
    firm = own_firm(principal)
    if firm is None:
        return _ALL_TIME, {}
    return _FIRM_PERIODS, {"periods_elevator": registration_code, "periods_firm": firm}


def since_handover(principal: Principal, elevator_sql: str, firm_sql: str = "%s") -> tuple[str, list[Any]]:
    """A condition on ``ts`` keeping the samples of the caller's current period with the elevator, and its parameters.

    For queries over the elevators a firm maintains now (``elevator_sql`` is their registration
    code, a column or a placeholder): the samples from before the firm took the elevator over are
    not its own. ``firm_sql`` is the placeholder of the one parameter (for named-style queries).
    """
    firm = own_firm(principal)
    if firm is None:
        return "TRUE", []
    return (
        "ts >= coalesce((SELECT h.since FROM elevator_maintainers h"
        f" WHERE h.registration_code = {elevator_sql} AND h.maintainer_id = {firm_sql} AND h.until IS NULL),"
        " 'infinity')",
        [firm],
    )
