"""``Idempotency-Key`` on API writes: a retried request acts once, a reused key for another request is refused.

A key belongs to one caller (its token; the bootstrap admin has its own name) and to the request
it first came with, summarised as a digest of what the request asks (endpoint, object, action,
body). :func:`claim` records it in the transaction of the write it guards, so the key exists
exactly when the write does: a write that fails leaves the key free for the retry. Two
concurrent requests with one key meet at the primary key: the second waits for the first's
commit, then is answered as a retry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg
from liftwatch.api.auth import Principal
from liftwatch.api.errors import ApiError

# Keys are kept this long: far beyond any client's retries, short enough to keep the table small.
RETENTION = "24 hours"


def digest(**request: Any) -> str:
    """What identifies a request for the key: the same digest means the same request."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


async def claim(conn: psycopg.AsyncConnection[Any], principal: Principal, key: str, request: str) -> bool:
    """True when ``key`` is new (go ahead), False for a retry of the same request; 422 for another request.

    Must run in the transaction of the write it guards (committed or rolled back with it).
    """
    who = principal.key  # the token: a re-issued holder starts afresh
    await conn.execute(
        f"DELETE FROM api_idempotency_keys WHERE caller = %s AND created_at < now() - interval '{RETENTION}'", (who,)
    )
    cur = await conn.execute(
        "INSERT INTO api_idempotency_keys (caller, key, request) VALUES (%s, %s, %s)"
        " ON CONFLICT (caller, key) DO NOTHING RETURNING key",
        (who, key, request),
    )
    if await cur.fetchone() is not None:
        return True
    cur = await conn.execute("SELECT request FROM api_idempotency_keys WHERE caller = %s AND key = %s", (who, key))
    row = await cur.fetchone()
    if row is None:  # expired between the two statements: a new key after all
        return await claim(conn, principal, key, request)
    stored = row["request"] if isinstance(row, dict) else row[0]
    if stored != request:
        raise ApiError("idempotency_key_reused", 422)
    return False
