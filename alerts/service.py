"""``liftwatch alerts``: the asyncio service around the pure incident logic.

Five loops share one PostgreSQL pool and stop together:

* **faults**: a consumer-group member on ``faults``; each batch is folded into incidents in one
  transaction (:func:`faults_store.record_faults`, set-based, idempotent on ``event_id``), and only then are the
  Kafka offsets committed. A crash replays a few events, which are recognised as duplicates.
* **kafka relay** and **notify relay** (:mod:`liftwatch.alerts.relay`): the ``incident_events``
  outbox to Kafka ``incidents`` and to pending webhook deliveries, woken by ``NOTIFY``.
* **deliveries**: sends due webhook deliveries concurrently, retries with exponential back-off,
  dead-letters after ``webhook_max_attempts``; it runs on its own so a slow or dead receiver
  never holds up incident processing.
* **deadlines**: every ``tick_interval_s``, :func:`deadlines.due` over the stored incidents
  (re-notify, missed dispatch/arrival with escalation, auto-clear), with an injectable clock.

A failing loop logs, waits and tries again: a database or broker outage delays work, never
loses it (offsets are not committed, positions not advanced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from liftwatch import db
from liftwatch.alerts import deadlines_store, faults_store, outbox, relay, storms
from liftwatch.alerts.channels import KafkaChannel, WebhookChannel, backoff_s
from liftwatch.alerts.deadlines import CodeDeadlines, DeadlinePolicy, DueKind, due
from liftwatch.alerts.errors import AlertsConfigError, Backpressure, NotificationError
from liftwatch.alerts.incidents import CHANGE_KINDS, Outcome, check_event
from liftwatch.alerts.lifecycle import is_open
from liftwatch.alerts.metrics import AlertsMetrics
from liftwatch.alerts.notifiers import (
    Delivery,
    EmailNotifier,
    Notifier,
    PhoneNotifier,
    PhoneProvider,
    RobotNotifier,
    SmtpSettings,
    WebhookNotifier,
)
from liftwatch.alerts.routing import RoutingPolicy
from liftwatch.alerts.secrets import SecretUnreadable, box_of
from liftwatch.badinput import BadInputPolicy
from liftwatch.config import AlertsSettings
from liftwatch.kafka import ensure_topics, make_consumer, make_producer
from liftwatch.runtime import start_metrics
from liftwatch.schema import DeadLetter, DeadLetterReason, FaultCode, FaultEvent, decode_fault_event, encode_record
from prometheus_client import CollectorRegistry
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# A loop that failed waits this long before trying again (database or broker away).
_RETRY_S = 1.0


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def deadline_policy(settings: AlertsSettings) -> DeadlinePolicy:
    """Deadlines per code from the settings; raises :class:`AlertsConfigError` for an unknown code."""
    unknown = sorted({*settings.deadline_codes, *settings.code_deadlines_s} - set(FaultCode))
    if unknown:
        raise AlertsConfigError(
            f"LIFTWATCH_DEADLINE_CODES / LIFTWATCH_CODE_DEADLINES_S: unknown fault code(s) {', '.join(unknown)}"
        )
    if any(seconds <= 0 for seconds in settings.reminder_intervals_s.values()):
        raise AlertsConfigError("LIFTWATCH_REMINDER_INTERVALS_S: reminders must be > 0 s apart (leave a severity out)")
    for code, pair in settings.code_deadlines_s.items():
        if any(seconds is not None and seconds <= 0 for seconds in pair):
            raise AlertsConfigError(f"LIFTWATCH_CODE_DEADLINES_S: {code}: deadlines must be > 0 s or null")
    codes = {
        code: CodeDeadlines(dispatch_s=settings.dispatch_deadline_s, arrival_s=settings.arrival_deadline_s)
        for code in settings.deadline_codes
    }
    for code, (dispatch_s, arrival_s) in settings.code_deadlines_s.items():
        codes[code] = CodeDeadlines(dispatch_s=dispatch_s, arrival_s=arrival_s)
    return DeadlinePolicy(
        renotify_s=settings.renotify_interval_s,
        reminders_s={"critical": settings.renotify_interval_s}
        | {k: v for k, v in settings.reminder_intervals_s.items()},
        auto_clear_s=settings.auto_close_after_s,
        codes=codes,
        auto_escalation_limit=settings.auto_escalation_limit,
    )


def storm_policy(settings: AlertsSettings) -> relay.StormPolicy:
    """Grouping and inhibition from the settings; raises :class:`AlertsConfigError` for a rule it refuses."""
    group = storms.GroupRule(by=tuple(settings.group_by), window_s=settings.group_window_s)
    inhibit = storms.DEFAULT_INHIBIT_RULES
    if settings.inhibit_rules is not None:
        rules = []
        for rule in settings.inhibit_rules:
            extra = set(rule) - {"source", "target", "equal"}
            if extra or not {"source", "target"} <= set(rule):
                raise AlertsConfigError("LIFTWATCH_INHIBIT_RULES: each rule has source, target and optionally equal")
            rules.append(
                storms.InhibitRule(
                    source=frozenset(rule["source"]),
                    target=frozenset(rule["target"]),
                    equal=tuple(rule.get("equal", ["registration_code"])),
                )
            )
        inhibit = tuple(rules)
    try:
        storms.check_rules(group, inhibit)
    except AlertsConfigError as error:
        raise AlertsConfigError(f"LIFTWATCH_GROUP_BY / LIFTWATCH_INHIBIT_RULES: {error}") from None
    return relay.StormPolicy(group=group, inhibit=inhibit)


def routing_policy(settings: AlertsSettings) -> RoutingPolicy:
    """Who gets what, from the settings; raises :class:`AlertsConfigError` for an unknown change kind."""
    unknown = sorted(set(settings.quiet_kinds) - CHANGE_KINDS)
    if unknown:
        raise AlertsConfigError(
            f"LIFTWATCH_QUIET_KINDS: unknown change kind(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(CHANGE_KINDS))})"
        )
    return RoutingPolicy(
        emergency_severities=frozenset(settings.emergency_severities),
        firm_severities=frozenset(settings.firm_severities),
        quiet_kinds=frozenset(settings.quiet_kinds),
    )


class AlertService:
    """One alert-service process."""

    def __init__(self, settings: AlertsSettings, registry: CollectorRegistry, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = AlertsMetrics(registry)
        self.bad_input = BadInputPolicy(registry, self._dead_letter)
        self.deadlines = deadline_policy(settings)
        self.routing = routing_policy(settings)
        self.secret_box = box_of(settings.secrets_key, settings.secrets_key_previous)
        if settings.secrets_key is None:
            log.warning("LIFTWATCH_SECRETS_KEY is not set: receivers' secrets are stored unencrypted")
        self.storms = storm_policy(settings)
        self.faults_topic = settings.topic("faults")
        self.dead: list[DeadLetter] = []
        self.wake_kafka = asyncio.Event()
        self.wake_notify = asyncio.Event()
        self.wake_deliveries = asyncio.Event()
        self.pool: AsyncConnectionPool | None = None
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.kafka: KafkaChannel | None = None
        self.webhooks = WebhookChannel(
            timeout_s=settings.webhook_timeout_s,
            max_in_flight=settings.webhook_concurrency,
            allow_private=settings.webhook_allow_private,
        )
        smtp = (
            None
            if settings.smtp_host is None
            else SmtpSettings(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                user=settings.smtp_user,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                starttls=settings.smtp_starttls,
                timeout_s=settings.webhook_timeout_s,
            )
        )
        self.notifiers: dict[str, Notifier] = {
            "webhook": WebhookNotifier(self.webhooks),
            "wecom": RobotNotifier("wecom", self.webhooks, timezone=settings.site_timezone),
            "dingtalk": RobotNotifier("dingtalk", self.webhooks, timezone=settings.site_timezone),
            "email": EmailNotifier(smtp, timezone=settings.site_timezone),
        }
        phone = (
            PhoneProvider(
                account=settings.sms_account,
                token=settings.sms_token.get_secret_value(),
                sender=settings.sms_from,
                api_base=settings.sms_api_base,
            )
            if settings.sms_account and settings.sms_token and settings.sms_from
            else None
        )
        for channel in ("sms", "voice"):
            self.notifiers[channel] = PhoneNotifier(channel, self.webhooks, phone, timezone=settings.site_timezone)

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.dead.append(letter)

    def _wake_relays(self) -> None:
        self.wake_kafka.set()
        self.wake_notify.set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        await ensure_topics(settings)
        self.pool = await db.async_pool(settings.require_database_url(), min_size=2, max_size=6, name="alerts")
        try:
            async with self.pool.connection() as conn:
                await deadlines_store.save_deadline_policy(conn, self.deadlines)
            self.producer = make_producer(settings)
            await self.producer.start()
            self.kafka = KafkaChannel(self.producer, settings.topic("incidents"))
            try:
                session_ms = settings.alerts_session_timeout_ms
                self.consumer = make_consumer(
                    settings,
                    self.faults_topic,
                    group_id=settings.alerts_group,
                    session_timeout_ms=session_ms,
                    heartbeat_interval_ms=max(100, session_ms // 4),
                )
                await self.consumer.start()
                try:
                    await self._run_loops(stop)
                finally:
                    await self.consumer.stop()
            finally:
                await self.producer.stop()
        finally:
            await self.webhooks.close()
            await self.pool.close()

    async def _run_loops(self, stop: asyncio.Event) -> None:
        async def on_stop() -> None:
            await stop.wait()
            for event in (self.wake_kafka, self.wake_notify, self.wake_deliveries):
                event.set()

        async with asyncio.TaskGroup() as group:
            group.create_task(on_stop())
            group.create_task(self._listen(stop))
            group.create_task(self._forever(stop, "faults", self._consume_once, None))
            group.create_task(self._forever(stop, "kafka relay", self._relay_kafka_once, self.wake_kafka))
            group.create_task(self._forever(stop, "notify relay", self._relay_notify_once, self.wake_notify))
            group.create_task(self._forever(stop, "deliveries", self._deliver_once, self.wake_deliveries))
            group.create_task(
                self._forever(stop, "deadlines", self._deadlines_once, None, self.settings.tick_interval_s)
            )

    async def _forever(
        self,
        stop: asyncio.Event,
        name: str,
        once: Callable[[], Awaitable[bool]],
        wake: asyncio.Event | None,
        period_s: float | None = None,
    ) -> None:
        """Run ``once`` until stopped; it returns True when there is more to do right away."""
        period = self.settings.alerts_poll_s if period_s is None else period_s
        while not stop.is_set():
            try:
                busy = await once()
            except Exception:
                log.exception("alerts %s loop failed; retrying in %.0f s", name, _RETRY_S)
                busy = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY_S)
            if busy or stop.is_set() or name == "faults":
                continue
            waiter = wake if wake is not None else stop
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), period)
            if wake is not None and not stop.is_set():
                wake.clear()

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake the relays on NOTIFY (changes by the API or another instance); polling covers gaps."""
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self.settings.require_database_url(), autocommit=True)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(outbox.NOTIFY_CHANNEL)))
                    while not stop.is_set():
                        async for _ in conn.notifies(timeout=0.5):
                            self._wake_relays()
            except psycopg.Error:
                log.warning("LISTEN connection lost; relays poll until it is back", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY_S)

    # --- faults ---------------------------------------------------------------------------------

    async def _consume_once(self) -> bool:
        assert self.consumer is not None and self.pool is not None
        batch = await self.consumer.getmany(timeout_ms=200, max_records=self.settings.alerts_batch_max)
        if not batch:
            return False
        try:
            events = [event for messages in batch.values() for event in map(self._decode, messages) if event]
            if events:
                await self._record(events)
            await self._flush_dead_letters()
        except Exception:
            # Not durable: read the batch again (its events are idempotent) after the pause.
            for partition, messages in batch.items():
                self.consumer.seek(partition, messages[0].offset)
            raise
        await self.consumer.commit()
        return True

    def _decode(self, message: Any) -> FaultEvent | None:
        terminal: str | None = None  # the record key is the elevator's code, not a terminal id
        try:
            event = decode_fault_event(message.value)
        except msgspec.ValidationError as error:
            reason, detail = DeadLetterReason.SCHEMA, str(error)
        except (msgspec.DecodeError, TypeError) as error:
            reason, detail = DeadLetterReason.UNDECODABLE, str(error)
        except Exception as error:  # e.g. RecursionError on deeply nested evidence: still the input's fault
            reason, detail = DeadLetterReason.UNDECODABLE, f"{type(error).__name__}: {error}"
        else:
            refused = check_event(event, now_ms=int(self.clock().timestamp() * 1000))
            if refused is None:
                return event
            reason, detail = refused
            terminal = event.terminal[:64]
        self.bad_input.refuse(
            source=f"kafka:{self.faults_topic}",
            topic=self.faults_topic,
            reason=reason,
            detail=detail,
            payload=message.value or b"",
            terminal=terminal,
        )
        return None

    async def _record(self, events: list[FaultEvent]) -> None:
        assert self.pool is not None
        settings = self.settings
        outcomes: list[Outcome] = []
        async with self.pool.connection() as conn, conn.transaction():
            await outbox.lock_outbox(conn)
            results = await faults_store.record_faults(
                conn,
                events,
                now=self.clock(),
                window_ms=settings.chattering_window_s * 1000,
                toggles=settings.chattering_toggles,
            )
        for event, result in zip(events, results, strict=True):
            if isinstance(result, Outcome):
                outcomes.append(result)
                continue
            # The database refused this one event (bad data): dead-letter it, the rest are folded.
            self.bad_input.refuse(
                source=f"kafka:{self.faults_topic}",
                topic=self.faults_topic,
                reason=DeadLetterReason.SCHEMA,
                detail=f"{type(result).__name__}: {result}",
                payload=encode_record(event),
                terminal=event.terminal,
            )
        for outcome in outcomes:
            self.metrics.events.labels(outcome=outcome.value).inc()
        self._wake_relays()

    async def _flush_dead_letters(self) -> None:
        if not self.dead or self.producer is None:
            return
        dead, self.dead = self.dead, []
        topic = self.settings.topic("deadletter")
        futures = [
            await self.producer.send(topic, encode_record(letter), key=(letter.terminal or "").encode())
            for letter in dead
        ]
        await asyncio.gather(*futures)

    # --- relays ---------------------------------------------------------------------------------

    async def _relay_kafka_once(self) -> bool:
        assert self.pool is not None and self.kafka is not None
        limit = self.settings.alerts_relay_batch_max
        async with self.pool.connection() as conn, conn.transaction():
            after = await relay.lock_position(conn, relay.KAFKA_RELAY)
            rows = await relay.read_changes(conn, after, limit)
            if not rows:
                return False
            changes = relay.changes_of(rows)
            try:
                futures = [await self.kafka.enqueue(change) for change in changes]
                await asyncio.gather(*futures)
            except Exception as error:
                reason = error.reason if isinstance(error, NotificationError) else "delivery_failed"
                self.metrics.notifications_failed.labels(channel="kafka", reason=reason).inc(len(changes))
                raise
            last = int(rows[-1]["change_id"])
            await relay.save_position(conn, relay.KAFKA_RELAY, last)
        self.metrics.notifications_sent.labels(channel="kafka").inc(len(changes))
        self.metrics.relay_position.labels(relay=relay.KAFKA_RELAY).set(last)
        return len(rows) == limit

    async def _relay_notify_once(self) -> bool:
        assert self.pool is not None
        limit = self.settings.alerts_relay_batch_max
        async with self.pool.connection() as conn:
            routed = await relay.route_changes(
                conn,
                policy=self.routing,
                default_secret=self.settings.webhook_secret.get_secret_value(),
                now=utc_now(),
                limit=limit,
                storms=self.storms,
                timezone=self.settings.site_timezone,
            )
        if routed.deliveries:
            self.wake_deliveries.set()
        for reason, count in routed.suppressed.items():
            self.metrics.suppressed.labels(reason=reason).inc(count)
        if routed.changes:
            self.metrics.relay_position.labels(relay=relay.NOTIFY_RELAY).set(routed.last_change_id)
        return routed.changes == limit

    # --- webhook deliveries ---------------------------------------------------------------------

    async def _deliver_once(self) -> bool:
        assert self.pool is not None
        settings = self.settings
        limit = settings.webhook_concurrency
        # Deliveries run on the wall clock (not the injectable incident clock): back-off is real time.
        async with self.pool.connection() as conn:
            claimed = await relay.claim_deliveries(
                conn, now=utc_now(), lease_s=settings.webhook_timeout_s * 2 + 5, limit=limit
            )
        if not claimed:
            return False
        results = await asyncio.gather(*(self._send(row) for row in claimed))
        now = utc_now()
        async with self.pool.connection() as conn, conn.transaction():
            for row, error in zip(claimed, results, strict=True):
                if error is None:
                    await relay.mark_sent(conn, row["id"], now=now)
                    self.metrics.notifications_sent.labels(channel=row["channel"]).inc()
                    continue
                self.metrics.notifications_failed.labels(channel=row["channel"], reason=error.reason).inc()
                retry_at: datetime | None = None
                if error.retriable and row["attempts"] < settings.webhook_max_attempts:
                    delay = backoff_s(
                        row["attempts"], base_s=settings.webhook_backoff_base_s, cap_s=settings.webhook_backoff_max_s
                    )
                    if isinstance(error, Backpressure) and error.retry_after_s is not None:
                        delay = max(delay, error.retry_after_s)
                    retry_at = now + timedelta(seconds=delay)
                else:
                    self.metrics.notifications_dead.labels(channel=row["channel"]).inc()
                    log.warning("webhook delivery %s dead-lettered: %s", row["idempotency_key"], error)
                await relay.mark_failed(conn, row["id"], error=f"{error.reason}: {error}", retry_at=retry_at, now=now)
        return len(claimed) == limit

    async def _send(self, row: dict[str, Any]) -> NotificationError | None:
        if not row["enabled"]:
            return NotificationError("webhook disabled", reason="webhook_disabled", retriable=False)
        channel = row["channel"]
        try:
            secret = self.secret_box.open(row["secret"] or "")
        except SecretUnreadable as error:
            # A wrong or missing LIFTWATCH_SECRETS_KEY: never send unsigned or with a guessed key.
            return NotificationError(
                f"the receiver's secret cannot be opened: {error}", reason="secret_unreadable", retriable=False
            )
        if channel == "webhook":
            secret = secret or self.settings.webhook_secret.get_secret_value()
            if not secret:
                # Unsigned, a receiver could not tell us from anyone: dead-letter with the reason
                # (`deliveries dead` shows it; `deliveries retry` once a secret is configured).
                return NotificationError(
                    "no HMAC secret: set one with `webhook add --secret` or LIFTWATCH_WEBHOOK_SECRET",
                    reason="no_secret",
                    retriable=False,
                )
        delivery = Delivery(
            channel=channel,
            url=row["url"],
            secret=secret,
            body=bytes(row["body"]),
            idempotency_key=row["idempotency_key"],
            attempt=row["attempts"],
            language=row["language"],
        )
        try:
            await self.notifiers[channel].send(delivery)
        except NotificationError as error:
            return error
        return None

    # --- deadlines ------------------------------------------------------------------------------

    async def _deadlines_once(self) -> bool:
        assert self.pool is not None
        now = self.clock()
        async with self.pool.connection() as conn:
            candidates = await deadlines_store.deadline_candidates(conn, self.deadlines, now)
            await conn.commit()
            for item in due(candidates, now, self.deadlines):
                if not await deadlines_store.apply_due(conn, item, now=now, policy=self.deadlines):
                    continue
                if item.kind is DueKind.RENOTIFY:
                    self.metrics.renotifications.inc()
                elif item.kind is DueKind.AUTO_CLEAR:
                    self.metrics.auto_cleared.inc()
                else:
                    deadline = "dispatch" if item.kind is DueKind.DISPATCH_MISSED else "arrival"
                    self.metrics.deadline_misses.labels(deadline=deadline).inc()
                self._wake_relays()
            closed = [c.id for c in candidates if not is_open(c.status)]
            if closed:
                await deadlines_store.settle_closed(conn, closed)
                await conn.commit()
            counts = await deadlines_store.open_incident_counts(conn)
            deliveries = await relay.delivery_counts(conn)
        for severity in ("critical", "major", "minor"):
            self.metrics.open_incidents.labels(severity=severity).set(counts.get(severity, 0))
        for status, count in deliveries.items():
            self.metrics.deliveries.labels(status=status).set(count)
        return False


async def serve(
    settings: AlertsSettings,
    stop: asyncio.Event,
    registry: CollectorRegistry | None = None,
    *,
    clock: Clock = utc_now,
) -> None:
    """Run the alert service until ``stop`` is set (the process entry point, also used by ``liftwatch up``)."""
    if registry is None:
        registry = CollectorRegistry()
        with contextlib.suppress(OSError):  # `liftwatch up`: another process of the platform may hold the port
            start_metrics(settings.metrics_port, registry)
    await AlertService(settings, registry, clock=clock).run(stop)
