"""Who is calling: bearer tokens, sessions and the FastAPI dependencies that authenticate them.

Tokens are random strings shown once at creation; only their SHA-256 is stored (``api_tokens``),
with an optional expiry. ``LIFTWATCH_ADMIN_TOKEN`` is an admin that needs no row (bootstrap).
A browser signs in once (``POST /api/v1/session`` with its token) and then holds a **session**:
the ``liftwatch_session`` cookie (HttpOnly, SameSite=Strict) carries a random session id whose
SHA-256 is stored in ``api_sessions``, never the token; signing out deletes it, so a copied
cookie stops working. The ``access_token`` query parameter is accepted on the live-feed stream
only (:func:`stream_principal`), for non-browser clients of an endpoint ``EventSource`` cannot
send headers to; anywhere else a token in a URL (proxy logs, history) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from liftwatch.api.errors import unauthenticated
from psycopg_pool import AsyncConnectionPool

Role: TypeAlias = Literal["admin", "operator", "maintainer", "regulator"]
ROLES: tuple[Role, ...] = ("admin", "operator", "maintainer", "regulator")

COOKIE_NAME = "liftwatch_session"
QUERY_NAME = "access_token"
TOKEN_PREFIX = "lw_"  # noqa: S105 - a prefix, not a secret
# A revoked token stops working within this many seconds (saves a query per request).
_CACHE_TTL_S = 5.0
_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    role: Role
    name: str
    maintainer_id: int | None = None
    maintainer_name: str | None = None
    token_id: int | None = None
    """Row of ``api_tokens`` (None for the bootstrap admin): idempotency keys belong to it."""

    @property
    def key(self) -> str:
        """Who holds what (idempotency keys, stream slots): the token, or the bootstrap admin's name."""
        return f"token:{self.token_id}" if self.token_id is not None else f"name:{self.name}"


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored for a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Resolves tokens to principals, with a short cache in front of ``api_tokens``."""

    def __init__(self, pool: AsyncConnectionPool[Any], admin_token: str | None) -> None:
        self._pool = pool
        self._admin_hash = hash_token(admin_token) if admin_token else None
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, token: str) -> Principal | None:
        """The principal of ``token``, or None when it is unknown, revoked or expired."""
        if len(token) > 256:
            return None
        digest = hash_token(token)
        return self._bootstrap(digest) or await self.resolve_hash(digest)

    def _bootstrap(self, digest: str) -> Principal | None:
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(role="admin", name="admin (bootstrap)")
        return None

    async def resolve_hash(self, digest: str) -> Principal | None:
        """The principal of the token stored as ``digest``, or None."""
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.connection() as conn:
            # Stamps the last use (at most once per cache period): `liftwatch token list` shows it.
            cur = await conn.execute(
                "UPDATE api_tokens t SET last_used_at = now() WHERE t.token_hash = %s AND t.revoked_at IS NULL"
                " AND (t.expires_at IS NULL OR t.expires_at > now())"
                " RETURNING t.id, t.role, t.name, t.maintainer_id,"
                " (SELECT f.name FROM maintenance_firms f WHERE f.id = t.maintainer_id) AS maintainer_name",
                (digest,),
            )
            row = await cur.fetchone()
        principal = (
            None
            if row is None
            else Principal(
                role=row["role"],
                name=row["name"],
                maintainer_id=row["maintainer_id"],
                maintainer_name=row["maintainer_name"],
                token_id=row["id"],
            )
        )
        self._remember(digest, principal)
        return principal

    def _remember(self, key: str, principal: Principal | None) -> None:
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + _CACHE_TTL_S, principal)

    async def resolve_session(self, session_id: str) -> Principal | None:
        """The principal of a console session, or None when it is unknown, expired or its token no longer valid."""
        if len(session_id) > 256:
            return None
        digest = "session:" + hash_token(session_id)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT token_hash FROM api_sessions WHERE session_hash = %s AND expires_at > now()",
                (hash_token(session_id),),
            )
            row = await cur.fetchone()
        principal = None
        if row is not None:
            # The token is checked as well: a revoked or expired token ends its sessions.
            principal = self._bootstrap(row["token_hash"]) or await self.resolve_hash(row["token_hash"])
        self._remember(digest, principal)
        return principal

    async def open_session(self, token: str, hours: float) -> str:
        """A new session for a valid ``token``; returns the session id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        async with self._pool.connection() as conn:
            # Expired sessions are removed as new ones open: the table stays the size of the live ones.
            await conn.execute("DELETE FROM api_sessions WHERE expires_at < now() - interval '1 day'")
            await conn.execute(
                "INSERT INTO api_sessions (session_hash, token_hash, expires_at)"
                " VALUES (%s, %s, now() + make_interval(secs => %s))",
                (hash_token(session_id), hash_token(token), hours * 3600),
            )
        return session_id

    async def close_session(self, session_id: str) -> None:
        """Sign-out: the session stops working (in this process at once, in others within the cache period)."""
        async with self._pool.connection() as conn:
            await conn.execute("DELETE FROM api_sessions WHERE session_hash = %s", (hash_token(session_id),))
        self._cache.pop("session:" + hash_token(session_id), None)


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request presents: a bearer token or a console session id."""

    kind: Literal["token", "session"]
    value: str


def credential_from_request(request: Request, *, query_token: bool = False) -> Credential | None:
    """The caller's credential: the bearer header, else the session cookie, else (``query_token``) ``access_token``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return Credential("token", value.strip()) if scheme.lower() == "bearer" and value.strip() else None
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie:
        return Credential("session", cookie)
    if query_token and request.query_params.get(QUERY_NAME):
        return Credential("token", request.query_params[QUERY_NAME])
    return None


async def resolve(request: Request, credential: Credential) -> Principal | None:
    """The principal of a credential (looked up again by long-lived streams), or None."""
    store: TokenStore = request.app.state.tokens
    if credential.kind == "session":
        return await store.resolve_session(credential.value)
    return await store.resolve(credential.value)


_bearer = HTTPBearer(auto_error=False, description="Token from `liftwatch token create`.")


async def _authenticate(request: Request, *, query_token: bool) -> Principal:
    credential = credential_from_request(request, query_token=query_token)
    if credential is None:
        if request.query_params.get(QUERY_NAME):
            request.app.state.metrics.auth_failures.labels(reason="token_in_url").inc()
        raise unauthenticated()
    principal = await resolve(request, credential)
    if principal is None:
        reason = "unknown_session" if credential.kind == "session" else "unknown_token"
        request.app.state.metrics.auth_failures.labels(reason=reason).inc()
        raise unauthenticated()
    request.state.principal = principal
    request.state.credential = credential
    return principal


async def current_principal(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Principal:
    """FastAPI dependency: the authenticated caller (bearer header or session cookie), or 401."""
    return await _authenticate(request, query_token=False)


async def stream_principal(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Principal:
    """Like :func:`current_principal`, also accepting the ``access_token`` query parameter (the live feed only)."""
    return await _authenticate(request, query_token=True)
