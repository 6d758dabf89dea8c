"""Tokens expire, console sessions end on sign-out, and a token in a URL counts on the stream only."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from liftwatch.api import auth
from liftwatch.api.cli import token_app
from typer.testing import CliRunner

from tests.fixtures.api import RunningApi, World, add_token

pytestmark = pytest.mark.integration


def test_an_expired_token_is_refused(api_http: RunningApi, api_world: World) -> None:
    with psycopg.connect(api_world.database_url) as conn:
        expired = add_token(conn, "operator", "temp-op")
        conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'temp-op'")
        valid = add_token(conn, "operator", "later-op")
        conn.execute("UPDATE api_tokens SET expires_at = now() + interval '1 day' WHERE name = 'later-op'")
    client = api_http.client
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert client.post("/api/v1/session", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {valid}"}).status_code == 200


def test_tokens_from_the_command_line_expire_by_default(api_world: World) -> None:
    env = {"LIFTWATCH_DATABASE_URL": api_world.database_url, "LIFTWATCH_API_TOKEN_DAYS": "30"}
    runner = CliRunner()
    for name, extra in (("person", []), ("short", ["--days", "2"]), ("integration", ["--no-expiry"])):
        result = runner.invoke(token_app, ["create", "--role", "operator", "--name", name, *extra], env=env)
        assert result.exit_code == 0, result.output
    with psycopg.connect(api_world.database_url) as conn:
        rows = conn.execute(
            "SELECT name, round(extract(epoch FROM expires_at - created_at) / 86400) FROM api_tokens"
            " WHERE name IN ('person', 'short', 'integration') ORDER BY name"
        ).fetchall()
    assert rows == [("integration", None), ("person", 30), ("short", 2)]


def test_signing_out_ends_the_session_on_the_server(
    api_http: RunningApi, api_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = api_world.tokens["operator"]
    with httpx.Client(base_url=api_http.url) as browser:
        login = browser.post("/api/v1/session", headers={"Authorization": f"Bearer {token}"})
        assert login.status_code == 204
        session = browser.cookies["liftwatch_session"]
        assert token not in login.headers["set-cookie"]  # the cookie never holds the token
        assert browser.get("/api/v1/me").json()["name"] == "operator-olivia"
        assert browser.delete("/api/v1/session").status_code == 204
    # A copy of the cookie taken before signing out no longer works.
    stolen = httpx.get(f"{api_http.url}/api/v1/me", cookies={"liftwatch_session": session})
    assert stolen.status_code == 401
    # A session also ends with its token (no cache here: the API runs in this process).
    monkeypatch.setattr(auth, "_CACHE_TTL_S", 0.0)
    with httpx.Client(base_url=api_http.url) as browser:
        assert browser.post("/api/v1/session", headers=api_world.headers("regulator")).status_code == 204
        assert browser.get("/api/v1/me").status_code == 200
        with psycopg.connect(api_world.database_url) as conn:
            conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'regulator-rui'")
        assert browser.get("/api/v1/me").status_code == 401


def test_a_token_in_the_url_counts_on_the_stream_only(api_http: RunningApi, api_world: World) -> None:
    token = api_world.tokens["operator"]
    client = api_http.client
    refused = client.get(f"/api/v1/me?access_token={token}")
    assert refused.status_code == 401
    assert client.get(f"/api/v1/incidents?access_token={token}").status_code == 401
    with client.stream("GET", f"/api/v1/incidents/stream?access_token={token}&after=0") as stream:
        assert stream.status_code == 200
