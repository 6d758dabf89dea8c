"""The callers routes declare: one ``Annotated`` alias per kind of access, declared once.

Every route that needs a signed-in caller takes it as one of these (``principal: Reader``), so
the access a route needs is read off its signature; the routes that need none are public
(health, metrics, sign-in, the console's files). What each permission grants is
:data:`liftwatch.api.access.POLICY`; a caller without it gets 403. Which rows the caller may see
is decided again inside the route (``access.restrict`` and friends: 404 for another firm's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from liftwatch.api import access
from liftwatch.api.access import Permission
from liftwatch.api.auth import Principal, current_principal, stream_principal
from liftwatch.api.errors import forbidden


def requires(*permissions: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """FastAPI dependency: the signed-in caller, who must hold one of ``permissions`` (else 403)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not any(access.allows(principal.role, permission) for permission in permissions):
            raise forbidden()
        return principal

    return dependency


Reader = Annotated[Principal, Depends(current_principal)]
"""Any signed-in caller (what it sees is scoped by ``access``)."""
StreamReader = Annotated[Principal, Depends(stream_principal)]
"""Any signed-in caller, also by the ``access_token`` query parameter (the live feed only)."""
Admin = Annotated[Principal, Depends(requires(Permission.ADMINISTER))]
Actor = Annotated[Principal, Depends(requires(Permission.WORK_INCIDENTS, Permission.REPORT_ON_SITE))]
"""Takes incident lifecycle actions (which ones: ``access.may_take``)."""
Commenter = Annotated[Principal, Depends(requires(Permission.COMMENT))]
Centre = Annotated[Principal, Depends(requires(Permission.RUN_CENTRE))]
WindowWriter = Annotated[Principal, Depends(requires(Permission.DECLARE_WINDOWS))]
StateWriter = Annotated[Principal, Depends(requires(Permission.SET_OUT_OF_SERVICE))]
AlarmLoadReader = Annotated[Principal, Depends(requires(Permission.READ_ALARM_LOAD))]
OrderDecider = Annotated[Principal, Depends(requires(Permission.DECIDE_ORDERS))]
"""Opens rectification orders (reopen and close: ``rectification.step``)."""
