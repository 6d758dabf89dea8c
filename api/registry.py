"""Registry endpoints: elevators (search, rescue-code lookup, telemetry), maintenance firms, terminals.

Admins write; everyone else reads what their role allows. A maintenance firm sees only its own
elevators, its own firm record and the terminals fitted to its elevators; anything else answers
404 exactly as if it did not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from liftwatch.api import access
from liftwatch.api.app import state
from liftwatch.api.auth import Principal
from liftwatch.api.deps import Admin, Reader
from liftwatch.api.errors import ApiError, not_found
from liftwatch.api.models import (
    Elevator,
    ElevatorCreate,
    ElevatorFields,
    ElevatorPage,
    Instant,
    Maintainer,
    MaintainerCreate,
    RegistrationCode,
    RescueCode,
    TelemetryPoint,
    TelemetrySeries,
    Terminal,
    TerminalCreate,
    TerminalId,
    TerminalUpdate,
)
from liftwatch.api.pagination import decode_cursor_parts, encode_cursor
from liftwatch.db import like_escape
from psycopg import errors as pg_errors

router = APIRouter(prefix="/api/v1", tags=["registry"])

_ELEVATOR_SELECT = (
    "SELECT e.*, u.name AS use_unit, f.name AS maintainer, t.terminal_id"
    " FROM elevators e JOIN use_units u ON u.id = e.use_unit_id"
    " JOIN maintenance_firms f ON f.id = e.maintainer_id"
    " LEFT JOIN terminals t ON t.registration_code = e.registration_code"
)
_MAX_TELEMETRY_RANGE = timedelta(days=31)


async def _elevator(request: Request, principal: Principal, column: str, value: str) -> dict[str, Any]:
    where, params = [f"e.{column} = %s"], [value]
    access.restrict(principal, "e.maintainer_id", where, params)
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(f"{_ELEVATOR_SELECT} WHERE {' AND '.join(where)}", params)
        row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        raise not_found("elevator_not_found")
    return row


@router.get("/elevators", response_model=ElevatorPage)
async def list_elevators(
    request: Request,
    principal: Reader,
    q: Annotated[
        str | None, Query(max_length=100, description="Registration code prefix, rescue code or address.")
    ] = None,
    district: Annotated[str | None, Query(max_length=200)] = None,
    maintainer_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> ElevatorPage:
    """Elevators ordered by registration code (keyset pagination)."""
    where: list[str] = ["TRUE"]
    params: list[object] = []
    access.restrict(principal, "e.maintainer_id", where, params)
    if q:
        where.append("(e.registration_code LIKE %s OR e.rescue_code = %s OR e.address ILIKE %s)")
        params += [like_escape(q.upper()) + "%", q, "%" + like_escape(q) + "%"]
    if district is not None:
        where.append("e.district = %s")
        params.append(district)
    if maintainer_id is not None:
        where.append("e.maintainer_id = %s")
        params.append(maintainer_id)
    if cursor is not None:
        where.append("e.registration_code > %s")
        params.append(decode_cursor_parts(cursor)[0])
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(
            f"{_ELEVATOR_SELECT} WHERE {' AND '.join(where)} ORDER BY e.registration_code LIMIT %s",
            [*params, limit + 1],
        )
        rows = await cur.fetchall()
    items = [Elevator.model_validate(row) for row in rows[:limit]]
    return ElevatorPage(
        items=items, next_cursor=encode_cursor(items[-1].registration_code) if len(rows) > limit else None
    )


@router.get("/elevators/by-rescue-code/{rescue_code}", response_model=Elevator)
async def elevator_by_rescue_code(
    request: Request, principal: Reader, rescue_code: Annotated[RescueCode, Path()]
) -> Elevator:
    """The elevator with this rescue code (the number posted in the car; the operator's first question)."""
    return Elevator.model_validate(await _elevator(request, principal, "rescue_code", rescue_code))


@router.get("/elevators/{registration_code}", response_model=Elevator)
async def get_elevator(
    request: Request, principal: Reader, registration_code: Annotated[RegistrationCode, Path()]
) -> Elevator:
    """One elevator."""
    return Elevator.model_validate(await _elevator(request, principal, "registration_code", registration_code))


async def _firm_id(conn: Any, name: str) -> int:
    cur = await conn.execute("SELECT id FROM maintenance_firms WHERE name = %s", (name,))
    row = await cur.fetchone()
    if row is None:
        raise ApiError("maintainer_not_found", 422)
    return int(row["id"])


async def _use_unit_id(conn: Any, name: str) -> int:
    cur = await conn.execute(
        "INSERT INTO use_units (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (name,),
    )
    row = await cur.fetchone()
    return int(row["id"])


_ELEVATOR_COLUMNS = (
    "rescue_code", "kind", "address", "district", "latitude", "longitude", "manufacturer", "model", "installed_on",
    "rated_speed", "rated_load", "bottom_floor", "top_floor", "last_inspection", "next_inspection_due", "insured",
)  # fmt: skip


@router.post("/elevators", response_model=Elevator, status_code=201)
async def create_elevator(request: Request, principal: Admin, body: ElevatorCreate) -> Elevator:
    """Register an elevator (admin)."""
    values = body.model_dump()
    try:
        async with state(request).pool.connection() as conn, conn.transaction():
            columns = ["registration_code", *_ELEVATOR_COLUMNS, "maintainer_id", "use_unit_id"]
            row = [values[c] for c in columns[:-2]]
            row += [await _firm_id(conn, body.maintainer), await _use_unit_id(conn, body.use_unit)]
            await conn.execute(
                f"INSERT INTO elevators ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", row
            )
    except pg_errors.UniqueViolation as error:
        raise ApiError("conflict", 409, detail=error.diag.constraint_name or "unique") from error
    return Elevator.model_validate(await _elevator(request, principal, "registration_code", body.registration_code))


@router.patch("/elevators/{registration_code}", response_model=Elevator)
async def update_elevator(
    request: Request, principal: Admin, registration_code: Annotated[RegistrationCode, Path()], body: ElevatorFields
) -> Elevator:
    """Change some fields of an elevator (admin); fields left out keep their value."""
    changes = body.model_dump(exclude_unset=True)
    current = await _elevator(request, principal, "registration_code", registration_code)
    bottom = changes.get("bottom_floor", current["bottom_floor"])
    top = changes.get("top_floor", current["top_floor"])
    if bottom is None or top is None or bottom > top:
        raise ApiError("validation_error", 422, detail="bottom_floor must be <= top_floor")
    try:
        async with state(request).pool.connection() as conn, conn.transaction():
            sets: list[str] = []
            params: list[object] = []
            for column in _ELEVATOR_COLUMNS:
                if column in changes:
                    if changes[column] is None and column in ("rescue_code", "kind", "address", "district",
                                                              "installed_on", "rated_speed", "bottom_floor",
                                                              "top_floor"):  # fmt: skip
                        raise ApiError("validation_error", 422, detail=f"{column} is required")
                    sets.append(f"{column} = %s")
                    params.append(changes[column])
            if changes.get("maintainer"):
                sets.append("maintainer_id = %s")
                params.append(await _firm_id(conn, changes["maintainer"]))
            if changes.get("use_unit"):
                sets.append("use_unit_id = %s")
                params.append(await _use_unit_id(conn, changes["use_unit"]))
            if sets:
                await conn.execute(
                    f"UPDATE elevators SET {', '.join(sets)}, updated_at = now() WHERE registration_code = %s",
                    [*params, registration_code],
                )
    except pg_errors.UniqueViolation as error:
        raise ApiError("conflict", 409, detail=error.diag.constraint_name or "unique") from error
    return Elevator.model_validate(await _elevator(request, principal, "registration_code", registration_code))


@router.get("/elevators/{registration_code}/telemetry", response_model=TelemetrySeries, tags=["telemetry"])
async def elevator_telemetry(
    request: Request,
    principal: Reader,
    registration_code: Annotated[RegistrationCode, Path()],
    since: Annotated[Instant | None, Query(description="Default: one hour before `until`.")] = None,
    until: Annotated[Instant | None, Query(description="Default: now.")] = None,
    points: Annotated[int, Query(ge=10, le=2000, description="About this many time buckets.")] = 240,
) -> TelemetrySeries:
    """Telemetry of one elevator over a time range, averaged into time buckets for a chart."""
    elevator = await _elevator(request, principal, "registration_code", registration_code)
    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=1)
    if not since < until or until - since > _MAX_TELEMETRY_RANGE:
        raise ApiError("validation_error", 422, detail="since < until, at most 31 days apart")
    bucket_s = max(1.0, (until - since).total_seconds() / points)
    found: list[TelemetryPoint] = []
    if elevator["terminal_id"] is not None:
        async with state(request).pool.connection() as conn:
            # A firm reads only samples from while it maintained the elevator (access.telemetry_periods).
            periods, params = access.telemetry_periods(principal, registration_code)
            cur = await conn.execute(
                "SELECT to_timestamp(floor(extract(epoch FROM ts) / %(b)s) * %(b)s) AS t, count(*) AS samples,"
                " avg(speed) AS speed_avg, max(speed) AS speed_max, round(avg(floor))::int AS floor,"
                " avg((door <> 'closed')::int) AS door_open_share, avg(occupied::int) AS occupied_share"
                f" FROM ({periods}) h JOIN telemetry ON terminal_id = %(t)s"
                " AND ts >= greatest(%(s)s, h.since) AND ts < least(%(u)s, h.until) GROUP BY 1 ORDER BY 1",
                {**params, "b": bucket_s, "t": elevator["terminal_id"], "s": since, "u": until},
            )
            found = [TelemetryPoint.model_validate(row) for row in await cur.fetchall()]
    return TelemetrySeries(
        registration_code=registration_code,
        terminal_id=elevator["terminal_id"],
        since=since,
        until=until,
        bucket_s=bucket_s,
        points=found,
    )


# --- maintenance firms -------------------------------------------------------------------------

_FIRM_SELECT = (
    "SELECT f.id, f.name, f.created_at,"
    " (SELECT count(*) FROM elevators e WHERE e.maintainer_id = f.id) AS elevators FROM maintenance_firms f"
)


@router.get("/maintainers", response_model=list[Maintainer])
async def list_maintainers(
    request: Request, principal: Reader, q: Annotated[str | None, Query(max_length=200)] = None
) -> list[Maintainer]:
    """Maintenance firms (a firm sees only itself)."""
    where: list[str] = ["TRUE"]
    params: list[object] = []
    access.restrict(principal, "f.id", where, params)
    if q:
        where.append("f.name ILIKE %s")
        params.append("%" + like_escape(q) + "%")
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(f"{_FIRM_SELECT} WHERE {' AND '.join(where)} ORDER BY f.name LIMIT 1000", params)
        return [Maintainer.model_validate(row) for row in await cur.fetchall()]


async def _firm(request: Request, principal: Principal, firm_id: int) -> Maintainer:
    where, params = ["f.id = %s"], [firm_id]
    access.restrict(principal, "f.id", where, params)
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(f"{_FIRM_SELECT} WHERE {' AND '.join(where)}", params)
        row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        raise not_found("maintainer_not_found")
    return Maintainer.model_validate(row)


@router.get("/maintainers/{firm_id}", response_model=Maintainer)
async def get_maintainer(request: Request, principal: Reader, firm_id: Annotated[int, Path(ge=1)]) -> Maintainer:
    """One maintenance firm."""
    return await _firm(request, principal, firm_id)


@router.post("/maintainers", response_model=Maintainer, status_code=201)
async def create_maintainer(request: Request, principal: Admin, body: MaintainerCreate) -> Maintainer:
    """Register a maintenance firm (admin)."""
    try:
        async with state(request).pool.connection() as conn:
            cur = await conn.execute("INSERT INTO maintenance_firms (name) VALUES (%s) RETURNING id", (body.name,))
            row = await cur.fetchone()
    except pg_errors.UniqueViolation as error:
        raise ApiError("conflict", 409, detail="name") from error
    assert row is not None
    return await _firm(request, principal, row["id"])


@router.patch("/maintainers/{firm_id}", response_model=Maintainer)
async def rename_maintainer(
    request: Request, principal: Admin, firm_id: Annotated[int, Path(ge=1)], body: MaintainerCreate
) -> Maintainer:
    """Rename a maintenance firm (admin)."""
    try:
        async with state(request).pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE maintenance_firms SET name = %s WHERE id = %s RETURNING id", (body.name, firm_id)
            )
            row = await cur.fetchone()
    except pg_errors.UniqueViolation as error:
        raise ApiError("conflict", 409, detail="name") from error
    if row is None:
        raise not_found("maintainer_not_found")
    return await _firm(request, principal, firm_id)


# --- terminals ---------------------------------------------------------------------------------

_TERMINAL_SELECT = (
    "SELECT t.terminal_id, t.registration_code, t.created_at, t.last_seen_at, t.last_status"
    " FROM terminals t LEFT JOIN elevators e ON e.registration_code = t.registration_code"
)


@router.get("/terminals", response_model=list[Terminal])
async def list_terminals(
    request: Request,
    principal: Reader,
    unfitted: Annotated[bool, Query(description="Only terminals not fitted to an elevator.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    after: Annotated[TerminalId | None, Query(description="Terminal id to continue after.")] = None,
) -> list[Terminal]:
    """Monitoring terminals ordered by id (a firm sees those fitted to its elevators)."""
    where: list[str] = ["TRUE"]
    params: list[object] = []
    access.restrict(principal, "e.maintainer_id", where, params)
    if unfitted:
        where.append("t.registration_code IS NULL")
    if after is not None:
        where.append("t.terminal_id > %s")
        params.append(after)
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(
            f"{_TERMINAL_SELECT} WHERE {' AND '.join(where)} ORDER BY t.terminal_id LIMIT %s", [*params, limit]
        )
        return [Terminal.model_validate(row) for row in await cur.fetchall()]


async def _terminal(request: Request, principal: Principal, terminal_id: str) -> Terminal:
    where, params = ["t.terminal_id = %s"], [terminal_id]
    access.restrict(principal, "e.maintainer_id", where, params)
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(f"{_TERMINAL_SELECT} WHERE {' AND '.join(where)}", params)
        row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        raise not_found("terminal_not_found")
    return Terminal.model_validate(row)


@router.get("/terminals/{terminal_id}", response_model=Terminal)
async def get_terminal(request: Request, principal: Reader, terminal_id: Annotated[TerminalId, Path()]) -> Terminal:
    """One terminal."""
    return await _terminal(request, principal, terminal_id)


async def _check_elevator_exists(conn: Any, registration_code: str | None) -> None:
    if registration_code is None:
        return
    cur = await conn.execute("SELECT 1 FROM elevators WHERE registration_code = %s", (registration_code,))
    if await cur.fetchone() is None:
        raise ApiError("elevator_not_found", 422)


@router.post("/terminals", response_model=Terminal, status_code=201)
async def create_terminal(request: Request, principal: Admin, body: TerminalCreate) -> Terminal:
    """Register a terminal, optionally fitted to an elevator (admin)."""
    try:
        async with state(request).pool.connection() as conn, conn.transaction():
            await _check_elevator_exists(conn, body.registration_code)
            await conn.execute(
                "INSERT INTO terminals (terminal_id, registration_code) VALUES (%s, %s)",
                (body.terminal_id, body.registration_code),
            )
    except pg_errors.UniqueViolation as error:
        raise ApiError("conflict", 409, detail=error.diag.constraint_name or "unique") from error
    return await _terminal(request, principal, body.terminal_id)


@router.patch("/terminals/{terminal_id}", response_model=Terminal)
async def update_terminal(
    request: Request, principal: Admin, terminal_id: Annotated[TerminalId, Path()], body: TerminalUpdate
) -> Terminal:
    """Fit a terminal to another elevator, or remove it (admin)."""
    try:
        async with state(request).pool.connection() as conn, conn.transaction():
            await _check_elevator_exists(conn, body.registration_code)
            cur = await conn.execute(
                "UPDATE terminals SET registration_code = %s WHERE terminal_id = %s RETURNING terminal_id",
                (body.registration_code, terminal_id),
            )
            if await cur.fetchone() is None:
                raise not_found("terminal_not_found")
    except pg_errors.UniqueViolation as error:
        raise ApiError("conflict", 409, detail=error.diag.constraint_name or "unique") from error
    return await _terminal(request, principal, terminal_id)
