"""``GET /api/v1/stats/monthly``: the regulators' monthly statistics over HTTP.

The API package mounts :func:`build_router` with its authentication dependency. Regulators,
admins and operators read any scope; a maintenance firm only its own (another scope answers 404,
so a firm cannot probe which firms or districts exist). Errors are the API's: a stable code
(``bad_month``, ``bad_scope``, ``not_found``) and a message in the caller's Accept-Language.
"""

# No `from __future__ import annotations`: FastAPI must see the Depends() built in build_router.
import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Protocol

import anyio
from fastapi import APIRouter, Depends, Query, Request
from liftwatch import db
from liftwatch.api.errors import ApiError
from liftwatch.config import CommonSettings
from liftwatch.reports import stats
from liftwatch.reports.errors import BadMonth, BadScope
from liftwatch.reports.monthly import monthly_report, scope_exists

READ_ANY_SCOPE = frozenset({"admin", "operator", "regulator"})
# Reports computed at once per API process, each on its own database connection (outside the
# API's pool): a burst of requests queues here instead of opening a connection per request.
REPORT_CONCURRENCY = 4


class Principal(Protocol):
    """What the API's authentication dependency returns."""

    @property
    def role(self) -> str: ...

    @property
    def maintainer_id(self) -> int | None: ...


def allowed(principal: Principal, scope: stats.Scope) -> bool:
    """May ``principal`` read statistics of ``scope``?"""
    if principal.role in READ_ANY_SCOPE:
        return True
    return (
        principal.role == "maintainer"
        and principal.maintainer_id is not None
        and scope == stats.Scope("maintainer", principal.maintainer_id)
    )


def build_router(
    principal_dependency: Callable[..., Any],
    *,
    settings: CommonSettings | None = None,
) -> APIRouter:
    """The statistics router.

    Settings: ``settings`` if given, else those of the mounting application
    (``app.state.api.settings``, the API package's), else the environment (LIFTWATCH_*).
    """
    router = APIRouter(prefix="/api/v1/stats", tags=["statistics"])
    limiter = anyio.CapacityLimiter(REPORT_CONCURRENCY)

    def settings_of(request: Request) -> CommonSettings:
        if settings is not None:
            return settings
        mounted = getattr(getattr(request.app.state, "api", None), "settings", None)
        return mounted if isinstance(mounted, CommonSettings) else CommonSettings()

    def compute(config: CommonSettings, month: dt.date, scope: stats.Scope, trend: int) -> dict[str, Any] | None:
        with db.connect(config.require_database_url(), autocommit=True) as conn:
            if not scope_exists(conn, scope):
                return None
            report = monthly_report(
                conn, month, scope, config.site_timezone, dt.datetime.now(dt.UTC), trend_months=trend
            )
        return report.to_json()

    @router.get("/monthly", summary="Monthly statistics of a scope")
    async def monthly(
        request: Request,
        principal: Annotated[Any, Depends(principal_dependency)],
        month: Annotated[str, Query(description="Site-local month, YYYY-MM.")],
        scope: Annotated[str, Query(description="city | district:<name> | maintainer:<id> | use_unit:<id>")] = "city",
        trend: Annotated[int, Query(ge=0, le=24, description="Months of trend to include (0-24).")] = 0,
    ) -> dict[str, Any]:
        try:
            first = stats.parse_month(month)
            chosen = stats.parse_scope(scope)
        except BadMonth as error:
            raise ApiError(error.reason, 422, value=month) from error
        except BadScope as error:
            raise ApiError(error.reason, 422, value=scope) from error
        if not allowed(principal, chosen):
            raise ApiError("not_found", 404)
        result = await anyio.to_thread.run_sync(compute, settings_of(request), first, chosen, trend, limiter=limiter)
        if result is None:
            raise ApiError("not_found", 404)
        return result

    return router
