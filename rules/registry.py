"""The registry join: what the rules need to know about each terminal's elevator, from PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
from liftwatch.rules.params import TerminalInfo
from psycopg_pool import AsyncConnectionPool

REGISTRY_QUERY = """
SELECT t.terminal_id, e.registration_code, e.rated_speed, e.bottom_floor, e.top_floor, e.model
FROM terminals t JOIN elevators e ON e.registration_code = t.registration_code
"""


def _rows_to_registry(rows: list[Any]) -> dict[str, TerminalInfo]:
    registry: dict[str, TerminalInfo] = {}
    for row in rows:
        values = tuple(row.values()) if isinstance(row, dict) else tuple(row)
        terminal, code, rated, bottom, top, model = values
        registry[terminal] = TerminalInfo(code, float(rated), int(bottom), int(top), model)
    return registry


# NOTIFY channel of registry changes (migration 055): the payload is the schema that changed.
REGISTRY_CHANNEL = "liftwatch_registry"


async def load_registry(pool: AsyncConnectionPool, terminals: list[str] | None = None) -> dict[str, TerminalInfo]:
    """Every terminal fitted to a registered elevator (or only those of ``terminals``)."""
    async with pool.connection() as conn:
        if terminals is None:
            cursor = await conn.execute(REGISTRY_QUERY)
        else:
            cursor = await conn.execute(REGISTRY_QUERY + " WHERE t.terminal_id = ANY(%s)", (terminals,))
        return _rows_to_registry(await cursor.fetchall())


def load_registry_sync(conn: psycopg.Connection[Any]) -> dict[str, TerminalInfo]:
    """Same, on a plain connection (``replay``)."""
    return _rows_to_registry(conn.execute(REGISTRY_QUERY).fetchall())
