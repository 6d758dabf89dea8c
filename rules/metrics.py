"""Prometheus metrics of the rule engine (in the registry the process injects)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RulesMetrics:
    """Samples evaluated, events by code/transition, late samples, batch sizes, timings, lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records_in = Counter(
            "liftwatch_rules_records_in", "Kafka records consumed, by topic.", ["topic"], registry=registry
        )
        self.samples = Counter(
            "liftwatch_rules_samples_evaluated", "Samples evaluated by the fault rules.", registry=registry
        )
        self.events = Counter(
            "liftwatch_rules_events",
            "Fault events produced, by code and transition.",
            ["code", "transition"],
            registry=registry,
        )
        self.late = Counter(
            "liftwatch_rules_late_samples",
            "Samples older than what their terminal already had judged on arrival: stored, not evaluated.",
            registry=registry,
        )
        self.duplicates = Counter(
            "liftwatch_rules_duplicate_messages",
            "Copies of telemetry messages already judged (re-delivered after a gateway restart): dropped.",
            registry=registry,
        )
        self.holes = Counter(
            "liftwatch_rules_sequence_holes",
            "Holes in terminals' message sequences: opened (a message skipped ahead: lost, or racing"
            " gateways) and given_up (waited the allowed lateness without filling).",
            ["outcome"],
            registry=registry,
        )
        self.registry_pushes = Counter(
            "liftwatch_rules_registry_pushes",
            "Registry change notifications received (each leads to a reload before the next batch).",
            registry=registry,
        )
        self.registry_listening = Gauge(
            "liftwatch_rules_registry_listening",
            "1 while registry changes are pushed to this engine (LISTEN); 0: only periodic reloads.",
            registry=registry,
        )
        self.registry_lookups = Counter(
            "liftwatch_rules_registry_lookups",
            "Never-seen terminals looked up in the registry before their first samples were judged.",
            registry=registry,
        )
        self.batch = Histogram(
            "liftwatch_rules_batch_samples",
            "Samples per evaluated batch.",
            buckets=(10, 100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000),
            registry=registry,
        )
        self.evaluation = Histogram(
            "liftwatch_rules_evaluation_seconds",
            "Time to evaluate one batch (decode excluded).",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.checkpoint = Histogram(
            "liftwatch_rules_checkpoint_seconds", "Time to write one checkpoint transaction.", registry=registry
        )
        self.lag = Gauge(
            "liftwatch_rules_consumer_lag",
            "Telemetry records not yet consumed (sum over owned partitions).",
            registry=registry,
        )
        self.terminals = Gauge("liftwatch_rules_terminals", "Terminals with state in this process.", registry=registry)
        self.registry_size = Gauge(
            "liftwatch_rules_registry_terminals", "Registered terminals known from the registry.", registry=registry
        )
