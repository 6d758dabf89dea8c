"""Configuration of every liftwatch process, in one place.

Each process gets its own settings class (a subclass of :class:`CommonSettings`), read from
``LIFTWATCH_*`` environment variables (and an optional ``.env`` file). A wrong value fails at
start with a message naming the variable. Components receive their settings as arguments;
only the API keeps a module-level instance.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from liftwatch.errors import InvalidSettings
from pydantic import BaseModel, ConfigDict, Field, FilePath, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PREFIX = "LIFTWATCH_"
# enable_decoding=False: lists and mappings arrive as text and CommonSettings decodes the JSON itself,
# so a value that is not JSON is a validation error naming its variable (pydantic-settings would
# raise an error that names it only inside its message).
_ENV = SettingsConfigDict(env_prefix=_PREFIX, env_file=".env", extra="ignore", frozen=True, enable_decoding=False)
_NOT_JSON = "not valid JSON (this variable takes a JSON list or object)"
_URL_PASSWORD = re.compile(r"(//[^:/@]*:)[^@]*@")
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]*")  # the characters Kafka allows in a topic name

KAFKA_TOPICS: tuple[str, ...] = ("telemetry", "status", "deadletter", "faults", "incidents")
"""The logical Kafka topics (``docs/protocol/kafka.md``); ``CommonSettings.topic`` names them."""


def _describe(settings_class: type[BaseSettings], error: ValidationError) -> InvalidSettings:
    """One line per wrong variable: its name, the value given (secrets hidden) and why it is refused."""
    problems: dict[str, str] = {}
    lines = [f"invalid configuration ({settings_class.__name__}), the process does not start:"]
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        variable = f"{_PREFIX}{field.upper()}"
        # Our own validators' words as they wrote them (pydantic prefixes its message with its own).
        ours = item.get("ctx", {}).get("error") if item["type"] == "value_error" else None
        reason = str(ours) if ours is not None else str(item["msg"])
        annotation = str(settings_class.model_fields[field].annotation) if field in settings_class.model_fields else ""
        given = item.get("input")
        if "Secret" in annotation or given is None or isinstance(given, dict):
            shown = ""
        else:
            shown = "=" + repr(_URL_PASSWORD.sub(r"\1***@", str(given))[:200])
        problems[variable] = reason
        lines.append(f"  {variable}{shown}: {reason}")
    return InvalidSettings("\n".join(lines), problems)


def _takes_json(annotation: Any) -> bool:
    """Whether a setting of this type is a list or mapping (possibly optional)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_takes_json(arg) for arg in get_args(annotation))
    return get_origin(annotation) in (list, dict, tuple, set, frozenset) or annotation in (list, dict, tuple, set)


def _port_ok(netloc: str) -> bool:
    """A URL's port, when given, is a number 1-65535 (libpq URLs may list several hosts)."""
    for host in netloc.rpartition("@")[2].split(","):
        _, colon, port = host.rpartition(":")
        if colon and not host.endswith("]") and not (port.isdigit() and 0 < int(port) < 65536):
            return False
    return True


class LeagueThresholds(BaseModel):
    """When the firm league flags a firm for the blacklist review: any one figure above its bound.

    Shares of entrapments need ``min_entrapments`` in the window, shares of incidents
    ``min_incidents``, so one unlucky call does not flag a small firm. docs/statistics.md.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    dispatch_missed_share: float = Field(default=0.10, ge=0, le=1, description="Entrapments dispatched late.")
    arrival_missed_share: float = Field(default=0.10, ge=0, le=1, description="Entrapments reached late.")
    repeat_share: float = Field(default=0.20, ge=0, le=1, description="Incidents that repeat one within 30 days.")
    false_alarm_share: float = Field(default=0.30, ge=0, le=1, description="Incidents closed as false alarm.")
    entrapments_per_10k: float = Field(default=20.0, ge=0, description="Entrapments per 10,000 elevators a month.")
    min_entrapments: int = Field(default=5, ge=1, description="Entrapments needed before their shares count.")
    min_incidents: int = Field(default=10, ge=1, description="Incidents needed before their shares count.")


@dataclass(frozen=True, slots=True)
class MqttTls:
    """What an mqtts:// connection trusts and presents; None = the system's CAs / no client certificate."""

    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


class CommonSettings(BaseSettings):
    """Settings every process shares: where the broker, Kafka and the database are, topic names."""

    model_config = _ENV

    def __init__(self, **values: Any) -> None:
        """Read and validate the settings; a wrong value raises :class:`InvalidSettings` naming its variable."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise _describe(type(self), error) from None

    @field_validator("*", mode="before")
    @classmethod
    def _json_for_lists_and_mappings(cls, value: Any, info: ValidationInfo) -> Any:
        """A list or mapping given as text (a variable) is JSON."""
        name = info.field_name
        if isinstance(value, str) and name is not None and _takes_json(cls.model_fields[name].annotation):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(_NOT_JSON) from None
        return value

    mqtt_url: str | None = Field(
        default=None,
        description=(
            "mqtt://[user:pass@]host:port of the MQTT broker (mqtts://...:8883 over TLS); unset = start an"
            " embedded one (up/demo)."
        ),
    )
    mqtt_ca_file: FilePath | None = Field(
        default=None,
        description="PEM CA certificate(s) the broker's TLS certificate must chain to (mqtts://); unset = system CAs.",
    )
    mqtt_client_cert: FilePath | None = Field(
        default=None, description="PEM client certificate for a broker that asks for one (mqtts://; with the key)."
    )
    mqtt_client_key: FilePath | None = Field(
        default=None, validate_default=True, description="PEM private key of mqtt_client_cert."
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port] of Kafka; unset = start embedded tansu (up/demo)."
    )
    kafka_idempotent: bool = Field(
        default=False,
        description="Idempotent Kafka producer (enable with Apache Kafka; tansu does not implement it).",
    )
    kafka_compression: Literal["zstd", "gzip", "none"] = Field(
        default="zstd",
        description=(
            "Compression of produced Kafka batches: zstd (level 3, as Kafka's own default), gzip (level 9: forty"
            " times zstd's CPU for a larger result) or none."
        ),
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description=(
            "Longest a consumer's fetch waits at the broker for data. tansu answers a fetch only when this"
            " expires (Apache Kafka answers as soon as data comes), so it bounds every hop's latency there."
        ),
    )
    kafka_replication_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Replication factor of the topics liftwatch creates when missing (3 on a production cluster).",
    )
    database_url: str | None = Field(
        default=None, description="postgresql:// URL; unset = start an embedded PostgreSQL (up/demo)."
    )
    state_dir: Path = Field(default=Path(".state"), description="Data folders of embedded services.")
    topic_prefix: str = Field(default="", description="Prefix of every Kafka topic name (tests, multi-tenant).")
    topics: dict[str, str] = Field(
        default={},
        description='Kafka topic names other than the logical ones, after the prefix, e.g. {"telemetry": "lift.tm"}.',
    )
    mqtt_topic_root: str = Field(
        default="", description="Prefix before lift/v1/..., ending in / (tests isolate with it)."
    )
    site_timezone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone in which people see times (storage is UTC); also the day boundary of statistics.",
    )
    league_thresholds: LeagueThresholds = Field(
        default=LeagueThresholds(),
        description='Firm league bounds as JSON, e.g. {"arrival_missed_share": 0.05} (docs/statistics.md).',
    )
    default_language: Literal["zh", "en"] = Field(
        default="zh", description="Language of a fresh install when the browser or caller states none (zh or en)."
    )
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus port; 0 = no listener.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of every process."
    )

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname or not _port_ok(parts.netloc):
            raise ValueError("must look like mqtt://host:1883")
        return value

    @field_validator("mqtt_client_key")
    @classmethod
    def _check_mqtt_client_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (value is None) != (info.data.get("mqtt_client_cert") is None) and "mqtt_client_cert" in info.data:
            raise ValueError("set both or neither of LIFTWATCH_MQTT_CLIENT_CERT and LIFTWATCH_MQTT_CLIENT_KEY")
        return value

    @property
    def mqtt_tls(self) -> MqttTls:
        """The TLS files of mqtts:// connections (unused with mqtt://)."""
        return MqttTls(self.mqtt_ca_file, self.mqtt_client_cert, self.mqtt_client_key)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres") or not _port_ok(parts.netloc):
            raise ValueError("must be a postgresql:// URL, e.g. postgresql://user:password@host:5432/liftwatch")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be host:port[,host:port]")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_topic_prefix(cls, value: str) -> str:
        if not _KAFKA_NAME.fullmatch(value) or len(value) > 200:
            raise ValueError("may only contain A-Z a-z 0-9 . _ - (Kafka topic name characters)")
        return value

    @field_validator("topics")
    @classmethod
    def _check_topics(cls, value: dict[str, str]) -> dict[str, str]:
        for name, topic in value.items():
            if name not in KAFKA_TOPICS:
                raise ValueError(f"unknown topic {name!r}: the topics are {', '.join(KAFKA_TOPICS)}")
            if not topic or not _KAFKA_NAME.fullmatch(topic) or len(topic) > 200:
                raise ValueError(f"{name}: {topic!r} is not a Kafka topic name (1-200 of A-Z a-z 0-9 . _ -)")
        if len({value.get(name, name) for name in KAFKA_TOPICS}) < len(KAFKA_TOPICS):
            raise ValueError("two topics would have the same name")
        return value

    @field_validator("mqtt_topic_root")
    @classmethod
    def _check_mqtt_topic_root(cls, value: str) -> str:
        if value and (not value.endswith("/") or value.startswith("$") or any(c in value for c in "+#\x00")):
            raise ValueError("must be empty or a topic prefix ending in / without + # or a leading $, e.g. city1/")
        return value

    def topic(self, name: str) -> str:
        """Full Kafka topic name for a logical topic (``telemetry``, ``faults``, ...)."""
        return f"{self.topic_prefix}{self.topics.get(name, name)}"

    def mqtt_topic(self, suffix: str) -> str:
        """Full MQTT topic for ``lift/v1/...`` under the configured root."""
        return f"{self.mqtt_topic_root}{suffix}"

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise SystemExit("LIFTWATCH_DATABASE_URL is not set (or use `liftwatch up`, which starts one).")
        return self.database_url

    def require_kafka(self) -> str:
        if self.kafka_bootstrap is None:
            raise SystemExit("LIFTWATCH_KAFKA_BOOTSTRAP is not set (or use `liftwatch up`, which starts one).")
        return self.kafka_bootstrap

    def require_mqtt(self) -> str:
        if self.mqtt_url is None:
            raise SystemExit("LIFTWATCH_MQTT_URL is not set (or use `liftwatch up`, which starts one).")
        return self.mqtt_url


class GatewaySettings(CommonSettings):
    """`liftwatch gateway`: MQTT -> Kafka."""

    gateway_group: str = Field(default="liftwatch", description="Shared-subscription group ($share/<group>/...).")
    gateway_client_id: str = Field(
        default="",
        description=(
            "MQTT client id (the persistent session); empty = the user name of the MQTT URL, else"
            " liftwatch-gateway-<hostname> (the shipped broker uses the user name whatever this says)."
        ),
    )
    max_payload_bytes: int = Field(
        default=256 * 1024, gt=0, description="Larger MQTT payloads are dead-lettered as oversized."
    )
    max_future_skew_s: int = Field(
        default=24 * 3600,
        gt=0,
        description="Samples this far ahead of the gateway's clock are dead-lettered (future_timestamp).",
    )
    retention_days: int = Field(
        default=400,
        gt=0,
        description=(
            "Samples older than this are dead-lettered (stale_timestamp); keep it at most the storage"
            " retention (TimescaleDB: 400 days, migration 002)."
        ),
    )
    dedupe_window: int = Field(default=64, gt=0, description="Recent seq numbers remembered per terminal.")
    max_in_flight: int = Field(
        default=10_000,
        gt=0,
        le=65_535,
        description="MQTT messages awaiting Kafka ack at most (MQTT 5 Receive Maximum: the back-pressure bound).",
    )
    gateway_linger_ms: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description=(
            "How long a Kafka partition's sender, woken from idle, waits for more messages before packing its"
            " record: fewer, larger records cost the broker, rules and writer less per message."
        ),
    )
    gateway_record_format: Literal["columns", "messages"] = Field(
        default="columns",
        description=(
            "Telemetry records written to Kafka: columns = the messages sent to a partition together packed in"
            " one telemetry.columns.v1 record; messages = one telemetry.v1 record per MQTT message."
        ),
    )


class WriterSettings(CommonSettings):
    """`liftwatch writer`: Kafka -> PostgreSQL."""

    writer_group: str = Field(default="liftwatch-writer", description="Kafka consumer group of the writers.")
    writer_batch_max: int = Field(default=20_000, gt=0, description="Records per COPY transaction at most.")
    writer_batch_wait_ms: int = Field(default=200, ge=0, description="Longest wait to fill a batch.")
    writer_session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description=(
            "Consumer-group session timeout: a dead writer's partitions move after this (tansu: joins take half)."
        ),
    )


class RulesSettings(CommonSettings):
    """`liftwatch rules`: the fault rule engine."""

    rules_group: str = Field(default="liftwatch-rules", description="Kafka consumer group of the rule engines.")
    rules_batch_max: int = Field(default=50_000, gt=0, description="Records per evaluated batch at most.")
    rules_batch_wait_ms: int = Field(default=100, ge=0, description="Longest wait to fill a batch.")
    allowed_lateness_ms: int = Field(
        default=5_000,
        ge=0,
        description=(
            "Longest wait for a missing message of a terminal (a hole in its sequence numbers) before the"
            " messages after it are judged; without sequence numbers (replay), the event-time lateness."
        ),
    )
    rules_overrides: Path | None = Field(default=None, description="YAML/JSON file of per-rule/per-model thresholds.")
    rules_registry_refresh_s: float = Field(
        default=60.0,
        gt=0,
        description="Full registry reload period (changes are also pushed at once by NOTIFY; this is the safety net).",
    )
    rules_checkpoint_interval_ms: int = Field(
        default=2_000,
        ge=0,
        description="Checkpoint at most this often (a crash re-sends at most this much of events, same ids).",
    )
    rules_offline_check_s: float = Field(default=5.0, gt=0, description="How often terminal_offline is evaluated.")
    rules_session_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="Consumer-group session timeout (a dead engine's partitions then move)."
    )


class AlertsSettings(CommonSettings):
    """`liftwatch alerts`: incidents, deadlines, notifications."""

    alerts_group: str = Field(default="liftwatch-alerts", description="Kafka consumer group of the alert services.")
    webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Default HMAC-SHA256 key of webhooks registered without their own (>= 16 characters).",
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key (>= 32 characters) that seals receivers' secrets in alerts_webhooks (AES-256-GCM);"
            " unset = stored as given (development only: compose requires it)."
        ),
    )
    secrets_key_previous: SecretStr | None = Field(
        default=None, description="The key before a rotation: still opens secrets until `webhook reencrypt` ran."
    )
    webhook_max_attempts: int = Field(
        default=8, gt=0, description="Failed attempts before a delivery is dead-lettered."
    )
    renotify_interval_s: int = Field(
        default=60, gt=0, description="Re-notify an unacknowledged critical incident this often."
    )
    reminder_intervals_s: dict[Literal["major", "minor"], int] = Field(
        default={"major": 900},
        description=(
            'Reminders of unacknowledged major/minor incidents, seconds apart (absent = none), e.g. {"major": 600}.'
        ),
    )
    dispatch_deadline_s: int = Field(
        default=5 * 60, gt=0, description="Detection to dispatch, for the deadline codes (trapped passenger: 5 min)."
    )
    arrival_deadline_s: int = Field(
        default=30 * 60,
        gt=0,
        description="Detection to arrival on site, for the deadline codes (trapped passenger: 30 min).",
    )
    auto_close_after_s: int = Field(
        default=24 * 3600,
        gt=0,
        description=(
            "A non-critical incident nobody acknowledged whose condition has cleared is auto-cleared"
            " this long after detection."
        ),
    )
    tick_interval_s: float = Field(default=1.0, gt=0, description="Deadline check period.")
    deadline_codes: list[str] = Field(
        default=["trapped_passenger"],
        description="Fault codes held to dispatch_deadline_s / arrival_deadline_s after detection.",
    )
    code_deadlines_s: dict[str, tuple[int | None, int | None]] = Field(
        default={},
        description='Per-code [dispatch_s, arrival_s] overriding the above, e.g. {"overspeed": [600, null]}.',
    )
    auto_escalation_limit: int = Field(
        default=2, ge=1, le=3, description="Highest escalation level a missed deadline reaches by itself (3 = 119)."
    )
    chattering_window_s: int = Field(
        default=60, gt=0, description="Window in which raise/clear toggles count towards chattering."
    )
    chattering_toggles: int = Field(default=3, ge=2, description="Toggles within the window that flag chattering.")
    emergency_severities: list[Literal["critical", "major", "minor"]] = Field(
        default=["critical"], description="Severities routed to the emergency centres (the firm gets all)."
    )
    firm_severities: list[Literal["critical", "major", "minor"]] = Field(
        default=["critical", "major", "minor"], description="Severities sent to the maintenance firm's webhooks."
    )
    quiet_kinds: list[str] = Field(
        default=["updated", "assigned", "grouped", "inhibited"],
        description="Incident change kinds published on Kafka but not sent to webhooks.",
    )
    group_by: list[Literal["code", "district", "maintainer_id"]] = Field(
        default=["code", "district"],
        description="Incidents equal on these (code required) opened within group_window_s form one incident group.",
    )
    group_window_s: int = Field(
        default=300, ge=0, description="Window in which incidents join a group (0 = no grouping; never entrapments)."
    )
    inhibit_rules: list[dict[str, list[str]]] | None = Field(
        default=None,
        description=(
            'Inhibit rules [{"source": [codes], "target": [codes], "equal": [fields]}]; null = the defaults of'
            " docs/alerts.md (a power failure or an offline terminal inhibits the derived faults of its elevator)."
        ),
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server of e-mail receivers; unset = e-mail deliveries are dead-lettered."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587 submission with STARTTLS).")
    smtp_from: str = Field(default="liftwatch@localhost", description="Sender address of notification mails.")
    smtp_user: str | None = Field(default=None, description="SMTP login (unset = none).")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS before sending.")
    sms_account: str | None = Field(
        default=None, description="SMS / voice provider account (Twilio's REST format); unset = such deliveries dead."
    )
    sms_token: SecretStr | None = Field(default=None, description="SMS / voice provider auth token.")
    sms_from: str | None = Field(default=None, description="Number SMS and calls come from (E.164, +...).")
    sms_api_base: str = Field(default="https://api.twilio.com", description="Base URL of the SMS / voice provider.")
    webhook_allow_private: bool = Field(
        default=False,
        description=(
            "Allow http:// webhook URLs and targets on loopback, private or link-local addresses"
            " (a closed site network, tests); by default only https:// to public addresses is called."
        ),
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="HTTP timeout of one webhook call.")
    webhook_backoff_base_s: float = Field(default=2.0, gt=0, description="First retry delay; doubles per attempt.")
    webhook_backoff_max_s: float = Field(default=300.0, gt=0, description="Longest delay between webhook retries.")
    webhook_concurrency: int = Field(default=16, gt=0, description="Webhook calls in flight at most.")
    alerts_batch_max: int = Field(default=500, gt=0, description="Fault events per database transaction at most.")
    alerts_relay_batch_max: int = Field(
        default=500, gt=0, description="Incident changes relayed to Kafka and webhooks per round at most."
    )
    alerts_poll_s: float = Field(default=1.0, gt=0, description="Relay/delivery poll period when nothing wakes them.")
    alerts_session_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="Consumer-group session timeout (a dead service's partitions then move)."
    )

    @field_validator("secrets_key", "secrets_key_previous", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        # compose passes an unset previous key as an empty string
        return None if value == "" else value

    @field_validator("secrets_key", "secrets_key_previous")
    @classmethod
    def _check_secrets_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must have at least 32 characters")
        return value


class ApiSettings(CommonSettings):
    """`liftwatch api`: HTTP API and operator console."""

    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(default=8080, ge=0, le=65535, description="Port of the API and operator console.")
    admin_token: SecretStr | None = Field(default=None, description="Bootstrap admin bearer token.")
    api_db_pool_size: int = Field(default=10, gt=0, le=200, description="PostgreSQL connections per API process.")
    late_samples_alert_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="/healthz reports late_samples as high above this share of samples arriving late (5 min).",
    )
    api_cookie_secure: bool = Field(default=False, description="Mark the console's session cookie Secure (HTTPS).")
    api_token_days: int = Field(
        default=90, ge=0, le=3650, description="Days a token from `liftwatch token create` stays valid (0 = never)."
    )
    api_session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="Lifetime of a console session (sign-in cookie)."
    )
    sse_streams_per_token: int = Field(
        default=10, gt=0, le=10_000, description="Live-feed streams one token may hold open at once (429 beyond)."
    )
    sse_streams_max: int = Field(
        default=1_000, gt=0, le=1_000_000, description="Live-feed streams one API process holds open at once."
    )
    sse_replay_limit: int = Field(
        default=10_000, gt=0, description="Most changes replayed to a reconnecting live-feed client."
    )

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


class PlatformSettings(GatewaySettings, WriterSettings, RulesSettings, AlertsSettings, ApiSettings):
    """`liftwatch up` / `demo`: every process in one, so the union of their settings."""


SETTINGS_CLASSES: tuple[type[CommonSettings], ...] = (
    CommonSettings,
    GatewaySettings,
    WriterSettings,
    RulesSettings,
    AlertsSettings,
    ApiSettings,
)


def settings_reference() -> str:
    """The configuration reference of ``docs/operations.md``: every variable, its default and meaning.

    Each class lists the fields it adds to :class:`CommonSettings`; a test keeps the docs equal to this.
    """
    blocks: list[str] = []
    common = set(CommonSettings.model_fields)
    for cls in SETTINGS_CLASSES:
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        rows = ["| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            if cls is not CommonSettings and name in common:
                continue
            default = "(secret)" if isinstance(field.default, SecretStr) and field.default else field.default
            if isinstance(default, SecretStr):
                default = '""'
            rows.append(f"| `LIFTWATCH_{name.upper()}` | `{default}` | {field.description or ''} |")
        blocks.append(f"**{cls.__name__}** ({summary})\n\n" + "\n".join(rows))
    return "\n\n".join(blocks) + "\n"
