"""Kafka adapter shared by every process: topic creation, producer and consumer factories.

Settings decide what the broker supports: the idempotent producer is switched on for Apache
Kafka (``LIFTWATCH_KAFKA_IDEMPOTENT=true`` in production) and off for the embedded tansu broker,
which does not implement InitProducerId.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from liftwatch.config import CommonSettings

log = logging.getLogger(__name__)

# Logical topics and their default partition counts (the unit of parallelism of each stage).
TOPIC_PARTITIONS: dict[str, int] = {
    "telemetry": 8,
    "status": 4,
    "deadletter": 1,
    "faults": 4,
    "incidents": 1,
}


async def ensure_topics(settings: CommonSettings, partitions: dict[str, int] | None = None) -> None:
    """Create the liftwatch topics that do not exist yet (under the configured prefix)."""
    wanted = {settings.topic(name): count for name, count in (partitions or TOPIC_PARTITIONS).items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.require_kafka())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        factor = settings.kafka_replication_factor
        missing = [NewTopic(name, count, factor) for name, count in wanted.items() if name not in existing]
        if missing:
            # Another process may create one between our list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


def make_producer(settings: CommonSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with acks=all (and idempotence where the broker supports it)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.require_kafka(),
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotent,
        "linger_ms": 5,
        "max_batch_size": 1024 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "compression_type": None if settings.kafka_compression == "none" else settings.kafka_compression,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: CommonSettings, *topics: str, group_id: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer-group member that commits offsets itself, after its work is durable."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.require_kafka(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "fetch_max_bytes": 64 * 1024 * 1024,
        # aiokafka's 500 ms default: tansu holds each fetch that long even when data has come, which
        # added up to half a second per Kafka hop to every alarm (docs/rules.md, Latency).
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)
