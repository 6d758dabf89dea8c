"""The access policy: every role has its rights declared, and the decisions read them."""

from __future__ import annotations

import pytest
from liftwatch.api import access
from liftwatch.api.access import Permission
from liftwatch.api.auth import ROLES, Principal
from liftwatch.reports.stats import Scope

OPERATOR = Principal(role="operator", name="op")
FIRM = Principal(role="maintainer", name="tech", maintainer_id=7)


def test_every_role_has_a_row_and_admin_holds_everything() -> None:
    assert set(access.POLICY) == set(ROLES)
    assert access.POLICY["admin"] == frozenset(Permission)
    assert access.roles_with(Permission.RUN_CENTRE) == ["admin", "operator"]


@pytest.mark.parametrize(
    ("principal", "action", "allowed"),
    [(OPERATOR, "acknowledge", True), (FIRM, "arrive", True), (FIRM, "release", True), (FIRM, "close", False)],
)
def test_a_firm_takes_only_the_on_site_actions(principal: Principal, action: str, allowed: bool) -> None:
    assert access.may_take(principal, action) is allowed


def test_a_firm_sees_its_own_firm_only() -> None:
    assert access.own_firm(OPERATOR) is None and access.own_firm(FIRM) == 7
    assert access.may_see_firm(FIRM, 7) and not access.may_see_firm(FIRM, 8) and not access.may_see_firm(FIRM, None)
    assert access.may_see_firm(OPERATOR, None)
    assert access.may_read_statistics(FIRM, Scope("maintainer", 7))
    assert not access.may_read_statistics(FIRM, Scope("city"))
    # A firm-bound caller without a firm (the database forbids the row) sees nothing.
    assert not access.may_see_firm(Principal(role="maintainer", name="x"), None)
    where: list[str] = []
    params: list[object] = []
    access.restrict(FIRM, "e.maintainer_id", where, params)
    assert (where, params) == (["e.maintainer_id = %s"], [7])
