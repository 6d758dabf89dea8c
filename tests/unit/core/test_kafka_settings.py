"""Consumers take the fetch wait from the settings: tansu answers a fetch only when it expires."""

from liftwatch.config import CommonSettings
from liftwatch.kafka import make_consumer


async def test_consumers_wait_at_most_the_configured_fetch_time_at_the_broker() -> None:
    settings = CommonSettings(kafka_bootstrap="127.0.0.1:9")
    assert settings.kafka_fetch_max_wait_ms == 50
    consumer = make_consumer(settings, "telemetry", group_id="g")
    slow = make_consumer(settings.model_copy(update={"kafka_fetch_max_wait_ms": 400}), "t", group_id="g")
    try:
        assert (consumer._fetch_max_wait_ms, slow._fetch_max_wait_ms) == (50, 400)
    finally:
        await consumer.stop()  # never started: closes the client it made
        await slow.stop()
