"""End to end through real Mosquitto, tansu and PostgreSQL: every accepted sample stored once."""

from __future__ import annotations

import pytest
from liftwatch.config import GatewaySettings, WriterSettings
from liftwatch.ingest import gateway, writer

from tests.fixtures.ingest import gateway_subscribed, publisher, running, scalar, telemetry_payload, wait_until

pytestmark = pytest.mark.integration


async def test_n_samples_in_n_rows_out(
    gateway_settings: GatewaySettings, writer_settings: WriterSettings, database_url: str
) -> None:
    terminals, messages, per_message = 5, 40, 3
    expected = terminals * messages * per_message
    async with running(writer.serve, writer_settings), running(gateway.serve, gateway_settings) as registry:
        await gateway_subscribed(registry)
        async with publisher(str(gateway_settings.mqtt_url)) as pub:
            for seq in range(messages):
                for t in range(terminals):
                    terminal = f"T{t}"
                    topic = gateway_settings.mqtt_topic(f"lift/v1/{terminal}/telemetry")
                    pub.publish(topic, telemetry_payload(terminal, seq, per_message))
            await pub.wait_below(1)

        async def all_stored() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM telemetry") == expected

        await wait_until(all_stored)
    assert registry.get_sample_value("liftwatch_gateway_samples_out_total") == expected
    distinct = await scalar(database_url, "SELECT count(DISTINCT (terminal_id, seq, idx)) FROM telemetry")
    assert distinct == expected
    activity = await scalar(database_url, "SELECT sum(samples) FROM terminal_activity")
    assert activity == expected
