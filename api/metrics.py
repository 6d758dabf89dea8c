"""Prometheus metrics of the API process, registered on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class ApiMetrics:
    """Every metric the API exports."""

    requests: Counter
    latency: Histogram
    rejected: Counter
    auth_failures: Counter
    sse_clients: Gauge
    sse_dropped: Counter
    feed_changes: Counter
    feed_rejected: Counter
    feed_connected: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ApiMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            requests=Counter(
                "liftwatch_api_requests_total", "HTTP requests.", ["method", "route", "status"], registry=registry
            ),
            latency=Histogram(
                "liftwatch_api_request_seconds",
                "HTTP request duration (streams excluded).",
                ["method", "route"],
                registry=registry,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            ),
            rejected=Counter(
                "liftwatch_api_rejected_requests_total",
                "Requests refused as invalid input.",
                ["reason"],
                registry=registry,
            ),
            auth_failures=Counter(
                "liftwatch_api_auth_failures_total",
                "Requests with a missing or bad token.",
                ["reason"],
                registry=registry,
            ),
            sse_clients=Gauge("liftwatch_api_sse_clients", "Connected live-feed clients.", registry=registry),
            sse_dropped=Counter(
                "liftwatch_api_sse_dropped_total", "Live-feed clients cut off for falling behind.", registry=registry
            ),
            feed_changes=Counter(
                "liftwatch_api_feed_changes_total", "Incident changes read from Kafka.", registry=registry
            ),
            feed_rejected=Counter(
                "liftwatch_api_feed_rejected_total",
                "Incident records that could not be decoded.",
                ["reason"],
                registry=registry,
            ),
            feed_connected=Gauge(
                "liftwatch_api_feed_connected",
                "1 while the live feed's Kafka consumer is connected and the broker answers.",
                registry=registry,
            ),
        )
