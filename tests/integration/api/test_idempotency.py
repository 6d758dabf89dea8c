"""Idempotency-Key: a retry acts once; the same key with another request is refused, never silently dropped."""

from __future__ import annotations

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World

pytestmark = pytest.mark.integration


def _events(world: World, incident_id: int) -> list[str]:
    with psycopg.connect(world.database_url) as conn:
        rows = conn.execute("SELECT kind FROM incident_events WHERE incident_id = %s ORDER BY id", (incident_id,))
        return [row[0] for row in rows.fetchall()]


def test_a_key_is_bound_to_its_caller_and_its_request(api_http: RunningApi, api_world: World) -> None:
    client, incident = api_http.client, api_world.incidents["a"]
    operator = {**api_world.headers("operator"), "Idempotency-Key": "click-1"}

    first = client.post(f"/api/v1/incidents/{incident}/acknowledge", json={"note": "接警"}, headers=operator)
    retry = client.post(f"/api/v1/incidents/{incident}/acknowledge", json={"note": "接警"}, headers=operator)
    assert first.status_code == retry.status_code == 200
    assert retry.json()["status"] == "acknowledged"
    assert _events(api_world, incident) == ["opened", "acknowledged"]  # acted once

    # The same key with another action, body or incident: refused, and nothing happens.
    for action, body, target in (
        ("dispatch", {"note": "接警"}, incident),
        ("acknowledge", {"note": "另一个备注"}, incident),
        ("acknowledge", {"note": "接警"}, api_world.incidents["b"]),
    ):
        reused = client.post(f"/api/v1/incidents/{target}/{action}", json=body, headers=operator)
        assert reused.status_code == 422, reused.text
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert _events(api_world, incident) == ["opened", "acknowledged"]
    assert _events(api_world, api_world.incidents["b"]) == ["opened"]

    # A new key dispatches; another caller's "click-1" is its own.
    dispatched = client.post(
        f"/api/v1/incidents/{incident}/dispatch", headers={**operator, "Idempotency-Key": "click-2"}
    )
    assert dispatched.status_code == 200 and dispatched.json()["status"] == "dispatched"
    admin = {**api_world.headers("admin"), "Idempotency-Key": "click-1"}
    other = client.post(f"/api/v1/incidents/{api_world.incidents['b']}/acknowledge", headers=admin)
    assert other.status_code == 200 and other.json()["status"] == "acknowledged"


def test_a_refused_action_leaves_its_key_free(api_http: RunningApi, api_world: World) -> None:
    """The key is recorded with the action: when the action is refused, the key was never used."""
    client, incident = api_http.client, api_world.incidents["a"]
    headers = {**api_world.headers("operator"), "Idempotency-Key": "k-1"}
    refused = client.post(f"/api/v1/incidents/{incident}/arrive", headers=headers)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "illegal_transition"
    acknowledged = client.post(f"/api/v1/incidents/{incident}/acknowledge", headers=headers)
    assert acknowledged.status_code == 200 and acknowledged.json()["status"] == "acknowledged"


def test_a_comment_key_reused_for_another_comment_is_refused(api_http: RunningApi, api_world: World) -> None:
    client, incident = api_http.client, api_world.incidents["a"]
    headers = {**api_world.headers("operator"), "Idempotency-Key": "note-1"}
    url = f"/api/v1/incidents/{incident}/comments"
    first = client.post(url, json={"note": "乘客情绪稳定"}, headers=headers)
    retry = client.post(url, json={"note": "乘客情绪稳定"}, headers=headers)
    assert first.status_code == retry.status_code == 201 and first.json()["id"] == retry.json()["id"]
    other = client.post(url, json={"note": "已联系家属"}, headers=headers)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert _events(api_world, incident) == ["opened", "comment"]
