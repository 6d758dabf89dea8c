"""Finished incidents for the operators' history: search, filter, export (``/api/v1/history``).

The live board shows open incidents; this is the other half: incidents closed, closed as false
alarm or cleared by themselves, filtered by detection period, district, firm, fault code, close
cause or elevator, newest first. Each row opens its full trail through ``GET /api/v1/incidents/{id}``.
A maintenance firm sees only its own incidents (api.access).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from liftwatch import i18n
from liftwatch.alerts import lifecycle
from liftwatch.alerts.lifecycle import CloseCause
from liftwatch.api import access
from liftwatch.api.app import language, state
from liftwatch.api.auth import Principal
from liftwatch.api.deps import Reader
from liftwatch.api.errors import ApiError
from liftwatch.api.models import Instant
from liftwatch.api.pagination import decode_cursor_parts, encode_cursor
from liftwatch.reports import sheet
from liftwatch.reports.api import EXPORT_TYPES
from liftwatch.schema import FaultCode
from psycopg.rows import dict_row

router = APIRouter(prefix="/api/v1/history", tags=["incidents"])

MAX_PERIOD = timedelta(days=366)
MAX_EXPORT = 100_000
_COLUMNS = ("id", "detected_at", "code", "status", "close_cause", "registration_code", "rescue_code", "address",
            "district", "maintainer", "arrive_s", "closed_at")  # fmt: skip


class Filters:
    """The query parameters both the list and the export take."""

    def __init__(
        self,
        since: Annotated[Instant | None, Query(description="Detected at or after (ISO 8601 with offset).")] = None,
        until: Annotated[Instant | None, Query(description="Detected before; default now, at most 366 days.")] = None,
        district: Annotated[str | None, Query(max_length=200)] = None,
        maintainer_id: Annotated[int | None, Query(ge=1)] = None,
        code: Annotated[list[FaultCode] | None, Query()] = None,
        cause: Annotated[list[CloseCause] | None, Query()] = None,
        q: Annotated[str | None, Query(max_length=40, description="Registration code or rescue code.")] = None,
    ) -> None:
        self.since, self.until, self.district, self.maintainer_id = since, until, district, maintainer_id
        self.code, self.cause, self.q = code, cause, q

    def where(self, principal: Principal) -> tuple[list[str], list[Any]]:
        until = self.until or datetime.now(UTC)
        since = self.since or until - timedelta(days=30)
        if since.tzinfo is None or until.tzinfo is None:
            raise ApiError("validation_error", 422, detail="times need a UTC offset")
        if not since < until or until - since > MAX_PERIOD:
            raise ApiError("validation_error", 422, detail="since < until, at most 366 days apart")
        where = ["i.status = ANY(%s)", "i.detected_at >= %s", "i.detected_at < %s"]
        params: list[Any] = [[str(s) for s in lifecycle.FINAL_STATUSES], since, until]
        access.restrict(principal, "i.maintainer_id", where, params)
        for column, value in (("district", self.district), ("maintainer_id", self.maintainer_id)):
            if value is not None:
                where.append(f"i.{column} = %s")
                params.append(value)
        if self.code:
            where.append("i.code = ANY(%s)")
            params.append([str(c) for c in self.code])
        if self.cause:
            where.append("i.close_cause = ANY(%s)")
            params.append([str(c) for c in self.cause])
        if self.q:
            where.append("(i.registration_code = %s OR e.rescue_code = %s)")
            params += [self.q.strip().upper(), self.q.strip()]
        return where, params


_SELECT = (
    "SELECT i.id, i.detected_at, i.code, i.severity, i.status, i.close_cause, i.registration_code, e.rescue_code,"
    " e.address, i.district, i.maintainer_id, f.name AS maintainer, i.closed_at, i.escalation_level,"
    " extract(epoch FROM i.arrived_at - i.detected_at)::float AS arrive_s"
    " FROM incidents i"
    " LEFT JOIN maintenance_firms f ON f.id = i.maintainer_id"
    " LEFT JOIN elevators e ON e.registration_code = i.registration_code"
)


async def _rows(request: Request, where: list[str], params: list[Any], limit: int) -> list[dict[str, Any]]:
    async with state(request).pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY i.detected_at DESC, i.id DESC LIMIT %s",
            [*params, limit],
        )
        rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


@router.get("", summary="Finished incidents, newest first")
async def history(
    request: Request,
    principal: Reader,
    filters: Annotated[Filters, Depends()],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """One page, latest detection first; ``next_cursor`` continues it."""
    where, params = filters.where(principal)
    if cursor is not None:
        where.append("(i.detected_at, i.id) < (%s, %s)")
        params += _position(cursor)
    rows = await _rows(request, where, params, limit + 1)
    last = rows[limit - 1] if len(rows) > limit else None
    return {
        "items": rows[:limit],
        "next_cursor": encode_cursor(last["detected_at"].isoformat(), last["id"]) if last else None,
    }


def _position(cursor: str) -> list[Any]:
    """(detected_at, id) of the last row of the previous page (400 ``invalid_cursor`` otherwise)."""
    parts = decode_cursor_parts(cursor)
    try:
        if len(parts) != 2 or not parts[1].isdigit() or len(parts[1]) > 18:
            raise ValueError(cursor)
        return [datetime.fromisoformat(parts[0]), int(parts[1])]
    except ValueError as error:
        raise ApiError("invalid_cursor", 400) from error


@router.get("/export", summary="Finished incidents as a file", response_class=Response)
async def export(
    request: Request,
    principal: Reader,
    filters: Annotated[Filters, Depends()],
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
    lang: Annotated[Literal["zh", "en"] | None, Query()] = None,
) -> Response:
    """Every incident the filters match (at most 100,000), newest first, in the page's language."""
    where, params = filters.where(principal)
    rows = await _rows(request, where, params, MAX_EXPORT)
    chosen = lang or language(request)
    headers = [i18n.t(f"pages.history.col.{c}", chosen) for c in _COLUMNS]

    def cell(row: dict[str, Any], column: str) -> Any:
        value = row[column]
        if column == "code":
            return i18n.t(f"common.fault.{value}", chosen)
        if column == "status":
            return i18n.t(f"common.status.{value}", chosen)
        if column == "close_cause":
            return i18n.t(f"common.cause.{value}", chosen) if value else None
        if isinstance(value, datetime):
            return i18n.format_datetime(value, state(request).settings.site_timezone)
        if column == "arrive_s":
            return None if value is None else round(value / 60, 1)
        return value

    table = [[cell(row, c) for c in _COLUMNS] for row in rows]
    title = i18n.t("pages.nav.history", chosen)
    data = sheet.to_csv(headers, table) if format == "csv" else sheet.to_xlsx(title, headers, table)
    return Response(data, media_type=EXPORT_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="liftwatch-history.{format}"'})  # fmt: skip
