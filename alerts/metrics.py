"""Prometheus metrics of the alert service (in the registry the process injects)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AlertsMetrics:
    """Open incidents, fault events processed, deadline misses, notifications."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open_incidents = Gauge(
            "liftwatch_alerts_open_incidents", "Open incidents, by severity.", ["severity"], registry=registry
        )
        self.events = Counter(
            "liftwatch_alerts_fault_events",
            "Fault events consumed, by outcome (opened, repeated, cleared, orphan_clear, duplicate, stale).",
            ["outcome"],
            registry=registry,
        )
        self.deadline_misses = Counter(
            "liftwatch_alerts_deadline_misses",
            "Rescue deadlines missed, by deadline (dispatch, arrival).",
            ["deadline"],
            registry=registry,
        )
        self.renotifications = Counter(
            "liftwatch_alerts_renotifications",
            "Re-notifications of unacknowledged critical ones.",
            registry=registry,
        )
        self.auto_cleared = Counter(
            "liftwatch_alerts_auto_cleared", "Incidents closed automatically as auto_cleared.", registry=registry
        )
        self.notifications_sent = Counter(
            "liftwatch_alerts_notifications_sent",
            "Notifications delivered.",
            ["channel"],
            registry=registry,
        )
        self.notifications_failed = Counter(
            "liftwatch_alerts_notifications_failed",
            "Notification attempts that failed, by channel and reason (backpressure, delivery_failed, "
            "delivery_rejected, webhook_disabled, no_secret, secret_unreadable).",
            ["channel", "reason"],
            registry=registry,
        )
        self.notifications_dead = Counter(
            "liftwatch_alerts_notifications_dead_lettered",
            "Notifications given up after their last attempt, by channel.",
            ["channel"],
            registry=registry,
        )
        self.suppressed = Counter(
            "liftwatch_alerts_notifications_suppressed",
            "Incident changes recorded but not notified, by why (maintenance, shelved, out_of_service).",
            ["reason"],
            registry=registry,
        )
        self.deliveries = Gauge(
            "liftwatch_alerts_webhook_deliveries",
            "Webhook deliveries waiting to be sent (pending) and given up (dead, until retried).",
            ["status"],
            registry=registry,
        )
        self.relay_position = Gauge(
            "liftwatch_alerts_relay_position",
            "Last change id handled.",
            ["relay"],
            registry=registry,
        )
