"""The live-feed hub: who gets which change, and a slow client is cut off without hurting others."""

from __future__ import annotations

import json

import pytest
from liftwatch.api import feed
from liftwatch.api.auth import Credential, Principal, credential_from_request, hash_token, new_token
from liftwatch.api.metrics import ApiMetrics
from liftwatch.config import CommonSettings
from liftwatch.schema import FaultCode, IncidentChange, Severity
from prometheus_client import CollectorRegistry
from starlette.requests import Request

OPERATOR = Principal(role="operator", name="op")
FIRM_A = Principal(role="maintainer", name="a", maintainer_id=1, maintainer_name="Firm A")
FIRM_B = Principal(role="maintainer", name="b", maintainer_id=2, maintainer_name="Firm B")


def _item(change_id: int, maintainer: str | None, maintainer_id: int | None = None) -> feed.FeedItem:
    change = IncidentChange(
        change_id=change_id, incident_id=7, kind="opened", status="detected", code=FaultCode.TRAPPED_PASSENGER,
        severity=Severity.CRITICAL, registration_code="3" * 20, terminal="T1", maintainer=maintainer,
        district="浦东新区", at_ms=1, actor="system", maintainer_id=maintainer_id,
    )  # fmt: skip
    return feed.item_from_change(change)


@pytest.fixture
def hub() -> tuple[feed.IncidentFeed, CollectorRegistry]:
    registry = CollectorRegistry()
    return feed.IncidentFeed(CommonSettings(), ApiMetrics.create(registry)), registry


def test_each_subscriber_gets_what_its_role_may_see(hub: tuple[feed.IncidentFeed, CollectorRegistry]) -> None:
    hub_, registry = hub
    with hub_.subscribe(OPERATOR) as op, hub_.subscribe(FIRM_A) as a, hub_.subscribe(FIRM_B) as b:
        assert registry.get_sample_value("liftwatch_api_sse_clients") == 3
        for item in (_item(1, "Firm A", 1), _item(2, "Firm B", 2), _item(3, None)):
            hub_.publish(item)
        assert [op.queue.get_nowait().change_id for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
        assert a.queue.qsize() == 1 and a.queue.get_nowait().change_id == 1  # type: ignore[union-attr]
        assert b.queue.qsize() == 1 and b.queue.get_nowait().change_id == 2  # type: ignore[union-attr]
    assert registry.get_sample_value("liftwatch_api_sse_clients") == 0


def test_a_firm_is_told_apart_by_id_not_by_name(hub: tuple[feed.IncidentFeed, CollectorRegistry]) -> None:
    """Firm B now carries the name firm A had: A's subscriber still gets only A's changes."""
    hub_, _ = hub
    with hub_.subscribe(FIRM_A) as a:
        hub_.publish(_item(1, "Firm A", 2))  # firm B, renamed to A's old name
        hub_.publish(_item(2, "Firm B", 1))  # firm A, renamed
        hub_.publish(_item(3, "Firm A", None))  # a record without the id: only unscoped roles
        assert a.queue.qsize() == 1 and a.queue.get_nowait().change_id == 2  # type: ignore[union-attr]


def test_a_client_that_falls_behind_is_cut_off_alone(hub: tuple[feed.IncidentFeed, CollectorRegistry]) -> None:
    hub_, registry = hub
    with hub_.subscribe(OPERATOR) as slow, hub_.subscribe(OPERATOR) as fast:
        for change_id in range(feed.SUBSCRIBER_QUEUE + 5):
            hub_.publish(_item(change_id, None))
            if fast.queue.qsize() > 10:
                while not fast.queue.empty():
                    fast.queue.get_nowait()
        assert slow.overflowed and slow.queue.qsize() == 1 and slow.queue.get_nowait() is None
        assert not fast.overflowed
    assert registry.get_sample_value("liftwatch_api_sse_dropped_total") == 1


def test_frames_are_single_line_sse_events() -> None:
    item = _item(42, "Firm A\nwith a newline")
    head, ident, data, end = item.frame.decode().split("\n", 3)
    assert (head, ident, end) == ("event: incident", "id: 42", "\n")
    assert json.loads(data.removeprefix("data: "))["maintainer"] == "Firm A\nwith a newline"


def _request(headers: dict[str, str], query: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "query_string": query.encode(), "method": "GET", "path": "/"})


def test_credentials_come_from_header_then_session_cookie_and_tokens_are_stored_hashed() -> None:
    token = new_token()
    assert token.startswith("lw_") and new_token() != token
    assert hash_token(token) != token and len(hash_token(token)) == 64
    assert credential_from_request(_request({"Authorization": f"Bearer {token}"})) == Credential("token", token)
    assert credential_from_request(_request({"Authorization": "Basic abc"})) is None
    assert credential_from_request(_request({"Cookie": "liftwatch_session=s1"})) == Credential("session", "s1")
    # A token in the URL counts on the live-feed stream only (the stream's dependency asks for it).
    assert credential_from_request(_request({}, f"access_token={token}")) is None
    assert credential_from_request(_request({}, f"access_token={token}"), query_token=True) == Credential(
        "token", token
    )
    assert credential_from_request(_request({})) is None


def test_the_feed_remembers_where_it_is_to_resume_after_an_outage(
    hub: tuple[feed.IncidentFeed, CollectorRegistry],
) -> None:
    from types import SimpleNamespace

    from aiokafka.structs import TopicPartition
    from liftwatch.schema import encode_record

    hub_, registry = hub
    change = IncidentChange(
        change_id=5, incident_id=7, kind="opened", status="detected", code=FaultCode.OVERSPEED,
        severity=Severity.CRITICAL, registration_code=None, terminal="T1", maintainer=None, district=None,
        at_ms=1, actor="system",
    )  # fmt: skip
    partition = TopicPartition("incidents", 0)
    records = [SimpleNamespace(offset=41, value=encode_record(change)), SimpleNamespace(offset=42, value=b"\xff")]
    with hub_.subscribe(OPERATOR) as sub:
        hub_._deliver_batches({partition: records})
        assert sub.queue.get_nowait().change_id == 5  # type: ignore[union-attr]
        assert sub.queue.empty()  # the undecodable record is skipped and counted
    assert hub_._positions == {0: 43}
    assert registry.get_sample_value("liftwatch_api_feed_rejected_total", {"reason": "undecodable"}) == 1


def test_stream_slots_cap_each_caller_and_the_process() -> None:
    slots = feed.StreamSlots(per_caller=2, total=3)
    assert slots.take("token:1") and slots.take("token:1")
    assert not slots.take("token:1")  # its own cap
    assert slots.take("token:2") and not slots.take("token:3")  # the process's cap
    slots.give_back("token:1")
    assert slots.open == 2 and slots.take("token:3")
    slots.give_back("token:9")  # nothing held: nothing changes
    assert slots.open == 3
