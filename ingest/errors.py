"""Errors of the ingest path (gateway, writer, terminal credentials)."""

from __future__ import annotations

from liftwatch.errors import LiftwatchError


class IngestError(LiftwatchError):
    """Root of the ingest errors."""

    reason = "ingest"


class KafkaUnavailable(IngestError):
    """Kafka did not acknowledge a batch; the gateway keeps the MQTT messages unacknowledged and retries."""

    reason = "kafka_unavailable"
    retriable = True


class DatabaseUnavailable(IngestError):
    """PostgreSQL refused or lost a writer batch; the writer retries without committing offsets."""

    reason = "database_unavailable"
    retriable = True


class CredentialError(IngestError):
    """A terminal or service account cannot be provisioned as asked (bad id, exists, unknown)."""

    reason = "credentials"
