"""Maintenance windows, shelved alarms and elevators out of service (recorded, not notified).

Scoped as incidents are: a maintenance firm sees and changes only its own elevators' windows and
states (404 for the others'), the centre and the regulator see all. Who may write:

* windows: the elevator's firm, operators, admins;
* shelves: operators and admins (shelving is the centre's decision, ISA-18.2), read by all;
* out of service: the elevator's firm, the regulator, admins.

What is refused and why is :mod:`liftwatch.alerts.suppression`'s; writes are its store's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from liftwatch.alerts import suppression, suppression_store
from liftwatch.api import access
from liftwatch.api.app import state
from liftwatch.api.auth import Principal
from liftwatch.api.deps import Centre, Reader, StateWriter, WindowWriter
from liftwatch.api.errors import ApiError, not_found
from liftwatch.api.models import (
    OutOfService,
    OutOfServiceRequest,
    RegistrationCode,
    Shelf,
    ShelfCreate,
    Window,
    WindowCreate,
)

router = APIRouter(prefix="/api/v1", tags=["suppression"])

Id = Annotated[int, Path(ge=1, le=2**62)]
_LIMIT = 500


def _scope(principal: Principal, table: str, where: list[str], params: list[Any]) -> None:
    # By the elevator's firm now: a window or state belongs to whoever maintains the elevator.
    firm = f"(SELECT e.maintainer_id FROM elevators e WHERE e.registration_code = {table}.registration_code)"
    access.restrict(principal, firm, where, params)


async def _elevator(request: Request, principal: Principal, registration_code: str) -> None:
    """404 unless the elevator exists and the caller may see it."""
    where: list[str] = ["e.registration_code = %s"]
    params: list[Any] = [registration_code]
    access.restrict(principal, "e.maintainer_id", where, params)
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(f"SELECT 1 FROM elevators e WHERE {' AND '.join(where)}", params)
        if await cur.fetchone() is None:
            raise not_found("elevator_not_found")


def _reason(text: str) -> str:
    try:
        return suppression.check_reason(text)
    except ValueError as error:
        raise ApiError("validation_error", 422, detail=f"reason: {error}") from None


async def _rows(request: Request, query: str, params: list[Any]) -> list[dict[str, Any]]:
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(query, params)
        rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


async def _listed(
    request: Request,
    principal: Principal,
    select: str,
    alias: str,
    registration_code: str | None,
    in_force: str | None,
    order: str,
) -> list[dict[str, Any]]:
    """``select`` (its table aliased ``alias``) scoped to the caller, filtered, newest first, capped."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    _scope(principal, alias, where, params)
    if registration_code is not None:
        where.append(f"{alias}.registration_code = %s")
        params.append(registration_code)
    if in_force is not None:
        where.append(in_force)
    return await _rows(request, f"{select} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %s", [*params, _LIMIT])


# --- maintenance windows ----------------------------------------------------------------------

_WINDOW = (
    "SELECT w.*, (w.starts_at <= now() AND now() < w.ends_at AND w.ended_at IS NULL) AS active"
    " FROM maintenance_windows w"
)


@router.get("/maintenance-windows", response_model=list[Window])
async def list_windows(
    request: Request,
    principal: Reader,
    registration_code: Annotated[RegistrationCode | None, Query()] = None,
    current: Annotated[bool, Query(description="Only windows not over yet (true) or every one (false).")] = True,
) -> list[Window]:
    """Maintenance windows, latest start first (at most 500)."""
    in_force = "w.ends_at > now() AND w.ended_at IS NULL" if current else None
    rows = await _listed(request, principal, _WINDOW, "w", registration_code, in_force, "w.starts_at DESC, w.id DESC")
    return [Window.model_validate(row) for row in rows]


@router.post("/maintenance-windows", response_model=Window, status_code=201)
async def create_window(request: Request, principal: WindowWriter, body: WindowCreate) -> Window:
    """Declare a maintenance window: the elevator's faults in it (but entrapment and overspeed) are not notified."""
    await _elevator(request, principal, body.registration_code)
    now = datetime.now(UTC)
    starts_at = body.starts_at or now
    try:
        suppression.check_window(starts_at, body.ends_at, now=now)
    except ValueError as error:
        raise ApiError("validation_error", 422, detail=str(error)) from None
    async with state(request).pool.connection() as conn:
        row = await suppression_store.add_window(
            conn,
            body.registration_code,
            starts_at=starts_at,
            ends_at=body.ends_at,
            reason=_reason(body.reason),
            actor=principal.name,
        )
    return Window.model_validate({**row, "active": row["starts_at"] <= now < row["ends_at"]})


async def _visible(request: Request, principal: Principal, table: str, row_id: int) -> dict[str, Any]:
    where, params = ["x.id = %s"], [row_id]
    _scope(principal, "x", where, params)
    rows = await _rows(request, f"SELECT x.* FROM {table} x WHERE {' AND '.join(where)}", params)
    if not rows:
        raise not_found()
    return rows[0]


@router.delete("/maintenance-windows/{window_id}", status_code=204)
async def end_window(request: Request, principal: WindowWriter, window_id: Id) -> Response:
    """End a window now (kept, with who ended it and when)."""
    await _visible(request, principal, "maintenance_windows", window_id)
    async with state(request).pool.connection() as conn:
        await suppression_store.end_window(conn, window_id, actor=principal.name, now=datetime.now(UTC))
    return Response(status_code=204)


# --- shelves ----------------------------------------------------------------------------------

_SHELF = "SELECT s.*, (now() < s.expires_at AND s.ended_at IS NULL) AS active FROM alarm_shelves s"


@router.get("/shelves", response_model=list[Shelf])
async def list_shelves(
    request: Request,
    principal: Reader,
    registration_code: Annotated[RegistrationCode | None, Query()] = None,
    current: Annotated[bool, Query(description="Only shelves in force (true) or every one (false).")] = True,
) -> list[Shelf]:
    """Shelved alarms, newest first (at most 500)."""
    in_force = "s.expires_at > now() AND s.ended_at IS NULL" if current else None
    rows = await _listed(request, principal, _SHELF, "s", registration_code, in_force, "s.shelved_at DESC, s.id DESC")
    return [Shelf.model_validate(row) for row in rows]


@router.post("/shelves", response_model=Shelf, status_code=201)
async def create_shelf(request: Request, principal: Centre, body: ShelfCreate) -> Shelf:
    """Shelve a nuisance alarm (an elevator and a fault code) for at most 8 h, with a reason."""
    await _elevator(request, principal, body.registration_code)
    now = datetime.now(UTC)
    try:
        expires_at = suppression.shelf_expiry(body.code.value, timedelta(minutes=body.minutes), now=now)
    except ValueError as error:
        raise ApiError("validation_error", 422, detail=str(error)) from None
    async with state(request).pool.connection() as conn:
        row = await suppression_store.add_shelf(
            conn,
            body.registration_code,
            body.code.value,
            reason=_reason(body.reason),
            expires_at=expires_at,
            actor=principal.name,
            now=now,
        )
    return Shelf.model_validate({**row, "active": True})


@router.delete("/shelves/{shelf_id}", status_code=204)
async def end_shelf(request: Request, principal: Centre, shelf_id: Id) -> Response:
    """Take a shelf off now (kept, with who and when)."""
    await _visible(request, principal, "alarm_shelves", shelf_id)
    async with state(request).pool.connection() as conn:
        await suppression_store.end_shelf(conn, shelf_id, actor=principal.name, now=datetime.now(UTC))
    return Response(status_code=204)


# --- out of service ---------------------------------------------------------------------------

_OUT = "SELECT o.*, (o.ended_at IS NULL) AS active FROM out_of_service o"


@router.get("/out-of-service", response_model=list[OutOfService])
async def list_out_of_service(
    request: Request,
    principal: Reader,
    registration_code: Annotated[RegistrationCode | None, Query()] = None,
    current: Annotated[bool, Query(description="Only elevators out of service now (true) or every period.")] = True,
) -> list[OutOfService]:
    """Elevators out of service (periods), newest first (at most 500)."""
    in_force = "o.ended_at IS NULL" if current else None
    rows = await _listed(request, principal, _OUT, "o", registration_code, in_force, "o.since DESC, o.id DESC")
    return [OutOfService.model_validate(row) for row in rows]


@router.put("/elevators/{registration_code}/out-of-service", response_model=OutOfService)
async def set_out_of_service(
    request: Request,
    principal: StateWriter,
    registration_code: Annotated[RegistrationCode, Path()],
    body: OutOfServiceRequest,
) -> OutOfService:
    """Mark an elevator out of service (its faults, but entrapment and overspeed, are not notified)."""
    await _elevator(request, principal, registration_code)
    async with state(request).pool.connection() as conn:
        row = await suppression_store.set_out_of_service(
            conn, registration_code, reason=_reason(body.reason), actor=principal.name, now=datetime.now(UTC)
        )
    return OutOfService.model_validate({**row, "active": row["ended_at"] is None})


@router.delete("/elevators/{registration_code}/out-of-service", status_code=204)
async def end_out_of_service(
    request: Request, principal: StateWriter, registration_code: Annotated[RegistrationCode, Path()]
) -> Response:
    """Back in service."""
    await _elevator(request, principal, registration_code)
    async with state(request).pool.connection() as conn:
        await suppression_store.end_out_of_service(conn, registration_code, actor=principal.name, now=datetime.now(UTC))
    return Response(status_code=204)
