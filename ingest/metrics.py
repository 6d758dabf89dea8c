"""Prometheus metrics of the gateway and the writer, registered in an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Kafka produce round trips are milliseconds when healthy and seconds when the broker struggles.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)


class GatewayMetrics:
    """What the gateway counts: messages in and out, duplicates, gaps, produce latency, batch sizes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter(
            "liftwatch_gateway_messages_in", "MQTT messages received, by kind.", ["kind"], registry=registry
        )
        self.records_out = Counter(
            "liftwatch_gateway_records_out",
            "Messages acknowledged by Kafka, by topic (telemetry: MQTT messages, also when packed as columns).",
            ["topic"],
            registry=registry,
        )
        self.samples_out = Counter(
            "liftwatch_gateway_samples_out", "Samples in acknowledged telemetry records.", registry=registry
        )
        self.duplicates = Counter(
            "liftwatch_gateway_duplicates", "Messages dropped as duplicates (same terminal and seq).", registry=registry
        )
        self.seq_gaps = Counter(
            "liftwatch_gateway_seq_gap_messages",
            "Messages missing in terminals' seq numbering (lost on the terminal side).",
            registry=registry,
        )
        self.restarts = Counter(
            "liftwatch_gateway_terminal_restarts", "Terminals seen counting seq again from 0.", registry=registry
        )
        self.produce_latency = Histogram(
            "liftwatch_gateway_produce_latency_seconds",
            "Time from handing a batch to the producer to Kafka's acknowledgement of all of it.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "liftwatch_gateway_batch_messages",
            "MQTT messages handled per event-loop wake-up.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.produce_failures = Counter(
            "liftwatch_gateway_produce_failures", "Batches Kafka did not acknowledge (retried).", registry=registry
        )
        self.in_flight = Gauge(
            "liftwatch_gateway_in_flight", "MQTT messages received and not yet acknowledged.", registry=registry
        )
        self.subscribed = Gauge(
            "liftwatch_gateway_subscribed", "1 once the shared subscriptions are acknowledged.", registry=registry
        )
        self.mqtt_connected = Gauge(
            "liftwatch_gateway_mqtt_connected", "1 while connected to the MQTT broker.", registry=registry
        )


class WriterMetrics:
    """What the writer counts: records consumed, rows written, batch sizes, lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records_in = Counter(
            "liftwatch_writer_records_in", "Kafka records consumed, by topic.", ["topic"], registry=registry
        )
        self.rows_written = Counter(
            "liftwatch_writer_rows_written",
            "Rows inserted, by table (re-delivered rows are not counted).",
            ["table"],
            registry=registry,
        )
        self.rows_skipped = Counter(
            "liftwatch_writer_rows_duplicate", "Telemetry rows already stored (re-delivery).", registry=registry
        )
        self.batch_size = Histogram(
            "liftwatch_writer_batch_records",
            "Kafka records per database transaction.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "liftwatch_writer_batch_seconds",
            "Duration of one database transaction.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "liftwatch_writer_consumer_lag",
            "Records behind the end of the topic, by topic.",
            ["topic"],
            registry=registry,
        )
        self.db_failures = Counter(
            "liftwatch_writer_db_failures", "Batches the database refused (retried).", registry=registry
        )
