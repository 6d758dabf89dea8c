"""``/api/v1/orders``: rectification orders over HTTP (lifecycle in ``api/rectification.py``).

Regulators and admins open, reopen and close; the maintenance firm of the order answers; operators
read. A firm sees only its own orders, anything else is 404. Every action appends an event.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from liftwatch.api import access
from liftwatch.api.app import state
from liftwatch.api.auth import Principal
from liftwatch.api.deps import OrderDecider, Reader
from liftwatch.api.errors import ApiError, forbidden, not_found
from liftwatch.api.models import Input, RegistrationCode
from liftwatch.api.rectification import NotAllowed, OrderAction, OrderStatus, actions, overdue, step
from psycopg.rows import dict_row
from pydantic import Field

router = APIRouter(prefix="/api/v1/orders", tags=["rectification"])

Note = Annotated[str, Field(min_length=1, max_length=2000)]


class OrderCreate(Input):
    """An order on an elevator (``registration_code``), an incident's elevator, or a whole firm."""

    registration_code: RegistrationCode | None = None
    incident_id: int | None = Field(default=None, ge=1)
    maintainer_id: int | None = Field(default=None, ge=1, description="For an order on the firm as a whole.")
    title: str = Field(min_length=1, max_length=200, description="What must be rectified.")
    due_on: dt.date
    note: Note


class OrderNote(Input):
    note: Note


_SELECT = (
    "SELECT o.*, f.name AS maintainer, e.address, e.district, e.rescue_code FROM rectification_orders o"
    " JOIN maintenance_firms f ON f.id = o.maintainer_id"
    " LEFT JOIN elevators e ON e.registration_code = o.registration_code"
)


def _today(request: Request) -> dt.date:
    return dt.datetime.now(dt.UTC).astimezone(ZoneInfo(state(request).settings.site_timezone)).date()


def _view(row: dict[str, Any], principal: Principal, today: dt.date) -> dict[str, Any]:
    status = OrderStatus(row["status"])
    return {
        **row,
        "overdue": overdue(status, row["due_on"], today),
        "actions": [str(a) for a in actions(status, principal.role)],
    }


@router.get("", summary="Rectification orders")
async def list_orders(
    request: Request,
    principal: Reader,
    status: Annotated[list[OrderStatus] | None, Query()] = None,
    overdue_only: Annotated[bool, Query(alias="overdue", description="Only orders past their due date.")] = False,
    maintainer_id: Annotated[int | None, Query(ge=1)] = None,
    registration_code: Annotated[RegistrationCode | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> dict[str, Any]:
    """Newest first; overdue ones are flagged (``overdue``) with the actions the caller may take."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    access.restrict(principal, "o.maintainer_id", where, params)
    today = _today(request)
    if status:
        where.append("o.status = ANY(%s)")
        params.append([str(s) for s in status])
    if overdue_only:
        where.append("o.status <> 'closed' AND o.due_on < %s")
        params.append(today)
    for column, value in (("maintainer_id", maintainer_id), ("registration_code", registration_code)):
        if value is not None:
            where.append(f"o.{column} = %s")
            params.append(value)
    async with state(request).pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY o.id DESC LIMIT %s", [*params, limit])
        rows = await cur.fetchall()
    return {"today": today, "items": [_view(r, principal, today) for r in rows]}


async def _order(principal: Principal, order_id: int, cur: Any, *, lock: bool = False) -> dict[str, Any]:
    where, params = ["o.id = %s"], [order_id]
    access.restrict(principal, "o.maintainer_id", where, params)
    await cur.execute(f"{_SELECT} WHERE {' AND '.join(where)}" + (" FOR UPDATE OF o" if lock else ""), params)
    row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        raise not_found()
    return row


@router.get("/{order_id}", summary="One order with its trail")
async def get_order(request: Request, principal: Reader, order_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    async with state(request).pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = await _order(principal, order_id, cur)
        await cur.execute("SELECT * FROM rectification_events WHERE order_id = %s ORDER BY id", [order_id])
        events = await cur.fetchall()
    return {"order": _view(row, principal, _today(request)), "events": events}


@router.post("", status_code=201, summary="Open a rectification order")
async def open_order(request: Request, principal: OrderDecider, body: OrderCreate) -> dict[str, Any]:
    """The firm that must answer is the elevator's maintainer now (or ``maintainer_id`` for a firm)."""
    chosen = [v is not None for v in (body.registration_code, body.incident_id, body.maintainer_id)]
    if sum(chosen) != 1:
        raise ApiError("validation_error", 422, detail="give one of registration_code, incident_id, maintainer_id")
    async with state(request).pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        code, firm, incident = body.registration_code, body.maintainer_id, body.incident_id
        if incident is not None:
            await cur.execute("SELECT registration_code FROM incidents WHERE id = %s", [incident])
            found = await cur.fetchone()
            if found is None or found["registration_code"] is None:
                raise not_found("incident_not_found")
            code = found["registration_code"]
        if code is not None:
            await cur.execute("SELECT maintainer_id FROM elevators WHERE registration_code = %s", [code])
            elevator = await cur.fetchone()
            if elevator is None:
                raise not_found("elevator_not_found")
            firm = elevator["maintainer_id"]
        else:
            await cur.execute("SELECT id FROM maintenance_firms WHERE id = %s", [firm])
            if await cur.fetchone() is None:
                raise not_found("maintainer_not_found")
        async with conn.transaction():
            await cur.execute(
                "INSERT INTO rectification_orders (registration_code, maintainer_id, incident_id, title, status,"
                " due_on, opened_by) VALUES (%s, %s, %s, %s, 'open', %s, %s) RETURNING id",
                [code, firm, incident, body.title, body.due_on, principal.name],
            )
            created = await cur.fetchone()
            assert created is not None
            await cur.execute(
                "INSERT INTO rectification_events (order_id, kind, status_after, actor, note)"
                " VALUES (%s, 'opened', 'open', %s, %s)",
                [created["id"], principal.name, body.note],
            )
    return await get_order(request, principal, created["id"])


@router.post("/{order_id}/{action}", summary="Answer, reopen or close an order")
async def act(
    request: Request,
    principal: Reader,
    order_id: Annotated[int, Path(ge=1)],
    action: OrderAction,
    body: OrderNote,
) -> dict[str, Any]:
    """The firm answers with what it did; a regulator closes the order or sends it back (reopen)."""
    async with (
        state(request).pool.connection() as conn,
        conn.cursor(row_factory=dict_row) as cur,
        conn.transaction(),
    ):
        locked = await _order(principal, order_id, cur, lock=True)  # 404 unless the caller may see it
        try:
            change = step(action, OrderStatus(locked["status"]), principal.role)
        except NotAllowed as error:
            if error.role:
                raise forbidden() from error
            raise ApiError("illegal_transition", 409, status=locked["status"]) from error
        stamp = {"answered": "answered_at", "closed": "closed_at"}.get(change.kind)
        await cur.execute(
            "UPDATE rectification_orders SET status = %s" + (f", {stamp} = now()" if stamp else "") + " WHERE id = %s",
            [str(change.status), order_id],
        )
        await cur.execute(
            "INSERT INTO rectification_events (order_id, kind, status_after, actor, note) VALUES (%s, %s, %s, %s, %s)",
            [order_id, change.kind, str(change.status), principal.name, body.note],
        )
    return await get_order(request, principal, order_id)
