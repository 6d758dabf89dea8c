"""Alarm load per operator desk (ISA-18.2 / EEMUA 191): the report, its CSV, and the desks.

The report is the centre's and the regulator's (a maintenance firm has no desk: 403). Desks
(which districts each watches) are set by admins. What is counted is
:mod:`liftwatch.alerts.alarm_load`'s; this module reads the rows.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from liftwatch.alerts import alarm_load
from liftwatch.alerts.alarm_load import STALE_AFTER, Alarm
from liftwatch.api.app import state
from liftwatch.api.deps import Admin, AlarmLoadReader
from liftwatch.api.errors import ApiError, not_found
from liftwatch.api.models import Desk, DeskUpdate, Instant

router = APIRouter(prefix="/api/v1", tags=["alarm load"])

DeskName = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\s\x00].*$")]


@router.get("/desks", response_model=list[Desk])
async def list_desks(request: Request, principal: AlarmLoadReader) -> list[Desk]:
    """Operator desks and the districts each watches."""
    async with state(request).pool.connection() as conn:
        cur = await conn.execute("SELECT name, districts FROM operator_desks ORDER BY name")
        return [Desk.model_validate(row) for row in await cur.fetchall()]


@router.put("/desks/{name}", response_model=Desk)
async def put_desk(request: Request, principal: Admin, name: DeskName, body: DeskUpdate) -> Desk:
    """Create a desk or change the districts it watches (admins)."""
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO operator_desks (name, districts) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET districts = EXCLUDED.districts, updated_at = now()"
            " RETURNING name, districts",
            (name, sorted(set(body.districts))),
        )
        row = await cur.fetchone()
    return Desk.model_validate(row)


@router.get("/alarm-load", responses={200: {"content": {"text/csv": {}}}})
async def get_alarm_load(
    request: Request,
    principal: AlarmLoadReader,
    desk: Annotated[str, Query(min_length=1, max_length=100)],
    from_: Annotated[Instant, Query(alias="from", description="Start (ISO 8601 with offset).")],
    to: Annotated[Instant, Query(description="End, exclusive; at most 31 days after from.")],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """A desk's alarm load over [from, to): per 10 minutes (average, peak), flood time, bad actors, more."""
    try:
        alarm_load.check_period(from_, to)
    except ValueError as error:
        raise ApiError("validation_error", 422, detail=str(error)) from None
    async with state(request).pool.connection() as conn:
        cur = await conn.execute("SELECT districts FROM operator_desks WHERE name = %s", (desk,))
        found = await cur.fetchone()
        if found is None:
            raise not_found()
        districts = found["districts"]
        params: dict[str, Any] = {"d": districts, "from": from_, "to": to, "stale": to - STALE_AFTER}
        cur = await conn.execute(
            "SELECT ev.at, i.registration_code, i.code FROM incident_events ev"
            " JOIN incidents i ON i.id = ev.incident_id WHERE ev.kind = 'opened'"
            " AND ev.at >= %(from)s AND ev.at < %(to)s AND i.district = ANY(%(d)s)",
            params,
        )
        alarms = [Alarm(row["at"], row["registration_code"], row["code"]) for row in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT"
            " (SELECT count(*) FROM incidents WHERE district = ANY(%(d)s) AND chattering"
            "  AND opened_at >= %(from)s AND opened_at < %(to)s) AS chattering,"
            " (SELECT count(*) FROM incidents WHERE district = ANY(%(d)s) AND opened_at <= %(stale)s"
            "  AND (closed_at IS NULL OR closed_at > %(to)s)) AS stale,"
            " (SELECT count(*) FROM alarm_shelves s JOIN elevators e ON e.registration_code = s.registration_code"
            "  WHERE e.district = ANY(%(d)s) AND s.shelved_at >= %(from)s AND s.shelved_at < %(to)s) AS shelved,"
            " (SELECT count(DISTINCT o.registration_code) FROM out_of_service o"
            "  JOIN elevators e ON e.registration_code = o.registration_code WHERE e.district = ANY(%(d)s)"
            "  AND o.since < %(to)s AND (o.ended_at IS NULL OR o.ended_at > %(from)s)) AS out_of_service",
            params,
        )
        counts = await cur.fetchone()
    assert counts is not None
    load = alarm_load.alarm_load(alarms, from_, to, **{k: int(v) for k, v in counts.items()})
    if format == "csv":
        from liftwatch.reports.sheet import to_csv

        body = to_csv(alarm_load.CSV_HEADERS, alarm_load.csv_rows(desk, from_, to, load))
        headers = {"Content-Disposition": 'attachment; filename="alarm-load.csv"'}
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)
    return Response(
        _json({"desk": desk, "districts": districts, "from": from_, "to": to, **asdict(load)}),
        media_type="application/json",
    )


def _json(value: dict[str, Any]) -> str:
    import json
    from datetime import datetime

    def default(item: object) -> str:
        if isinstance(item, datetime):
            return item.isoformat()
        raise TypeError(type(item).__name__)

    return json.dumps(value, ensure_ascii=False, default=default)
