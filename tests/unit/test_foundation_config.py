"""Configuration: a wrong LIFTWATCH_* value fails at construction, naming the field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from liftwatch.config import (
    AlertsSettings,
    ApiSettings,
    CommonSettings,
    GatewaySettings,
    PlatformSettings,
    RulesSettings,
    WriterSettings,
)
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LIFTWATCH_* variable or .env file of the developer's leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("LIFTWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("settings_class", "variable", "value", "field"),
    [
        (CommonSettings, "MQTT_URL", "http://broker:1883", "mqtt_url"),
        (CommonSettings, "MQTT_URL", "mqtt://", "mqtt_url"),
        (CommonSettings, "DATABASE_URL", "mysql://db/x", "database_url"),
        (CommonSettings, "KAFKA_BOOTSTRAP", "kafka", "kafka_bootstrap"),
        (CommonSettings, "KAFKA_BOOTSTRAP", "kafka:9092,other:port", "kafka_bootstrap"),
        (CommonSettings, "KAFKA_IDEMPOTENT", "perhaps", "kafka_idempotent"),
        (CommonSettings, "KAFKA_COMPRESSION", "zstd", "kafka_compression"),
        (CommonSettings, "METRICS_PORT", "70000", "metrics_port"),
        (CommonSettings, "METRICS_PORT", "nine", "metrics_port"),
        (CommonSettings, "LOG_LEVEL", "LOUD", "log_level"),
        (CommonSettings, "DEFAULT_LANGUAGE", "fr", "default_language"),
        (GatewaySettings, "MAX_PAYLOAD_BYTES", "0", "max_payload_bytes"),
        (GatewaySettings, "MAX_IN_FLIGHT", "-5", "max_in_flight"),
        (WriterSettings, "WRITER_BATCH_MAX", "0", "writer_batch_max"),
        (WriterSettings, "WRITER_SESSION_TIMEOUT_MS", "10", "writer_session_timeout_ms"),
        (RulesSettings, "ALLOWED_LATENESS_MS", "-1", "allowed_lateness_ms"),
        (AlertsSettings, "ARRIVAL_DEADLINE_S", "0", "arrival_deadline_s"),
        (ApiSettings, "API_PORT", "99999", "api_port"),
        (ApiSettings, "ADMIN_TOKEN", "short", "admin_token"),
        (PlatformSettings, "DATABASE_URL", "sqlite:///x.db", "database_url"),
        (PlatformSettings, "ADMIN_TOKEN", "short", "admin_token"),
    ],
)
def test_wrong_value_fails_at_construction_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[CommonSettings], variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(f"LIFTWATCH_{variable}", value)
    with pytest.raises(ValidationError) as caught:
        settings_class()
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
    assert field in str(caught.value)


def test_valid_environment_is_read_and_secrets_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTWATCH_MQTT_URL", "mqtt://user:pw@broker:1883")
    monkeypatch.setenv("LIFTWATCH_KAFKA_BOOTSTRAP", "k1:9092, k2:9092")
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", "postgresql://db/liftwatch")
    monkeypatch.setenv("LIFTWATCH_TOPIC_PREFIX", "city.")
    monkeypatch.setenv("LIFTWATCH_ADMIN_TOKEN", "s3cret-s3cret-s3cret")
    settings = PlatformSettings()
    assert settings.require_database_url() == "postgresql://db/liftwatch"
    assert settings.topic("telemetry") == "city.telemetry"
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s3cret-s3cret-s3cret"
    assert "s3cret" not in repr(settings)


def test_missing_database_url_stops_with_a_message_naming_the_variable() -> None:
    with pytest.raises(SystemExit, match="LIFTWATCH_DATABASE_URL"):
        CommonSettings().require_database_url()
