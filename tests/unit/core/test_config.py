"""Configuration: a wrong LIFTWATCH_* value fails at construction, naming the variable and why."""

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
from liftwatch.errors import ConfigError, InvalidSettings


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
        (CommonSettings, "MQTT_URL", "mqtt://broker:70000", "mqtt_url"),
        (CommonSettings, "MQTT_URL", "mqtt://broker:port", "mqtt_url"),
        (CommonSettings, "DATABASE_URL", "postgresql://db:54x/liftwatch", "database_url"),
        (CommonSettings, "KAFKA_BOOTSTRAP", "kafka:0", "kafka_bootstrap"),
        (CommonSettings, "DATABASE_URL", "mysql://db/x", "database_url"),
        (CommonSettings, "KAFKA_BOOTSTRAP", "kafka", "kafka_bootstrap"),
        (CommonSettings, "KAFKA_BOOTSTRAP", "kafka:9092,other:port", "kafka_bootstrap"),
        (CommonSettings, "KAFKA_IDEMPOTENT", "perhaps", "kafka_idempotent"),
        (CommonSettings, "TOPIC_PREFIX", "city/", "topic_prefix"),
        (CommonSettings, "TOPICS", '{"telemetri": "x"}', "topics"),
        (CommonSettings, "TOPICS", '{"telemetry": "lift telemetry"}', "topics"),
        (CommonSettings, "TOPICS", '{"status": "faults"}', "topics"),
        (CommonSettings, "TOPICS", "telemetry=x", "topics"),
        (CommonSettings, "MQTT_TOPIC_ROOT", "city1", "mqtt_topic_root"),
        (CommonSettings, "MQTT_TOPIC_ROOT", "city/+/", "mqtt_topic_root"),
        (CommonSettings, "MQTT_TOPIC_ROOT", "$share/", "mqtt_topic_root"),
        (CommonSettings, "KAFKA_COMPRESSION", "brotli", "kafka_compression"),
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
        (AlertsSettings, "CODE_DEADLINES_S", "overspeed: 600", "code_deadlines_s"),
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
    with pytest.raises(InvalidSettings) as caught:
        settings_class()
    assert list(caught.value.problems) == [f"LIFTWATCH_{variable}"]
    assert f"LIFTWATCH_{variable}" in str(caught.value)
    assert field == variable.lower()


def test_the_message_says_every_wrong_variable_and_why_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", "mysql://admin:hunter2@db/x")
    monkeypatch.setenv("LIFTWATCH_METRICS_PORT", "nine")
    monkeypatch.setenv("LIFTWATCH_ADMIN_TOKEN", "hunter2")
    with pytest.raises(ConfigError) as caught:
        PlatformSettings()
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid configuration (PlatformSettings), the process does not start:"
    assert len(lines) == 4
    assert lines[1] == (
        "  LIFTWATCH_DATABASE_URL='mysql://admin:***@db/x': must be a postgresql:// URL, "
        "e.g. postgresql://user:password@host:5432/liftwatch"
    )
    # why a port is not a number is pydantic's to say (its words change); the variable and value are ours
    port, _, why = lines[2].partition(": ")
    assert port == "  LIFTWATCH_METRICS_PORT='nine'" and why
    assert lines[3] == "  LIFTWATCH_ADMIN_TOKEN: must be at least 16 characters"
    assert "hunter2" not in str(caught.value)
    assert caught.value.reason == "config" and not caught.value.retriable
    assert isinstance(caught.value, ValueError)  # as pydantic's ValidationError was


def test_a_wrong_value_in_the_dotenv_file_fails_the_same_way(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LIFTWATCH_LOG_LEVEL=LOUD\n", encoding="utf-8")
    with pytest.raises(InvalidSettings) as caught:
        CommonSettings()
    assert list(caught.value.problems) == ["LIFTWATCH_LOG_LEVEL"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MQTT_URL", "mqtts://user:pw@broker.example:8883"),
        ("MQTT_URL", "mqtt://[::1]:1883"),
        ("DATABASE_URL", "postgresql:///liftwatch?host=/run/postgresql"),
        ("DATABASE_URL", "postgresql://u:p@db1:5432,db2:5433/liftwatch"),
        ("KAFKA_BOOTSTRAP", "kafka-0.kafka:9092,kafka-1.kafka:9092"),
    ],
)
def test_valid_urls_are_accepted(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(f"LIFTWATCH_{variable}", value)
    assert getattr(CommonSettings(), variable.lower()) == value


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


def test_topic_names_take_the_prefix_and_the_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from liftwatch.config import KAFKA_TOPICS
    from liftwatch.kafka import TOPIC_PARTITIONS

    assert set(KAFKA_TOPICS) == set(TOPIC_PARTITIONS)
    monkeypatch.setenv("LIFTWATCH_TOPIC_PREFIX", "city1.")
    monkeypatch.setenv("LIFTWATCH_TOPICS", '{"telemetry": "lift.telemetry.v1"}')
    monkeypatch.setenv("LIFTWATCH_MQTT_TOPIC_ROOT", "city1/")
    settings = CommonSettings()
    assert [settings.topic(name) for name in ("telemetry", "faults")] == ["city1.lift.telemetry.v1", "city1.faults"]
    assert settings.mqtt_topic("lift/v1/T1/telemetry") == "city1/lift/v1/T1/telemetry"


@pytest.mark.parametrize(
    ("variable", "bad", "good", "value"),
    [
        ("TOPICS", "{telemetry: x}", '{"telemetry": "x"}', {"telemetry": "x"}),
        ("DEADLINE_CODES", "[trapped_passenger", '["trapped_passenger"]', ["trapped_passenger"]),
        ("CODE_DEADLINES_S", "overspeed=60", '{"overspeed": [60, null]}', {"overspeed": (60, None)}),
    ],
)
def test_a_list_or_mapping_variable_that_is_not_json_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, bad: str, good: str, value: object
) -> None:
    monkeypatch.setenv(f"LIFTWATCH_{variable}", bad)
    with pytest.raises(InvalidSettings) as caught:
        AlertsSettings()
    assert caught.value.problems == {
        f"LIFTWATCH_{variable}": "not valid JSON (this variable takes a JSON list or object)"
    }
    monkeypatch.setenv(f"LIFTWATCH_{variable}", good)
    assert getattr(AlertsSettings(), variable.lower()) == value
