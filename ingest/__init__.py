"""Ingest: the MQTT gateway (terminals -> Kafka), the telemetry writer (Kafka -> PostgreSQL) and
terminal MQTT credentials. See docs/ingest.md."""
