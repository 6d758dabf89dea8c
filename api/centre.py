"""The emergency centre's own work on incidents: phone calls, comments, assignment.

What each does is the alert service's (``liftwatch.alerts.centre`` decides, ``centre_store``
writes); this module decides who may ask. Calls and assignment are the centre's (operators,
admins); a maintenance firm may comment on its own elevators' incidents; regulators read.
Included before :mod:`liftwatch.api.incidents`, whose ``/{id}/{action}`` would otherwise take
``/{id}/comments`` for an unknown action.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from liftwatch import i18n
from liftwatch.alerts import actions_store, centre, centre_store
from liftwatch.alerts.errors import ElevatorNotFound, IllegalTransition, IncidentNotFound
from liftwatch.api import access, idempotency
from liftwatch.api.app import language, state
from liftwatch.api.deps import Centre, Commenter
from liftwatch.api.errors import ApiError, not_found
from liftwatch.api.incidents import incident_model, load_incident
from liftwatch.api.models import (
    AssigneeRequest,
    CallRequest,
    CallResult,
    CommentRequest,
    GroupActionResult,
    Incident,
    IncidentEvent,
    TransitionRequest,
)

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])
groups = APIRouter(prefix="/api/v1/incident-groups", tags=["incidents"])

IncidentId = Annotated[int, Path(ge=1, le=2**62)]


@router.post(
    "",
    response_model=CallResult,
    status_code=201,
    responses={200: {"model": CallResult, "description": "Joined the incident already open."}},
)
async def open_from_call(
    request: Request,
    principal: Centre,
    body: CallRequest,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> JSONResponse:
    """Record a phone call: opens an incident (201), or joins the one open for this elevator and code (200).

    The caller's number and the note go on the audit trail; the deadlines start at the call.
    """
    try:
        phone = centre.normalise_phone(body.caller_phone)
    except ValueError:
        raise ApiError("validation_error", 422, detail="caller_phone: not a phone number") from None
    api = state(request)
    async with api.pool.connection() as conn:
        if idempotency_key is not None:
            # 422 for the key reused with another call; a retry of this one is answered by record_call.
            await idempotency.claim(conn, principal, idempotency_key, idempotency.digest(call=body.model_dump()))
        registration_code = body.registration_code
        if body.rescue_code is not None:
            cur = await conn.execute(
                "SELECT registration_code FROM elevators WHERE rescue_code = %s", (body.rescue_code,)
            )
            row = await cur.fetchone()
            if row is None:
                raise not_found("elevator_not_found")
            registration_code = row["registration_code"]
        assert registration_code is not None
        call = centre.Call(
            registration_code=registration_code,
            code=body.code,
            actor=principal.name,
            at=datetime.now(UTC),
            note=body.note,
            caller_phone=phone,
        )
        try:
            result = await centre_store.record_call(
                conn, call, idempotency_key=f"api:{principal.name}:{idempotency_key}" if idempotency_key else None
            )
        except ElevatorNotFound as error:
            raise not_found("elevator_not_found") from error
    incident = incident_model(await load_incident(request, principal, int(result.incident["id"])))
    joined = result.outcome is centre.CallOutcome.JOINED
    answer = CallResult(incident=incident, joined=joined)
    return JSONResponse(answer.model_dump(mode="json"), status_code=200 if joined else 201)


@router.post("/{incident_id}/comments", response_model=IncidentEvent, status_code=201)
async def comment(
    request: Request,
    principal: Commenter,
    incident_id: IncidentId,
    body: CommentRequest,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> IncidentEvent:
    """Add a comment to an incident's trail, open or closed (firms: their own elevators' incidents)."""
    await load_incident(request, principal, incident_id)  # 404 for what the caller may not see
    try:
        note = centre.check_comment(body.note)
    except ValueError as error:
        raise ApiError("validation_error", 422, detail=f"note: {error}") from None
    api = state(request)
    async with api.pool.connection() as conn:
        if idempotency_key is not None:
            # 422 for the key reused with another comment; a retry of this one is answered by add_comment.
            await idempotency.claim(
                conn, principal, idempotency_key, idempotency.digest(incident=incident_id, note=note)
            )
        try:
            change_id = await centre_store.add_comment(
                conn,
                incident_id,
                actor=principal.name,
                note=note,
                now=datetime.now(UTC),
                idempotency_key=f"api:{principal.name}:{incident_id}:{idempotency_key}" if idempotency_key else None,
            )
        except IncidentNotFound as error:
            raise not_found("incident_not_found") from error
        cur = await conn.execute(
            "SELECT id, at, kind, status_after, actor, note, data FROM incident_events WHERE id = %s", (change_id,)
        )
        row = await cur.fetchone()
    return IncidentEvent.model_validate(row)


@router.put("/{incident_id}/assignee", response_model=Incident)
async def set_assignee(request: Request, principal: Centre, incident_id: IncidentId, body: AssigneeRequest) -> Incident:
    """Claim an incident (your own name), hand it to another operator, or release it (null)."""
    await load_incident(request, principal, incident_id)
    api = state(request)
    async with api.pool.connection() as conn:
        if body.assignee is not None and body.assignee != principal.name:
            # Only someone who works incidents in the centre: the live token name of such a role.
            cur = await conn.execute(
                "SELECT 1 FROM api_tokens WHERE name = %s AND role = ANY(%s) AND revoked_at IS NULL",
                (body.assignee, access.roles_with(access.Permission.RUN_CENTRE)),
            )
            if await cur.fetchone() is None:
                raise ApiError("unknown_assignee", 422, name=body.assignee)
        try:
            await centre_store.assign(
                conn, incident_id, assignee=body.assignee, actor=principal.name, now=datetime.now(UTC)
            )
        except IncidentNotFound as error:
            raise not_found("incident_not_found") from error
        except IllegalTransition as error:
            shown = i18n.t(f"common.status.{error.current_status}", language(request))
            raise ApiError(error.reason, 409, status=shown) from error
    return incident_model(await load_incident(request, principal, incident_id))


@groups.post("/{group_id}/acknowledge", response_model=GroupActionResult)
async def acknowledge_group(
    request: Request, principal: Centre, group_id: IncidentId, body: TransitionRequest | None = None
) -> GroupActionResult:
    """Acknowledge every member of an incident group still ``detected`` (a storm, worked as one)."""
    from liftwatch.alerts.lifecycle import Action

    body = body or TransitionRequest()
    api = state(request)
    now = datetime.now(UTC)
    async with api.pool.connection() as conn:
        cur = await conn.execute("SELECT id, status FROM incidents WHERE group_id = %s ORDER BY id", (group_id,))
        members = await cur.fetchall()
        if not members:
            raise not_found("incident_not_found")
        done: list[int] = []
        for member in members:
            if member["status"] != "detected":
                continue
            try:
                await actions_store.apply_action(
                    conn, member["id"], Action.ACKNOWLEDGE, actor=principal.name, note=body.note, now=now
                )
            except IllegalTransition:
                continue  # acknowledged meanwhile by someone else: nothing to do
            done.append(member["id"])
        await conn.commit()
    return GroupActionResult(group_id=group_id, acknowledged=done)
