"""Incident endpoints: list and detail, operator transitions, and the live feed (SSE).

Transitions go through the alert service's lifecycle and store (``liftwatch.alerts.actions_store.
apply_action``): this module decides only who may ask for what. The audit row it appends is the
outbox the alert service relays to Kafka, from where every API process's feed delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from liftwatch import i18n
from liftwatch.alerts import lifecycle
from liftwatch.alerts.suppression import suppression_sql
from liftwatch.api import access, auth, idempotency
from liftwatch.api.app import ApiState, language, state
from liftwatch.api.auth import Principal
from liftwatch.api.deps import Actor, Reader, StreamReader
from liftwatch.api.errors import ApiError, forbidden, not_found, too_many_streams
from liftwatch.api.feed import FeedItem, replay
from liftwatch.api.models import (
    ACTIONS_BY_NAME,
    Action,
    Incident,
    IncidentDelivery,
    IncidentDetail,
    IncidentEvent,
    IncidentPage,
    Instant,
    RegistrationCode,
    Status,
    TransitionRequest,
)
from liftwatch.api.pagination import decode_cursor, encode_cursor
from liftwatch.schema import FaultCode, Severity
from starlette.background import BackgroundTask

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

_SELECT = (
    f"SELECT i.*, f.name AS maintainer, e.address, e.rescue_code, {suppression_sql('i', 'now()')} AS suppressed"
    " FROM incidents i"
    " LEFT JOIN maintenance_firms f ON f.id = i.maintainer_id"
    " LEFT JOIN elevators e ON e.registration_code = i.registration_code"
)
_RETRY_MS = 2_000
# A comment line this often keeps proxies from closing an idle stream; the caller's token is
# checked again as often, so a revoked token also ends the streams it opened.
_KEEPALIVE_S = 15.0
# A caller refused a stream (429) may try again after this long: streams end as their clients leave.
_RETRY_AFTER_S = 30
# How often an idle stream looks whether the feed's Kafka consumer is still connected.
_POLL_S = 2.0


def incident_model(row: dict[str, Any]) -> Incident:
    """The board's view of an incident row (``_SELECT``); its deadlines are the ones stamped when it opened."""
    return Incident.model_validate({**row, "detected_late": bool((row.get("evidence") or {}).get("late"))})


@router.get("", response_model=IncidentPage)
async def list_incidents(
    request: Request,
    principal: Reader,
    status: Annotated[list[Status] | None, Query()] = None,
    open: Annotated[bool | None, Query(description="Only open (true) or only finished (false) incidents.")] = None,
    code: Annotated[list[FaultCode] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    district: Annotated[str | None, Query(max_length=200)] = None,
    maintainer_id: Annotated[int | None, Query(ge=1)] = None,
    registration_code: Annotated[RegistrationCode | None, Query()] = None,
    since: Annotated[Instant | None, Query(description="Detected at or after (ISO 8601 with offset).")] = None,
    until: Annotated[Instant | None, Query(description="Detected before.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Incidents, newest first, with filters and keyset pagination."""
    where: list[str] = ["TRUE"]
    params: list[object] = []
    access.restrict(principal, "i.maintainer_id", where, params)
    if status:
        where.append("i.status = ANY(%s)")
        params.append([str(s) for s in status])
    if open is True:
        where.append(f"i.{lifecycle.OPEN_SQL}")
    elif open is False:
        where.append(f"i.{lifecycle.FINAL_SQL}")
    if code:
        where.append("i.code = ANY(%s)")
        params.append([str(c) for c in code])
    if severity:
        where.append("i.severity = ANY(%s)")
        params.append([str(s) for s in severity])
    for column, value in (("district", district), ("maintainer_id", maintainer_id),
                          ("registration_code", registration_code)):  # fmt: skip
        if value is not None:
            where.append(f"i.{column} = %s")
            params.append(value)
    if since is not None and until is not None and since >= until:
        raise ApiError("validation_error", 422, detail="since must be before until")
    if since is not None:
        where.append("i.detected_at >= %s")
        params.append(since)
    if until is not None:
        where.append("i.detected_at < %s")
        params.append(until)
    if cursor is not None:
        where.append("i.id < %s")
        params.append(decode_cursor(cursor))
    api = state(request)
    async with api.pool.connection() as conn:
        cur = await conn.execute("SELECT coalesce(max(id), 0) AS last FROM incident_events")
        last = await cur.fetchone()
        cur = await conn.execute(
            f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY i.id DESC LIMIT %s", [*params, limit + 1]
        )
        rows = await cur.fetchall()
    items = [incident_model(row) for row in rows[:limit]]
    page = IncidentPage(
        items=items,
        next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None,
        last_change_id=last["last"] if last else 0,
    )
    # Serialised here once: FastAPI would validate the page again against response_model.
    return Response(page.model_dump_json(), media_type="application/json")


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."},
        429: {"description": "The token (or this API process) holds as many streams as allowed; see Retry-After."},
    },
)
async def stream(
    request: Request,
    principal: StreamReader,
    last_event_id: Annotated[int | None, Header(ge=0, description="Sent by EventSource on reconnection.")] = None,
    after: Annotated[
        int | None, Query(ge=0, description="Start after this change id (e.g. `last_change_id` of a list).")
    ] = None,
    access_token: Annotated[
        str | None, Query(max_length=256, description="A token, for clients that cannot send headers (read by auth).")
    ] = None,
) -> StreamingResponse:
    """Live incident changes the caller may see (``event: incident``, ``id:`` = change id).

    Reconnecting with ``Last-Event-ID`` (or ``after``) first replays the missed changes from the
    audit trail, then continues live. ``event: reset`` means too much was missed: reload the list.
    ``event: feed`` (``{"live": true|false}``) comes first and whenever the server's own feed
    connects or loses Kafka: while false, changes are not coming through.
    Browsers authenticate with the session cookie, other clients with a bearer header or the
    ``access_token`` query parameter (accepted here only: anywhere else a token in a URL is refused).
    A token holds at most ``LIFTWATCH_SSE_STREAMS_PER_TOKEN`` streams, a process
    ``LIFTWATCH_SSE_STREAMS_MAX``; beyond, 429 ``too_many_streams`` with ``Retry-After``.
    """
    api = state(request)
    start = last_event_id if last_event_id is not None else after
    limit = api.settings.sse_replay_limit
    credential: auth.Credential = request.state.credential
    caller = principal.key
    if not api.streams.take(caller):
        raise too_many_streams(_RETRY_AFTER_S)
    given_back = False

    def give_back() -> None:
        nonlocal given_back
        if not given_back:
            given_back = True
            api.streams.give_back(caller)

    async def still_valid() -> bool:
        # Looked up again: a revoked or expired token, an ended session, or a token now of another
        # role or firm ends the stream (the reconnection gets 401, or a stream scoped anew).
        return access.same_scope(principal, await auth.resolve(request, credential))

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for frame in _frames():
                yield frame
        finally:
            give_back()

    async def _frames() -> AsyncIterator[bytes]:
        # Subscribe before reading the replay: a change committed meanwhile comes live (duplicates skipped).
        with api.feed.subscribe(principal) if api.feed is not None else contextlib.nullcontext() as sub:
            yield f": liftwatch incident feed\nretry: {_RETRY_MS}\n\n".encode()
            items: list[FeedItem] | None = []
            if start is not None:
                async with api.pool.connection() as conn:
                    items = await replay(conn, principal, start, limit)
            if items is None:
                yield b'event: reset\ndata: {"reason": "replay_limit"}\n\n'
                return
            replayed = {item.change_id for item in items}
            for item in items:
                yield item.frame
            feed_live = _feed_live(api)
            yield _feed_frame(feed_live)
            due = time.monotonic() + _KEEPALIVE_S  # next keep-alive and token check
            while True:
                if _feed_live(api) != feed_live:
                    feed_live = not feed_live
                    yield _feed_frame(feed_live)
                if time.monotonic() >= due:
                    if not await still_valid():
                        return
                    yield b": keep-alive\n\n"
                    due = time.monotonic() + _KEEPALIVE_S
                try:
                    async with asyncio.timeout(min(_POLL_S, _KEEPALIVE_S)):
                        if sub is None:
                            await asyncio.Event().wait()  # no Kafka configured: replay only
                            continue
                        live = await sub.queue.get()
                except TimeoutError:
                    continue
                if live is None:
                    return  # fell behind: the client reconnects with Last-Event-ID and replays
                if live.change_id not in replayed:
                    yield live.frame

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    # The background task gives the slot back too when the stream never ran (client gone at once).
    return StreamingResponse(
        frames(), media_type="text/event-stream", headers=headers, background=BackgroundTask(give_back)
    )


def _feed_live(api: ApiState) -> bool:
    return api.feed is not None and api.feed.connected


def _feed_frame(live: bool) -> bytes:
    """``event: feed``: whether live changes flow (false while Kafka is away: the board may be stale)."""
    return f'event: feed\ndata: {{"live": {"true" if live else "false"}}}\n\n'.encode()


async def load_incident(request: Request, principal: Principal, incident_id: int) -> dict[str, Any]:
    """The incident row if the caller may see it, else 404 (never 403: its existence is not told)."""
    where, params = ["i.id = %s"], [incident_id]
    access.restrict(principal, "i.maintainer_id", where, params)
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(f"{_SELECT} WHERE {' AND '.join(where)}", params)
        row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        raise not_found("incident_not_found")
    return row


@router.get("/{incident_id}", response_model=IncidentDetail)
async def get_incident(
    request: Request, principal: Reader, incident_id: Annotated[int, Path(ge=1, le=2**62)]
) -> IncidentDetail:
    """One incident with its event trail, its notifications and the latest telemetry sample of its elevator."""
    row = await load_incident(request, principal, incident_id)
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, at, kind, status_after, actor, note, data FROM incident_events"
            " WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        )
        events = [IncidentEvent.model_validate(e) for e in await cur.fetchall()]
        # The elevator's terminal now (it may have been replaced since), else the one that reported;
        # a firm reads only samples from while it maintained the elevator (no handover leak).
        periods, params = access.telemetry_periods(principal, row["registration_code"])
        cur = await conn.execute(
            f"SELECT s.* FROM ({periods}) h CROSS JOIN LATERAL ("
            " SELECT ts, mode, floor, door_zone, direction, speed, door, occupied, safety_circuit, door_lock,"
            " alarm_button, power, load_pct, limit_up, limit_down, received_at FROM telemetry"
            " WHERE terminal_id = coalesce("
            "(SELECT terminal_id FROM terminals WHERE registration_code = %(elevator)s), %(terminal)s)"
            " AND ts >= h.since AND ts < h.until ORDER BY ts DESC LIMIT 1) s ORDER BY s.ts DESC LIMIT 1",
            {**params, "elevator": row["registration_code"], "terminal": row["terminal_id"]},
        )
        latest = await cur.fetchone()
        # Every notification of its changes, retried and recorded (a firm: those to its own receivers).
        where, params_d = ["ev.incident_id = %s"], [incident_id]
        access.restrict(principal, "w.maintainer_id", where, params_d)
        cur = await conn.execute(
            "SELECT d.id, d.change_id, ev.kind, w.name AS receiver, w.channel, d.status, d.attempts, d.last_error,"
            " d.created_at, d.sent_at, d.next_attempt_at FROM alerts_deliveries d"
            " JOIN incident_events ev ON ev.id = d.change_id JOIN alerts_webhooks w ON w.id = d.webhook_id"
            f" WHERE {' AND '.join(where)} ORDER BY d.id",
            params_d,
        )
        deliveries = [IncidentDelivery.model_validate(d) for d in await cur.fetchall()]
    return IncidentDetail(
        incident=incident_model(row),
        events=events,
        latest_telemetry=latest,
        deliveries=deliveries,
    )


@router.post("/{incident_id}/{action}", response_model=Incident)
async def act(
    request: Request,
    principal: Actor,
    incident_id: Annotated[int, Path(ge=1, le=2**62)],
    action: Annotated[Action, Path(description="What the operator did.")],
    body: TransitionRequest | None = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=100,
            description="Makes a retry harmless: the same key with the same request acts once; with another"
            " request (action, incident or body) it is refused (422 `idempotency_key_reused`).",
        ),
    ] = None,
) -> Incident:
    """Move an incident along its lifecycle (maintenance firms: ``arrive`` and ``release`` only)."""
    from liftwatch.alerts import actions_store
    from liftwatch.alerts.errors import IllegalTransition, IncidentNotFound

    body = body or TransitionRequest()
    await load_incident(request, principal, incident_id)  # 404 for what the caller may not see
    lifecycle_action = ACTIONS_BY_NAME[action]
    if not access.may_take(principal, lifecycle_action):
        raise forbidden()
    api = state(request)
    request_digest = idempotency.digest(incident=incident_id, action=action, note=body.note, cause=body.cause)
    try:
        # One transaction (the pool commits on leaving): the key is recorded exactly when the action is.
        async with api.pool.connection() as conn:
            if idempotency_key is None or await idempotency.claim(conn, principal, idempotency_key, request_digest):
                await actions_store.apply_action(
                    conn,
                    incident_id,
                    lifecycle_action,
                    actor=principal.name,
                    note=body.note,
                    cause=body.cause,
                    now=datetime.now(UTC),
                )
    except IncidentNotFound as error:
        raise not_found("incident_not_found") from error
    except IllegalTransition as error:
        status_code = 422 if error.reason in ("cause_required", "unknown_cause", "note_required") else 409
        shown = i18n.t(f"common.status.{error.current_status}", language(request))
        raise ApiError(error.reason, status_code, status=shown) from error
    return incident_model(await load_incident(request, principal, incident_id))
