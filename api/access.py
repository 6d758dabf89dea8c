"""Who may see what: the API's access decisions in one place.

A maintenance firm (role ``maintainer``) sees only what belongs to its own firm, decided by the
firm's **id**, never its name (firms can be renamed, and a name can pass from one firm to
another). Everyone else sees everything their role's endpoints serve (which endpoints a role may
use at all is ``auth.require_roles`` on each route). The SQL helpers add the restriction to a
query; the plain functions decide for one object (the live feed).
"""

from __future__ import annotations

from typing import Any

from liftwatch.api.auth import Principal

FIRM_ACTIONS = frozenset({"arrive", "release"})
"""What a maintenance firm may do on its own incidents; operators and admins may do everything."""


def may_see_firm(principal: Principal, maintainer_id: int | None) -> bool:
    """Whether ``principal`` may see an object of firm ``maintainer_id`` (None: no firm, operators only)."""
    return not principal.firm_scoped or (maintainer_id is not None and maintainer_id == principal.maintainer_id)


def restrict(principal: Principal, column: str, where: list[str], params: list[Any]) -> None:
    """Restrict a query to the caller's firm (``column`` holds a firm id) when it is a maintenance firm."""
    if principal.firm_scoped:
        where.append(f"{column} = %s")
        params.append(principal.maintainer_id)


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
    if not principal.firm_scoped:
        return _ALL_TIME, {}
    return _FIRM_PERIODS, {"periods_elevator": registration_code, "periods_firm": principal.maintainer_id}


def since_handover(principal: Principal, elevator_sql: str, firm_sql: str = "%s") -> tuple[str, list[Any]]:
    """A condition on ``ts`` keeping the samples of the caller's current period with the elevator, and its parameters.

    For queries over the elevators a firm maintains now (``elevator_sql`` is their registration
    code, a column or a placeholder): the samples from before the firm took the elevator over are
    not its own. ``firm_sql`` is the placeholder of the one parameter (for named-style queries).
    """
    if not principal.firm_scoped:
        return "TRUE", []
    return (
        "ts >= coalesce((SELECT h.since FROM elevator_maintainers h"
        f" WHERE h.registration_code = {elevator_sql} AND h.maintainer_id = {firm_sql} AND h.until IS NULL),"
        " 'infinity')",
        [principal.maintainer_id],
    )
