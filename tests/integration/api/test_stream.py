"""The live feed: changes arrive over SSE filtered by role, and a reconnect replays what was missed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from liftwatch.alerts import actions_store, relay
from liftwatch.alerts.lifecycle import Action
from liftwatch.api import access, auth, feed, incidents
from liftwatch.api.auth import Principal
from liftwatch.config import ApiSettings
from liftwatch.launcher import services
from liftwatch.schema import decode_incident_change, encode_record

from tests.fixtures.api import RunningApi, World, add_elevator, open_incident, running_api

pytestmark = [
    pytest.mark.integration,
    # core/services.start_tansu leaves its log file to the garbage collector (reported to the lead).
    pytest.mark.filterwarnings(r"ignore:Exception ignored in.*tansu\.log:pytest.PytestUnraisableExceptionWarning"),
]


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """(event, id, data) of each SSE event of a streaming response."""
    event, ident, data = "message", "", ""
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event, ident, json.loads(data)
            event, ident, data = "message", "", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            ident = line[3:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


async def _collect(
    api: RunningApi, token: str, want: int, headers: dict[str, str] | None = None, query: str = ""
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=30) as client,
        client.stream(
            "GET", f"/api/v1/incidents/stream{query}", headers={"Authorization": f"Bearer {token}", **(headers or {})}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event, ident, data in _events(response):
            if event == "feed":
                assert data == {"live": True}  # the server's feed is connected to Kafka
                continue
            assert event == "incident" and int(ident) == data["change_id"]
            got.append(data)
            if len(got) >= want:
                break
    return got


async def _subscribed(api: RunningApi, count: int) -> None:
    """Wait until ``count`` stream clients are registered with the feed (no sleeping on a guess)."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        for _ in range(400):
            text = (await client.get("/metrics")).text
            if f"liftwatch_api_sse_clients {float(count)}" in text:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{count} stream clients never subscribed")


def _new_incident(world: World, firm: str, number: int) -> int:
    with psycopg.connect(world.database_url) as conn:
        district = "浦东新区" if firm == "a" else "黄浦区"
        registration, _, terminal = add_elevator(conn, world.firms[firm], number, district)
        return open_incident(conn, registration, terminal, world.firms[firm])


async def test_changes_reach_each_role_filtered_and_a_reconnect_replays(
    api_server: RunningApi, api_world: World, outbox_relay: None
) -> None:
    operator = asyncio.create_task(_collect(api_server, api_world.tokens["operator"], 2))
    firm_a = asyncio.create_task(_collect(api_server, api_world.tokens["maintainer"], 1))
    firm_b = asyncio.create_task(_collect(api_server, api_world.tokens["maintainer_b"], 1))
    await _subscribed(api_server, 3)
    b_incident = await asyncio.to_thread(_new_incident, api_world, "b", 11)
    a_incident = await asyncio.to_thread(_new_incident, api_world, "a", 12)
    seen_by_operator, seen_by_a, seen_by_b = await asyncio.wait_for(asyncio.gather(operator, firm_a, firm_b), 30)

    assert [c["incident_id"] for c in seen_by_operator] == [b_incident, a_incident]
    assert [c["incident_id"] for c in seen_by_a] == [a_incident]
    assert [c["incident_id"] for c in seen_by_b] == [b_incident]
    assert seen_by_a[0]["code"] == "trapped_passenger" and seen_by_a[0]["kind"] == "opened"

    # A reconnecting client names the last change it saw and gets the rest from the audit trail,
    # the maintenance firm only its own.
    first = seen_by_operator[0]["change_id"]
    replay = await asyncio.wait_for(
        _collect(api_server, api_world.tokens["operator"], 1, headers={"Last-Event-ID": str(first)}), 30
    )
    assert [c["change_id"] for c in replay] == [seen_by_operator[1]["change_id"]]
    replay_a = await asyncio.wait_for(_collect(api_server, api_world.tokens["maintainer"], 3, query="?after=0"), 30)
    assert {c["incident_id"] for c in replay_a} == {api_world.incidents["a"], api_world.dispatched["a"], a_incident}


async def test_an_operator_action_is_delivered_live(
    api_server: RunningApi, api_world: World, outbox_relay: None
) -> None:
    listener = asyncio.create_task(_collect(api_server, api_world.tokens["maintainer"], 1))
    await _subscribed(api_server, 1)
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as client:
        answer = await client.post(
            f"/api/v1/incidents/{api_world.incidents['a']}/acknowledge",
            json={"note": "已联系现场"},
            headers=api_world.headers("operator"),
        )
    assert answer.status_code == 200, answer.text
    change = (await asyncio.wait_for(listener, 30))[0]
    assert (change["incident_id"], change["status"], change["actor"], change["note"]) == (
        api_world.incidents["a"],
        "acknowledged",
        "operator-olivia",
        "已联系现场",
    )


async def test_stream_needs_a_token_and_accepts_it_as_a_query_parameter(
    api_server: RunningApi, api_world: World
) -> None:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=10) as client:
        refused = await client.get("/api/v1/incidents/stream")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        token = api_world.tokens["regulator"]
        async with client.stream("GET", f"/api/v1/incidents/stream?access_token={token}&after=0") as response:
            assert response.status_code == 200
            async for event, _, data in _events(response):
                assert event == "incident" and data["kind"] == "opened"  # the replay comes first
                break


async def test_a_kafka_outage_shows_on_the_stream_and_in_health(
    api_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka retries a lost broker silently: the feed notices, says so on every stream and in
    /healthz, and comes back by itself when the broker does."""
    monkeypatch.setattr(feed, "_PROBE_S", 0.3)  # the API runs in this process
    monkeypatch.setattr(incidents, "_POLL_S", 0.1)
    port = services.free_port()
    broker = services.start_tansu(port)
    settings = ApiSettings(
        database_url=api_world.database_url, kafka_bootstrap=broker.url, mqtt_url=None,
        api_port=services.free_port(), topic_prefix="outage.", log_level="ERROR",
    )  # fmt: skip
    try:
        with running_api(settings) as api:
            async with (
                httpx.AsyncClient(base_url=api.url, timeout=30) as client,
                client.stream("GET", "/api/v1/incidents/stream", headers=api_world.headers("regulator")) as stream,
            ):
                states = _events(stream)

                async def next_feed_state() -> bool:
                    async for event, _, data in states:
                        if event == "feed":
                            return bool(data["live"])
                    raise AssertionError("the stream ended")

                assert await asyncio.wait_for(next_feed_state(), 10) is True
                await asyncio.to_thread(broker.stop)
                assert await asyncio.wait_for(next_feed_state(), 15) is False
                health = await client.get("/healthz")
                assert (health.status_code, health.json()["checks"]["kafka"]) == (503, "down")
                assert "liftwatch_api_feed_connected 0.0" in (await client.get("/metrics")).text
                broker = await asyncio.to_thread(services.start_tansu, port)
                assert await asyncio.wait_for(next_feed_state(), 20) is True
                assert (await client.get("/healthz")).json()["checks"]["kafka"] == "ok"
                assert "liftwatch_api_feed_connected 1.0" in (await client.get("/metrics")).text
    finally:
        broker.stop()


async def test_a_firms_stream_follows_its_id_when_firms_are_renamed(
    api_server: RunningApi, api_world: World, outbox_relay: None
) -> None:
    """Firm B takes the name firm A had while A's stream is open: A still gets only its own incidents."""
    listener = asyncio.create_task(_collect(api_server, api_world.tokens["maintainer"], 1))
    await _subscribed(api_server, 1)
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30, headers=api_world.headers("admin")) as client:
        with psycopg.connect(api_world.database_url) as conn:
            row = conn.execute("SELECT name FROM maintenance_firms WHERE id = %s", (api_world.firms["a"],)).fetchone()
        assert row is not None
        names = {"a": "firm a, renamed", "b": row[0]}  # B gets A's old name
        for key, name in names.items():
            answer = await client.patch(f"/api/v1/maintainers/{api_world.firms[key]}", json={"name": name})
            assert answer.status_code == 200, answer.text
    b_incident = await asyncio.to_thread(_new_incident, api_world, "b", 21)
    a_incident = await asyncio.to_thread(_new_incident, api_world, "a", 22)
    seen_by_a = await asyncio.wait_for(listener, 30)
    assert [c["incident_id"] for c in seen_by_a] == [a_incident] != [b_incident]
    assert (seen_by_a[0]["maintainer_id"], seen_by_a[0]["maintainer"]) == (api_world.firms["a"], names["a"])


async def test_a_stream_ends_when_its_token_is_moved_to_another_firm(
    api_server: RunningApi, api_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incidents, "_KEEPALIVE_S", 0.3)  # the API runs in this process
    monkeypatch.setattr(auth, "_CACHE_TTL_S", 0.0)
    async with (
        httpx.AsyncClient(base_url=api_server.url, timeout=30) as client,
        client.stream("GET", "/api/v1/incidents/stream", headers=api_world.headers("maintainer")) as stream,
    ):
        assert stream.status_code == 200
        await _subscribed(api_server, 1)
        with psycopg.connect(api_world.database_url) as conn:
            conn.execute("UPDATE api_tokens SET maintainer_id = %s WHERE name = 'tech-ma'", (api_world.firms["b"],))

        async def drain() -> None:
            async for _ in stream.aiter_bytes():
                pass

        await asyncio.wait_for(drain(), 15)  # the server ended the stream; the reconnection is scoped anew


async def test_a_replayed_change_is_the_relayed_one(api_world: World) -> None:
    """A client replaying what it missed gets, byte for byte, the frames the live feed sent (the
    Kafka relay's records, encoded and decoded as Kafka carries them, into the feed)."""
    async with await psycopg.AsyncConnection.connect(api_world.database_url) as conn:
        await actions_store.apply_action(
            conn, api_world.incidents["a"], Action.ACKNOWLEDGE, actor="操作员", note="已联系现场", now=datetime.now(UTC)
        )
        await conn.commit()
        async with conn.transaction():
            rows = await relay.read_changes(conn, 0, 1_000)
        live = [feed.item_from_change(decode_incident_change(encode_record(c))) for c in relay.changes_of(rows)]
        for principal in (Principal("operator", "op"), Principal("maintainer", "ma", api_world.firms["a"])):
            replayed = await feed.replay(conn, principal, 0, 1_000)
            assert replayed is not None
            assert [item.frame for item in replayed] == [
                item.frame for item in live if access.may_see_firm(principal, item.maintainer_id)
            ]
            assert any("已联系现场" in item.data for item in replayed)
        assert await feed.replay(conn, Principal("operator", "op"), 0, len(live) - 1) is None  # more missed: reset
