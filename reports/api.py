"""``GET /api/v1/stats/monthly``: the regulators' monthly statistics over HTTP.

Also ``GET /api/v1/stats/monthly/export`` (the same report as a CSV, XLSX or PDF file: what the
console's statistics page downloads) and ``GET /api/v1/stats/scopes`` (the scopes the caller may
pick: districts, firms, use units matching a search), ``GET /api/v1/stats/league`` (the firm league
over a rolling window, with the blacklist-review flags) and its ``/{firm}/evidence``,
``GET /api/v1/stats/risk`` (the fleet risk lists and the "inspect next" ranking) and its export.

The API package mounts :func:`build_router`. Who reads which scope is ``liftwatch.api.access``'s:
regulators, admins and operators read any scope; a maintenance firm only its own (another scope
answers 404, so a firm cannot probe which firms or districts exist). Errors are the API's: a stable code
(``bad_month``, ``bad_scope``, ``not_found``) and a message in the caller's Accept-Language.
"""

# No `from __future__ import annotations`: FastAPI must see the annotations built in build_router.
import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from liftwatch import db, i18n
from liftwatch.api import access
from liftwatch.api.auth import Principal
from liftwatch.api.deps import Reader
from liftwatch.api.errors import ApiError
from liftwatch.config import CommonSettings
from liftwatch.reports import export as export_module
from liftwatch.reports import geo, sheet, stats
from liftwatch.reports import league as league_module
from liftwatch.reports import risk as risk_module
from liftwatch.reports.errors import BadMonth, BadScope
from liftwatch.reports.monthly import MonthlyReport, monthly_report, scope_exists

EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
# The most use units a scope search returns (a city has tens of thousands).
USE_UNIT_MATCHES = 20
# Reports computed at once per API process, each on its own database connection (outside the
# API's pool): a burst of requests queues here instead of opening a connection per request.
REPORT_CONCURRENCY = 4


def build_router(*, settings: CommonSettings | None = None) -> APIRouter:
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

    def compute(config: CommonSettings, month: dt.date, scope: stats.Scope, trend: int) -> MonthlyReport | None:
        with db.connect(config.require_database_url(), autocommit=True) as conn:
            if not scope_exists(conn, scope):
                return None
            return monthly_report(conn, month, scope, config.site_timezone, dt.datetime.now(dt.UTC), trend_months=trend)

    async def report_of(request: Request, principal: Principal, month: str, scope: str, trend: int) -> MonthlyReport:
        try:
            first = stats.parse_month(month)
            chosen = stats.parse_scope(scope)
        except BadMonth as error:
            raise ApiError(error.reason, 422, value=month) from error
        except BadScope as error:
            raise ApiError(error.reason, 422, value=scope) from error
        if not access.may_read_statistics(principal, chosen):
            raise ApiError("not_found", 404)
        result = await anyio.to_thread.run_sync(compute, settings_of(request), first, chosen, trend, limiter=limiter)
        if result is None:
            raise ApiError("not_found", 404)
        return result

    @router.get("/monthly", summary="Monthly statistics of a scope")
    async def monthly(
        request: Request,
        principal: Reader,
        month: Annotated[str, Query(description="Site-local month, YYYY-MM.")],
        scope: Annotated[str, Query(description="city | district:<name> | maintainer:<id> | use_unit:<id>")] = "city",
        trend: Annotated[int, Query(ge=0, le=24, description="Months of trend to include (0-24).")] = 0,
    ) -> dict[str, Any]:
        return (await report_of(request, principal, month, scope, trend)).to_json()

    @router.get("/monthly/export", summary="The monthly report of a scope as a file", response_class=Response)
    async def export(
        request: Request,
        principal: Reader,
        month: Annotated[str, Query(description="Site-local month, YYYY-MM.")],
        format: Annotated[Literal["csv", "xlsx", "pdf"], Query(description="csv | xlsx | pdf")],
        scope: Annotated[str, Query(description="city | district:<name> | maintainer:<id> | use_unit:<id>")] = "city",
        lang: Annotated[
            Literal["zh", "en"] | None, Query(description="Language of the file (default: Accept-Language).")
        ] = None,
    ) -> Response:
        """CSV, XLSX or PDF with a 12-month trend: the files ``liftwatch report monthly`` writes.

        ``lang`` is a parameter because a browser download (a link) cannot set Accept-Language.
        """
        report = await report_of(request, principal, month, scope, 12)
        chosen = lang or i18n.negotiate(request.headers.get("accept-language"), settings_of(request).default_language)
        data = await anyio.to_thread.run_sync(export_module.render, report, format, chosen, limiter=limiter)
        name = f"liftwatch-{report.month}-{report.scope.replace(':', '-')}.{format}"
        return Response(
            data,
            media_type=EXPORT_TYPES[format],
            # ASCII name plus the RFC 5987 form, so a district's Chinese name survives the download.
            headers={
                "Content-Disposition": f'attachment; filename="{name.encode("ascii", "replace").decode()}";'
                f" filename*=UTF-8''{quote(name)}"
            },
        )

    def scopes_of(config: CommonSettings, principal: Principal, use_unit: str | None) -> dict[str, Any]:
        own = access.own_firm(principal)
        with db.connect(config.require_database_url(), autocommit=True) as conn:
            if own is not None:
                firm = conn.execute("SELECT id, name FROM maintenance_firms WHERE id = %s", (own,)).fetchall()
                return {
                    "city": False,
                    "districts": [],
                    "firms": [{"id": i, "name": n} for i, n in firm],
                    "use_units": [],
                }
            districts = [r[0] for r in conn.execute("SELECT DISTINCT district FROM elevators ORDER BY 1")]
            firms = conn.execute("SELECT id, name FROM maintenance_firms ORDER BY name").fetchall()
            units: list[tuple[int, str]] = []
            if use_unit:
                pattern = "%" + db.like_escape(use_unit) + "%"
                units = conn.execute(
                    "SELECT id, name FROM use_units WHERE name ILIKE %s OR id::text = %s ORDER BY name LIMIT %s",
                    (pattern, use_unit, USE_UNIT_MATCHES),
                ).fetchall()
        return {
            "city": True,
            "districts": districts,
            "firms": [{"id": i, "name": n} for i, n in firms],
            "use_units": [{"id": i, "name": n} for i, n in units],
        }

    def site_today(config: CommonSettings) -> dt.date:
        return dt.datetime.now(dt.UTC).astimezone(ZoneInfo(config.site_timezone)).date()

    def last_month(config: CommonSettings, end: str | None) -> dt.date:
        """``end`` or, by default, the last complete site-local month."""
        if end is not None:
            try:
                return stats.parse_month(end)
            except BadMonth as error:
                raise ApiError(error.reason, 422, value=end) from error
        return stats.previous_month(site_today(config).replace(day=1))

    def window(months: int) -> int:
        if months not in league_module.WINDOWS:
            raise ApiError("validation_error", 422, detail="months must be 3, 6 or 12")
        return months

    def league_of(config: CommonSettings, last: dt.date, months: int, firm: int | None) -> dict[str, Any]:
        with db.connect(config.require_database_url(), autocommit=True) as conn:
            table = league_module.league(
                conn,
                last,
                months,
                config.league_thresholds,
                config.site_timezone,
                dt.datetime.now(dt.UTC),
                maintainer_id=firm,
            )
        return table.to_json()

    @router.get("/league", summary="Maintenance firms over a rolling window, flagged for blacklist review")
    async def league(
        request: Request,
        principal: Reader,
        months: Annotated[int, Query(description="Rolling window: 3, 6 or 12 months.")] = 3,
        end: Annotated[
            str | None, Query(description="Last month of the window, YYYY-MM (default: last month).")
        ] = None,
    ) -> dict[str, Any]:
        """Every firm's record (a firm: only its own), flagged firms first."""
        config = settings_of(request)
        last = last_month(config, end)
        return await anyio.to_thread.run_sync(
            league_of, config, last, window(months), access.own_firm(principal), limiter=limiter
        )

    def evidence_of(config: CommonSettings, firm: int, last: dt.date, months: int) -> list[dict[str, Any]] | None:
        with db.connect(config.require_database_url(), autocommit=True) as conn:
            if not scope_exists(conn, stats.Scope("maintainer", firm)):
                return None
            rows = league_module.evidence(conn, firm, last, months, config.site_timezone)
        return [{**r, "detected_at": r["detected_at"].isoformat()} for r in rows]

    @router.get("/league/{firm_id}/evidence", summary="The incidents behind a firm's league figures")
    async def league_evidence(
        request: Request,
        principal: Reader,
        firm_id: Annotated[int, Path(ge=1)],
        months: Annotated[int, Query(description="Rolling window: 3, 6 or 12 months.")] = 3,
        end: Annotated[str | None, Query(description="Last month of the window, YYYY-MM.")] = None,
    ) -> dict[str, Any]:
        """Incidents of the window with why each counts (missed deadline, repeat, false alarm)."""
        if access.own_firm(principal) not in (None, firm_id):
            raise ApiError("not_found", 404)
        config = settings_of(request)
        last = last_month(config, end)
        rows = await anyio.to_thread.run_sync(evidence_of, config, firm_id, last, window(months), limiter=limiter)
        if rows is None:
            raise ApiError("not_found", 404)
        return {"maintainer_id": firm_id, "months": months, "last_month": f"{last:%Y-%m}", "items": rows}

    def risk_filter(principal: Principal, district: str | None, maintainer_id: int | None) -> risk_module.Filter:
        firm = access.own_firm(principal)
        if firm is not None and maintainer_id not in (None, firm):
            raise ApiError("not_found", 404)
        return risk_module.Filter(district, firm if firm is not None else maintainer_id)

    def risk_of(
        config: CommonSettings, where: risk_module.Filter, chosen: Any, limit: int, offset: int
    ) -> dict[str, Any]:
        with db.connect(config.require_database_url(), autocommit=True) as conn:
            return risk_module.risk(
                conn, where, chosen, site_today(config), dt.datetime.now(dt.UTC), limit=limit, offset=offset
            )

    RiskListQuery = Annotated[
        risk_module.RiskList | None,
        Query(description="overdue | uninsured | old | repeat | offline; none: every elevator with a score."),
    ]

    @router.get("/risk", summary="Fleet risk lists and the inspect-next ranking")
    async def risk(
        request: Request,
        principal: Reader,
        list: RiskListQuery = None,
        district: Annotated[str | None, Query(max_length=200)] = None,
        maintainer_id: Annotated[int | None, Query(ge=1)] = None,
        limit: Annotated[int, Query(ge=1, le=risk_module.MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        """Counts per list and district, and one page of a list, highest risk score first."""
        where = risk_filter(principal, district, maintainer_id)
        config = settings_of(request)
        return await anyio.to_thread.run_sync(risk_of, config, where, list, limit, offset, limiter=limiter)

    @router.get("/risk/export", summary="A fleet risk list as a file", response_class=Response)
    async def risk_export(
        request: Request,
        principal: Reader,
        format: Annotated[Literal["csv", "xlsx"], Query()],
        list: RiskListQuery = None,
        district: Annotated[str | None, Query(max_length=200)] = None,
        maintainer_id: Annotated[int | None, Query(ge=1)] = None,
        lang: Annotated[Literal["zh", "en"] | None, Query()] = None,
    ) -> Response:
        """Every elevator of the list (not a page), highest score first."""
        where = risk_filter(principal, district, maintainer_id)
        config = settings_of(request)
        found = await anyio.to_thread.run_sync(risk_of, config, where, list, 10_000_000, 0, limiter=limiter)
        chosen = lang or i18n.negotiate(request.headers.get("accept-language"), config.default_language)
        columns = ("registration_code", "rescue_code", "district", "address", "maintainer", "installed_on",
                   "next_inspection_due", "insured", "terminal_id", "last_seen_at", "repeats", "score")  # fmt: skip
        headers = [i18n.t(f"pages.risk.col.{c}", chosen) for c in columns] + [i18n.t("pages.risk.col.lists", chosen)]
        rows = [
            [v if isinstance(v, int | float | str) or v is None else str(v) for v in (item[c] for c in columns)]
            + [", ".join(i18n.t(f"pages.risk.list.{name}", chosen) for name in item["lists"])]
            for item in found["items"]
        ]
        title = i18n.t(f"pages.risk.list.{list or 'next'}", chosen)
        data = sheet.to_csv(headers, rows) if format == "csv" else sheet.to_xlsx(title, headers, rows)
        name = f"liftwatch-risk-{list or 'next'}-{found['today']}.{format}"
        return Response(
            data, media_type=EXPORT_TYPES[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    def map_of(config: CommonSettings, box: geo.Box, cells: int, firm: int | None) -> dict[str, Any]:
        with db.connect(config.require_database_url(), autocommit=True) as conn:
            return geo.clusters(conn, box, cells, firm, site_today(config))

    @router.get("/map", summary="Elevators clustered on a grid, and open incidents, inside a box")
    async def city_map(
        request: Request,
        principal: Reader,
        west: Annotated[float, Query(ge=-180, le=180)] = 120.8,
        south: Annotated[float, Query(ge=-90, le=90)] = 30.6,
        east: Annotated[float, Query(ge=-180, le=180)] = 122.0,
        north: Annotated[float, Query(ge=-90, le=90)] = 31.9,
        cells: Annotated[int, Query(ge=1, le=geo.MAX_CELLS)] = 60,
    ) -> dict[str, Any]:
        """Default box: Shanghai. A firm: its own elevators and incidents."""
        box = geo.Box(west, south, east, north)
        if not box.valid():
            raise ApiError("validation_error", 422, detail="west < east and south < north")
        config = settings_of(request)
        return await anyio.to_thread.run_sync(map_of, config, box, cells, access.own_firm(principal), limiter=limiter)

    @router.get("/scopes", summary="The scopes the caller may read")
    async def scopes(
        request: Request,
        principal: Reader,
        use_unit: Annotated[str | None, Query(max_length=100, description="Search use units by name or id.")] = None,
    ) -> dict[str, Any]:
        """Districts and firms for the statistics page's scope picker; a firm gets only itself."""
        return await anyio.to_thread.run_sync(scopes_of, settings_of(request), principal, use_unit, limiter=limiter)

    return router
