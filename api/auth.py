"""Who is calling: bearer tokens, roles and the FastAPI dependencies that enforce them.

Tokens are random strings shown once at creation; only their SHA-256 is stored (``api_tokens``).
``LIFTWATCH_ADMIN_TOKEN`` is an admin that needs no row (bootstrap). A browser console cannot send
headers on an ``EventSource``, so the token is also accepted from the ``liftwatch_token`` cookie
(set by ``POST /api/v1/session``, HttpOnly, SameSite=Strict) and the ``access_token`` query
parameter (for non-browser stream clients).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from liftwatch.api.errors import forbidden, unauthenticated
from psycopg_pool import AsyncConnectionPool

Role: TypeAlias = Literal["admin", "operator", "maintainer", "regulator"]
ROLES: tuple[Role, ...] = ("admin", "operator", "maintainer", "regulator")

COOKIE_NAME = "liftwatch_token"
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
    def firm_scoped(self) -> bool:
        """True when the caller sees only the elevators of its own maintenance firm."""
        return self.role == "maintainer"


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
        """The principal of ``token``, or None when it is unknown or revoked."""
        if len(token) > 256:
            return None
        digest = hash_token(token)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(role="admin", name="admin (bootstrap)")
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.connection() as conn:
            # Stamps the last use (at most once per cache period): `liftwatch token list` shows it.
            cur = await conn.execute(
                "UPDATE api_tokens t SET last_used_at = now() WHERE t.token_hash = %s AND t.revoked_at IS NULL"
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
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (now + _CACHE_TTL_S, principal)
        return principal


def token_from_request(request: Request) -> str | None:
    """The token presented by the caller (header, then cookie, then query parameter)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie:
        return cookie
    return request.query_params.get(QUERY_NAME) or None


_bearer = HTTPBearer(auto_error=False, description="Token from `liftwatch token create`.")


async def current_principal(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Principal:
    """FastAPI dependency: the authenticated caller, or 401."""
    token = token_from_request(request)
    if token is None:
        raise unauthenticated()
    store: TokenStore = request.app.state.tokens
    principal = await store.resolve(token)
    if principal is None:
        request.app.state.metrics.auth_failures.labels(reason="unknown_token").inc()
        raise unauthenticated()
    request.state.principal = principal
    return principal


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """FastAPI dependency factory: the caller, who must have one of ``roles`` (else 403)."""
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise forbidden()
        return principal

    return dependency
