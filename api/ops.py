"""Operational endpoints: health, metrics, who-am-I, console session, catalogs, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from liftwatch import i18n
from liftwatch.api import auth
from liftwatch.api.app import ApiState, language, state
from liftwatch.api.deps import Admin, Reader
from liftwatch.api.errors import unauthenticated
from liftwatch.api.models import DeadLetter, DeadLetterPage, Health, Me
from liftwatch.api.pagination import decode_cursor, encode_cursor
from liftwatch.mqtt import BrokerAddress
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter()

_CHECK_TIMEOUT_S = 2.0


def _connect_packet(address: BrokerAddress) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session, keep-alive 10 s) with the URL's credentials."""

    def text(value: str) -> bytes:
        data = value.encode()
        return len(data).to_bytes(2, "big") + data

    flags = 0x02
    payload = text(f"liftwatch-health-{secrets.token_hex(4)}")
    if address.username is not None:
        flags |= 0x80
        payload += text(address.username)
        if address.password is not None:
            flags |= 0x40
            payload += text(address.password)
    body = text("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big") + payload
    length = bytearray()
    remaining = len(body)
    while True:
        byte, remaining = remaining % 128, remaining // 128
        length.append(byte | (0x80 if remaining else 0))
        if not remaining:
            break
    return bytes([0x10]) + bytes(length) + body


async def _mqtt_answers(url: str) -> bool:
    """True when the broker answers an MQTT CONNECT with a CONNACK (an open port alone is not enough)."""
    address = BrokerAddress.parse(url)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            context = ssl.create_default_context() if address.tls else None
            reader, writer = await asyncio.open_connection(address.host, address.port, ssl=context)
            writer.write(_connect_packet(address))
            await writer.drain()
            connack = await reader.readexactly(4)
            if connack[0] != 0x20 or connack[1] != 0x02:
                return False
            if connack[3] == 0:
                writer.write(b"\xe0\x00")  # DISCONNECT: leave without a last-will or an error in the broker log
                await writer.drain()
            # Any CONNACK means the broker is up; a refusal (bad credentials) is the gateway's concern.
            return True
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


# The rule engines' share of late samples over their last five minutes (rules/health.py), from
# checkpoints written in that time.
_LATE_SHARE = """
SELECT max(late_share) AS share FROM rules_checkpoints WHERE updated_at > now() - interval '5 minutes'
"""


async def _late_samples(api: ApiState) -> str:
    """'ok', or 'high: ...' when the rule engines judge more than the configured share of samples late.

    A detail, not an outage: late samples are still judged (apart, marked late), so /healthz stays
    200 and the operations alert (deploy/prometheus/alerts.yml) pages whoever runs the terminals.
    """
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S), api.pool.connection() as conn:
            row = await (await conn.execute(_LATE_SHARE)).fetchone()
    except Exception:
        return "unknown"
    share = float(row["share"]) if row and row["share"] is not None else 0.0
    if share > api.settings.late_samples_alert_share:
        return f"high: {share:.1%} of samples arrived late in the last 5 minutes"
    return "ok"


@router.get("/healthz", response_model=Health, tags=["operations"], responses={503: {"model": Health}})
async def healthz(request: Request) -> JSONResponse:
    """Database (a query), Kafka (the live feed's consumer) and the MQTT broker (a CONNACK); 503 when degraded."""
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
        checks["mqtt"] = "ok" if await _mqtt_answers(api.settings.mqtt_url) else "down"
    checks["late_samples"] = await _late_samples(api)
    degraded = any(value == "down" for value in checks.values())
    body = Health(status="degraded" if degraded else "ok", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503 if degraded else 200)


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(state(request).registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/me", response_model=Me, tags=["session"])
async def me(request: Request, principal: Reader) -> Me:
    """The caller's identity and the console's display settings."""
    settings = state(request).settings
    return Me(
        role=principal.role,
        name=principal.name,
        maintainer_id=principal.maintainer_id,
        maintainer=principal.maintainer_name,
        language=language(request),
        timezone=settings.site_timezone,
    )


@router.post("/api/v1/session", status_code=204, tags=["session"], response_class=Response)
async def login(request: Request) -> Response:
    """Console sign-in: checks the bearer token and opens a session (HttpOnly, SameSite=Strict cookie).

    The cookie holds a random session id, never the token; ``DELETE`` ends the session.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated()
    tokens: auth.TokenStore = request.app.state.tokens
    if await tokens.resolve(token) is None:
        state(request).metrics.auth_failures.labels(reason="unknown_token").inc()
        raise unauthenticated()
    settings = state(request).settings
    session_id = await tokens.open_session(token, settings.api_session_hours)
    response = Response(status_code=204)
    response.set_cookie(
        auth.COOKIE_NAME,
        session_id,
        httponly=True,
        samesite="strict",
        secure=settings.api_cookie_secure,
        max_age=int(settings.api_session_hours * 3600),
        path="/",
    )
    return response


@router.delete("/api/v1/session", status_code=204, tags=["session"], response_class=Response)
async def logout(request: Request) -> Response:
    """Console sign-out: the session ends on the server too (a copy of the cookie stops working)."""
    session_id = request.cookies.get(auth.COOKIE_NAME)
    if session_id:
        await request.app.state.tokens.close_session(session_id)
    response = Response(status_code=204)
    response.delete_cookie(auth.COOKIE_NAME, path="/")
    return response


@router.get("/api/v1/i18n/{lang}", tags=["session"])
async def catalog(lang: Literal["zh", "en"]) -> dict[str, str]:
    """Texts of the console (``common``, ``console``, ``errors``, ``pages``, ``reports``) in one language."""
    return i18n.labels(lang, {"common": 1, "console": 1, "errors": 1, "pages": 1, "reports": 1})


@router.get("/api/v1/dead-letters", response_model=DeadLetterPage, tags=["operations"])
async def dead_letters(
    request: Request,
    _: Admin,
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
