"""The outbox relays: ``incident_events`` rows -> Kafka ``incidents`` and -> webhook deliveries.

Two independent relays, each with its own durable position (``alerts_relay_position``), so a
Kafka outage never holds up the emergency centre's webhooks and a slow receiver never holds up
the live feed:

* ``kafka``: publishes each new row, in id order, as an :class:`IncidentChange` (change_id = row
  id), waits for Kafka's acknowledgement, then stores the position. A crash between the two
  republishes the same change ids (consumers dedupe on ``change_id``); nothing is skipped.
* ``notify``: routes each new row (:mod:`liftwatch.alerts.routing`) and inserts one pending
  delivery per receiver, keyed ``{change_id}:webhook:{webhook_id}``, and the position, in one
  transaction: a restart neither skips nor repeats a notification.

The position row is locked for the batch, so several service instances relay one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from liftwatch.alerts.incidents import EventKind
from liftwatch.alerts.lifecycle import OPEN_SQL
from liftwatch.alerts.messages import quiet_until
from liftwatch.alerts.outbox import append_event, lock_outbox
from liftwatch.alerts.routing import ChangeFacts, RoutingPolicy, Target, Webhook, recipients
from liftwatch.alerts.storms import (
    DEFAULT_INHIBIT_RULES,
    GroupRule,
    InhibitRule,
    StormIncident,
    first_leader,
    group_key,
    inhibitor,
)
from liftwatch.alerts.suppression import suppression_sql
from liftwatch.schema import FaultCode, IncidentChange, Severity
from psycopg import sql
from psycopg.rows import dict_row

KAFKA_RELAY = "kafka"
NOTIFY_RELAY = "notify"

# What :func:`to_change` reads of a change: every reader of changes (this relay, the API's replay
# of missed changes) selects them, so a replayed change is the relayed one.
CHANGE_COLUMNS = (
    "ev.id AS change_id, ev.incident_id, ev.kind, ev.status_after, ev.at, ev.actor, ev.note, i.code, i.severity,"
    " i.registration_code, i.terminal_id, i.district, i.maintainer_id, f.name AS maintainer"
)
CHANGES_FROM = (
    "incident_events ev JOIN incidents i ON i.id = ev.incident_id"
    " LEFT JOIN maintenance_firms f ON f.id = i.maintainer_id"
)
# `suppressed`: a maintenance window, shelf or out-of-service period at the change's own time.
_CHANGES = f"""
SELECT {CHANGE_COLUMNS}, ev.data, i.escalation_level, i.detected_at, i.occurrences, i.chattering,
       e.rescue_code, e.address, u.name AS use_unit, {suppression_sql("i", "ev.at")} AS suppressed,
       i.opened_at, i.closed_at, i.condition_cleared_at, i.group_id, i.inhibited_by
FROM {CHANGES_FROM}
LEFT JOIN elevators e ON e.registration_code = i.registration_code
LEFT JOIN use_units u ON u.id = i.use_unit_id
WHERE ev.id > %s
ORDER BY ev.id
LIMIT %s
"""


async def lock_position(conn: psycopg.AsyncConnection[Any], relay: str) -> int:
    """The relay's last handled change id, locked until the end of the transaction."""
    await conn.execute("INSERT INTO alerts_relay_position (relay) VALUES (%s) ON CONFLICT (relay) DO NOTHING", (relay,))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT last_change_id FROM alerts_relay_position WHERE relay = %s FOR UPDATE", (relay,))
    row = await cur.fetchone()
    assert row is not None
    return int(row["last_change_id"])


async def save_position(conn: psycopg.AsyncConnection[Any], relay: str, change_id: int) -> None:
    await conn.execute(
        "UPDATE alerts_relay_position SET last_change_id = %s, updated_at = now() WHERE relay = %s",
        (change_id, relay),
    )


async def read_changes(conn: psycopg.AsyncConnection[Any], after: int, limit: int) -> list[dict[str, Any]]:
    """Audit rows after ``after``, in id order, joined with their incident and registry data."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_CHANGES, (after, limit))
    return await cur.fetchall()


def to_change(row: dict[str, Any]) -> IncidentChange | None:
    """The record of a change row (:data:`CHANGE_COLUMNS`), relayed to Kafka and replayed over SSE alike.

    None for a row the schema cannot carry (not a catalog code).
    """
    try:
        code, severity = FaultCode(row["code"]), Severity(row["severity"])
    except ValueError:
        return None
    return IncidentChange(
        change_id=row["change_id"],
        incident_id=row["incident_id"],
        kind=row["kind"],
        status=row["status_after"],
        code=code,
        severity=severity,
        registration_code=row["registration_code"],
        terminal=row["terminal_id"],
        maintainer=row["maintainer"],
        district=row["district"],
        at_ms=_ms(row["at"]),
        actor=row["actor"],
        note=row["note"],
        maintainer_id=row["maintainer_id"],
    )


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def notification_body(row: dict[str, Any]) -> bytes:
    """The JSON body a webhook receives for a change (documented in docs/alerts.md)."""
    body = {
        "change_id": row["change_id"],
        "incident_id": row["incident_id"],
        "kind": row["kind"],
        "status": row["status_after"],
        "code": row["code"],
        "severity": row["severity"],
        "escalation_level": row["escalation_level"],
        "registration_code": row["registration_code"],
        "rescue_code": row["rescue_code"],
        "address": row["address"],
        "district": row["district"],
        "use_unit": row["use_unit"],
        "terminal": row["terminal_id"],
        "maintainer": row["maintainer"],
        "detected_at": row["detected_at"].isoformat(),
        "at": row["at"].isoformat(),
        "actor": row["actor"],
        "note": row["note"],
        "occurrences": row["occurrences"],
        "chattering": row["chattering"],
        "data": row["data"],
        "group_id": row.get("group_id"),
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode()


async def load_webhooks(conn: psycopg.AsyncConnection[Any], default_secret: str) -> list[Webhook]:
    """Enabled webhooks (the secret falls back to the service's ``webhook_secret``)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT id, name, target, url, secret, maintainer_id, district, enabled, channel, language, quiet_from,"
        " quiet_to FROM alerts_webhooks WHERE enabled ORDER BY id"
    )
    return [
        Webhook(
            id=row["id"],
            name=row["name"],
            target=Target(row["target"]),
            url=row["url"],
            secret=row["secret"] or default_secret,
            maintainer_id=row["maintainer_id"],
            district=row["district"],
            channel=row["channel"],
            quiet_from=row["quiet_from"],
            quiet_to=row["quiet_to"],
        )
        for row in await cur.fetchall()
    ]


@dataclass(frozen=True, slots=True)
class Routed:
    """Result of routing one batch of changes."""

    changes: int
    deliveries: int
    last_change_id: int
    suppressed: dict[str, int] = field(default_factory=dict)
    """Changes not notified, by why (maintenance, shelved, out_of_service)."""


@dataclass(frozen=True, slots=True)
class StormPolicy:
    """Grouping and inhibition (liftwatch.alerts.storms), as configured."""

    group: GroupRule = field(default_factory=GroupRule)
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT_RULES


_STORM_COLUMNS = (
    "id, code, registration_code, district, maintainer_id, opened_at, group_id, closed_at, condition_cleared_at"
)


def _storm_incident(row: dict[str, Any], id_column: str = "id") -> StormIncident:
    return StormIncident(
        id=row[id_column],
        code=row["code"],
        registration_code=row["registration_code"],
        district=row["district"],
        maintainer_id=row["maintainer_id"],
        opened_at=row["opened_at"],
        group_id=row["group_id"],
        closed_at=row["closed_at"],
        condition_cleared_at=row["condition_cleared_at"],
    )


async def _apply_storms(
    conn: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]], storms: StormPolicy, now: datetime
) -> None:
    """Group newly opened incidents and judge inhibition for each change, in change order.

    Sets ``group_id`` and ``inhibited_by`` on the rows; what changed is stored on the incidents
    with a ``grouped`` / ``inhibited`` row on their trail (so the board and the live feed learn
    of it), in the relay's transaction: a replayed batch decides the same again. The writes take
    the outbox lock first, in the order every incident writer uses (outbox lock, then rows).
    """
    cur = conn.cursor(row_factory=dict_row)
    writes: dict[tuple[int, str], int | None] = {}  # (incident, column) -> new value, in decision order
    by_incident: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_incident.setdefault(row["incident_id"], []).append(row)
    opened = [row for row in rows if row["kind"] == "opened"]
    if opened and storms.group.window_s > 0:
        since = min(row["opened_at"] for row in opened) - timedelta(seconds=storms.group.window_s)
        await cur.execute(
            f"SELECT {_STORM_COLUMNS} FROM incidents WHERE code = ANY(%s) AND opened_at >= %s AND {OPEN_SQL}",
            (sorted({row["code"] for row in opened}), since),
        )
        recent = {row["id"]: _storm_incident(row) for row in await cur.fetchall()}
        # Candidates per group key in (opened_at, id) order: a storm's first incident leads, found at once.
        buckets: dict[tuple[Any, ...], list[StormIncident]] = {}
        for incident in sorted(recent.values(), key=lambda incident: (incident.opened_at, incident.id)):
            key = group_key(incident, storms.group)
            if key is not None:
                buckets.setdefault(key, []).append(incident)
        position = {incident.id: index for bucket in buckets.values() for index, incident in enumerate(bucket)}
        for row in opened:
            new = recent.get(row["incident_id"]) or _storm_incident(row, "incident_id")
            key = group_key(new, storms.group)
            if key is None:
                continue
            bucket = buckets.get(key, [])
            earlier = [incident for incident in bucket[:8] if incident.id < new.id]  # the head suffices
            leader = first_leader(new, earlier, storms.group)
            if leader is None and len(bucket) > 8:
                leader = first_leader(new, [i for i in bucket if i.id < new.id], storms.group)
            if leader is None:
                continue
            for member in (leader, new.id):
                current = recent.get(member)
                if current is not None and current.group_id == leader:
                    continue
                writes[(member, "group_id")] = leader
                if current is not None:
                    recent[member] = replace(current, group_id=leader)
                    if member in position:
                        bucket[position[member]] = recent[member]
            for row_of in by_incident.get(leader, []) + by_incident.get(new.id, []):
                row_of["group_id"] = leader
    targets = {code for rule in storms.inhibit for code in rule.target}
    candidates = [row for row in rows if row["code"] in targets]
    if candidates:
        await cur.execute(
            f"SELECT {_STORM_COLUMNS} FROM incidents WHERE code = ANY(%s)"
            " AND (registration_code = ANY(%s) OR district = ANY(%s))"
            " AND (closed_at IS NULL OR closed_at > %s)",
            (
                sorted({code for rule in storms.inhibit for code in rule.source}),
                sorted({row["registration_code"] for row in candidates if row["registration_code"]}),
                sorted({row["district"] for row in candidates if row["district"]}),
                min(row["at"] for row in candidates),
            ),
        )
        sources = [_storm_incident(row) for row in await cur.fetchall()]
        # Rules that only pair incidents of one elevator (the defaults) look at its own sources only.
        per_elevator = all("registration_code" in rule.equal for rule in storms.inhibit)
        by_elevator: dict[str | None, list[StormIncident]] = {}
        for source in sources:
            by_elevator.setdefault(source.registration_code, []).append(source)
        for row in candidates:
            near = by_elevator.get(row["registration_code"], []) if per_elevator else sources
            by = inhibitor(_storm_incident(row, "incident_id"), row["at"], near, storms.inhibit)
            row["inhibited_now"] = by
            if by != row["inhibited_by"]:
                writes[(row["incident_id"], "inhibited_by")] = by
                for row_of in by_incident[row["incident_id"]]:
                    row_of["inhibited_by"] = by
    if not writes:
        return
    await lock_outbox(conn)
    for (incident_id, column), value in writes.items():
        await cur.execute(
            sql.SQL("UPDATE incidents SET {} = %s WHERE id = %s RETURNING status").format(sql.Identifier(column)),
            (value, incident_id),
        )
        updated = await cur.fetchone()
        if updated is None or value is None:
            continue  # an inhibition that ended shows as the next change being notified again
        kind, data = (
            (EventKind.GROUPED, {"group": value}) if column == "group_id" else (EventKind.INHIBITED, {"by": value})
        )
        await append_event(
            conn, incident_id, kind=kind.value, status_after=updated["status"], actor="system", at=now, data=data
        )


async def _group_notified(conn: psycopg.AsyncConnection[Any], group_id: int) -> set[tuple[int, str]]:
    """(webhook, change kind) pairs some member of the group was already notified of."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT DISTINCT d.webhook_id, ev.kind FROM alerts_deliveries d JOIN incident_events ev ON ev.id = d.change_id"
        " JOIN incidents i ON i.id = ev.incident_id WHERE i.group_id = %s",
        (group_id,),
    )
    return {(row["webhook_id"], row["kind"]) for row in await cur.fetchall()}


def _first_attempt(hook: Webhook, severity: str, now: datetime, timezone: str) -> datetime:
    """Now, or the end of the receiver's quiet hours for a non-critical change."""
    if severity == "critical":
        return now
    return quiet_until(now, timezone, hook.quiet_from, hook.quiet_to) or now


async def route_changes(
    conn: psycopg.AsyncConnection[Any],
    *,
    policy: RoutingPolicy,
    default_secret: str,
    now: datetime,
    limit: int,
    storms: StormPolicy | None = None,
    timezone: str,
) -> Routed:
    """The ``notify`` relay: one batch, in one transaction (pending deliveries + position).

    Before routing, storms are judged (:func:`_apply_storms`): an inhibited change is not
    notified; a grouped incident's change goes to each receiver once per group and change kind.
    """
    storms = storms if storms is not None else StormPolicy()
    async with conn.transaction():
        after = await lock_position(conn, NOTIFY_RELAY)
        rows = await read_changes(conn, after, limit)
        if not rows:
            return Routed(0, 0, after)
        await _apply_storms(conn, rows, storms, now)
        hooks = await load_webhooks(conn, default_secret)
        deliveries: list[tuple[Any, ...]] = []
        suppressed: dict[str, int] = {}
        notified: dict[int, set[tuple[int, str]]] = {}  # group -> (webhook, kind) already told
        for row in rows:
            why = row["suppressed"] or ("inhibited" if row.get("inhibited_now") else None)
            facts = ChangeFacts(
                kind=row["kind"],
                severity=row["severity"],
                maintainer_id=row["maintainer_id"],
                district=row["district"],
                escalation_level=row["escalation_level"],
                suppressed=why,
            )
            if why is not None and facts.kind not in policy.quiet_kinds:
                suppressed[why] = suppressed.get(why, 0) + 1
            targets = recipients(facts, hooks, policy)
            group = row["group_id"]
            if targets and group is not None and row["kind"] == "renotified":
                # A group is reminded through its leader, every time; the members' reminders are its.
                if group != row["incident_id"]:
                    suppressed["grouped"] = suppressed.get("grouped", 0) + 1
                    targets = []
            elif targets and group is not None:
                if group not in notified:
                    notified[group] = await _group_notified(conn, group)
                told = notified[group]
                kept = [hook for hook in targets if (hook.id, row["kind"]) not in told]
                if len(kept) < len(targets):
                    suppressed["grouped"] = suppressed.get("grouped", 0) + 1
                told.update((hook.id, row["kind"]) for hook in kept)
                targets = kept
            if targets:
                body = notification_body(row)
                deliveries.extend(
                    (row["change_id"], hook.id, f"{row['change_id']}:webhook:{hook.id}", body,
                     _first_attempt(hook, row["severity"], now, timezone)) for hook in targets
                )  # fmt: skip
        if deliveries:  # one statement for the batch, not a round trip per change
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO alerts_deliveries (change_id, webhook_id, idempotency_key, body, next_attempt_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING",
                    deliveries,
                )
        last = int(rows[-1]["change_id"])
        await save_position(conn, NOTIFY_RELAY, last)
        return Routed(len(rows), len(deliveries), last, suppressed)


# --- webhook deliveries -----------------------------------------------------------------------

_CLAIM = """
UPDATE alerts_deliveries d SET next_attempt_at = %s, attempts = d.attempts + 1
FROM alerts_webhooks w
WHERE w.id = d.webhook_id AND d.id IN (
    SELECT id FROM alerts_deliveries
    WHERE status = 'pending' AND next_attempt_at <= %s
    ORDER BY next_attempt_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.change_id, d.idempotency_key, d.body, d.attempts, w.url, w.secret, w.name, w.enabled, w.channel,
    w.language
"""


async def claim_deliveries(
    conn: psycopg.AsyncConnection[Any], *, now: datetime, lease_s: float, limit: int
) -> list[dict[str, Any]]:
    """Take up to ``limit`` due deliveries for ``lease_s`` (a crashed sender's claims come back after it)."""
    cur = conn.cursor(row_factory=dict_row)
    async with conn.transaction():
        await cur.execute(_CLAIM, (now + timedelta(seconds=lease_s), now, limit))
        return await cur.fetchall()


async def mark_sent(conn: psycopg.AsyncConnection[Any], delivery_id: int, *, now: datetime) -> None:
    await conn.execute(
        "UPDATE alerts_deliveries SET status = 'sent', sent_at = %s, last_error = NULL WHERE id = %s",
        (now, delivery_id),
    )


async def mark_failed(
    conn: psycopg.AsyncConnection[Any], delivery_id: int, *, error: str, retry_at: datetime | None, now: datetime
) -> None:
    """Schedule a retry at ``retry_at``, or dead-letter the delivery (``retry_at`` None)."""
    if retry_at is None:
        await conn.execute(
            "UPDATE alerts_deliveries SET status = 'dead', dead_at = %s, last_error = %s WHERE id = %s",
            (now, error[:1000], delivery_id),
        )
    else:
        await conn.execute(
            "UPDATE alerts_deliveries SET next_attempt_at = %s, last_error = %s WHERE id = %s",
            (retry_at, error[:1000], delivery_id),
        )


async def delivery_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Webhook deliveries pending and dead (both read from their partial indexes)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT (SELECT count(*) FROM alerts_deliveries WHERE status = 'pending') AS pending,"
        " (SELECT count(*) FROM alerts_deliveries WHERE status = 'dead') AS dead"
    )
    row = await cur.fetchone()
    assert row is not None
    return {"pending": int(row["pending"]), "dead": int(row["dead"])}


def changes_of(rows: Sequence[dict[str, Any]]) -> list[IncidentChange]:
    """The Kafka records of a batch of rows (rows the schema cannot carry are left out)."""
    return [change for change in map(to_change, rows) if change is not None]
