"""Operational endpoints: health, metrics, who-am-I, console session, catalogs, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from liftwatch import i18n
from liftwatch.api import auth
from liftwatch.api.app import language, state
from liftwatch.api.auth import Principal, current_principal, require_roles
from liftwatch.api.errors import unauthenticated
from liftwatch.api.models import DeadLetter, DeadLetterPage, Health, Me
from liftwatch.api.pagination import decode_cursor, encode_cursor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter()

_CHECK_TIMEOUT_S = 2.0


async def _tcp_reachable(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@router.get("/healthz", response_model=Health, tags=["operations"], responses={503: {"model": Health}})
async def healthz(request: Request) -> JSONResponse:
    """Database, Kafka (the live feed's consumer) and MQTT broker reachability; 503 when degraded."""
    api = state(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S), api.pool.connection() as conn:
            await conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "down"
    if api.feed is None:
        checks["kafka"] = "not configured"
    else:
        checks["kafka"] = "ok" if api.feed.connected else "down"
    if api.settings.mqtt_url is None:
        checks["mqtt"] = "not configured"
    else:
        parts = urlsplit(api.settings.mqtt_url)
        reachable = await _tcp_reachable(parts.hostname or "127.0.0.1", parts.port or 1883)
        checks["mqtt"] = "ok" if reachable else "down"
    degraded = any(value == "down" for value in checks.values())
    body = Health(status="degraded" if degraded else "ok", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503 if degraded else 200)


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(state(request).registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/me", response_model=Me, tags=["session"])
async def me(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Me:
    """The caller's identity and the console's display settings."""
    settings = state(request).settings
    return Me(
        role=principal.role,
        name=principal.name,
        maintainer_id=principal.maintainer_id,
        maintainer=principal.maintainer_name,
        language=language(request),
        timezone=settings.site_timezone,
        dispatch_deadline_s=settings.dispatch_deadline_s,
        arrival_deadline_s=settings.arrival_deadline_s,
    )


@router.post("/api/v1/session", status_code=204, tags=["session"], response_class=Response)
async def login(request: Request) -> Response:
    """Console sign-in: checks the bearer token and keeps it in an HttpOnly, SameSite=Strict cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated()
    if await request.app.state.tokens.resolve(token.strip()) is None:
        state(request).metrics.auth_failures.labels(reason="unknown_token").inc()
        raise unauthenticated()
    response = Response(status_code=204)
    response.set_cookie(
        auth.COOKIE_NAME,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=state(request).settings.api_cookie_secure,
        max_age=12 * 3600,
    )
    return response


@router.delete("/api/v1/session", status_code=204, tags=["session"], response_class=Response)
async def logout() -> Response:
    """Console sign-out."""
    response = Response(status_code=204)
    response.delete_cookie(auth.COOKIE_NAME)
    return response


@router.get("/api/v1/i18n/{lang}", tags=["session"])
async def catalog(lang: Literal["zh", "en"]) -> dict[str, str]:
    """Texts of the console (``common``, ``console`` and ``errors`` domains) in one language."""
    return i18n.labels(lang, {"common": 1, "console": 1, "errors": 1})


@router.get("/api/v1/dead-letters", response_model=DeadLetterPage, tags=["operations"])
async def dead_letters(
    request: Request,
    _: Annotated[Principal, Depends(require_roles("admin"))],
    reason: Annotated[str | None, Query(max_length=64)] = None,
    terminal_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> DeadLetterPage:
    """Refused inputs, newest first (admin)."""
    where = ["TRUE"]
    params: list[object] = []
    if reason is not None:
        where.append("reason = %s")
        params.append(reason)
    if terminal_id is not None:
        where.append("terminal_id = %s")
        params.append(terminal_id)
    if cursor is not None:
        where.append("id < %s")
        params.append(decode_cursor(cursor))
    async with state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, received_at, source, topic, reason, detail, terminal_id,"
            " substring(payload from 1 for 512) AS head, length(payload) AS size"
            f" FROM dead_letters WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
            [*params, limit + 1],
        )
        rows = await cur.fetchall()
    items = [
        DeadLetter(
            id=row["id"],
            received_at=row["received_at"],
            source=row["source"],
            topic=row["topic"],
            reason=row["reason"],
            detail=row["detail"],
            terminal_id=row["terminal_id"],
            payload_preview=bytes(row["head"]).decode("utf-8", errors="replace"),
            payload_bytes=row["size"],
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return DeadLetterPage(items=items, next_cursor=next_cursor)
