"""Live-feed streams are capped per token and per API process: 429 with Retry-After beyond."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from liftwatch.config import ApiSettings
from liftwatch.launcher import services

from tests.fixtures.api import World, running_api

pytestmark = pytest.mark.integration


async def test_streams_are_capped_per_token_and_in_all(api_world: World) -> None:
    settings = ApiSettings(
        database_url=api_world.database_url, kafka_bootstrap=None, mqtt_url=None, api_port=services.free_port(),
        sse_streams_per_token=2, sse_streams_max=3, log_level="WARNING",
    )  # fmt: skip
    with running_api(settings) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client, contextlib.AsyncExitStack() as held:

            async def open_stream(role: str) -> httpx.Response:
                response = await held.enter_async_context(
                    client.stream("GET", "/api/v1/incidents/stream", headers=api_world.headers(role))
                )
                if response.status_code != 200:
                    await response.aread()
                return response

            assert (await open_stream("operator")).status_code == 200
            second = await open_stream("operator")
            assert second.status_code == 200
            refused = await open_stream("operator")  # a third for the same token
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_streams"
            assert int(refused.headers["retry-after"]) > 0
            assert (await open_stream("regulator")).status_code == 200  # another token: the third in all
            assert (await open_stream("admin")).status_code == 429  # the process is full
            await second.aclose()  # a stream that ends gives its slot back
            for _ in range(100):
                answer = await open_stream("admin")
                if answer.status_code == 200:
                    break
                await answer.aclose()
                await asyncio.sleep(0.05)
            assert answer.status_code == 200
            metrics = (await client.get("/metrics")).text
            assert 'liftwatch_api_rejected_requests_total{reason="too_many_streams"}' in metrics
