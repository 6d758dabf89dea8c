"""What a person reads: a notification rendered as text for e-mail and group robots. Pure.

Webhooks receive the notification's JSON as is (programs read it); people get a short message in
their receiver's language (``alerts_webhooks.language``): the fault, the elevator (rescue code,
address), the change and who made it, the firm and the escalation level. The WeCom and DingTalk
group robots take it as their documented ``markdown`` messages; DingTalk's "加签" security
setting signs a timestamp with the robot's secret in the URL (:func:`dingtalk_url`).

Quiet hours (:func:`quiet_until`): a receiver may ask not to be told of non-critical changes at
night; those deliveries wait until the quiet hours end. Critical ones are never held.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

from liftwatch import i18n


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def render(notification: dict[str, Any], language: str, timezone: str) -> Message:
    """The message of a notification body (docs/alerts.md, webhooks) in ``language``."""
    lang = i18n.as_language(language)
    fault = i18n.t(f"common.fault.{notification['code']}", lang)
    severity = i18n.t(f"common.severity.{notification['severity']}", lang)
    kind = i18n.t(f"common.kind.{notification['kind']}", lang)
    status = i18n.t(f"common.status.{notification['status']}", lang)
    where = notification.get("address") or notification.get("terminal") or ""
    subject = f"[{severity}] {fault} · {where} · {kind}"
    at = datetime.fromisoformat(notification["at"])
    level = notification.get("escalation_level") or 1
    lines = [
        f"{fault} ({severity}) #{notification['incident_id']}",
        f"{i18n.t('console.detail.rescue_code', lang)}: {notification.get('rescue_code') or '-'}",
        f"{i18n.t('console.col.address', lang)}: {where} {notification.get('district') or ''}".rstrip(),
        f"{i18n.t('console.col.maintainer', lang)}: {notification.get('maintainer') or '-'}",
        f"{kind} → {status} · {i18n.format_datetime(at, timezone)} · {notification.get('actor') or ''}".rstrip(" ·"),
        f"{i18n.t('console.incident.escalation', lang)}: {level} · {i18n.t(f'console.escalation.level.{level}', lang)}",
    ]
    if notification.get("note"):
        lines.append(f"{i18n.t('console.incident.note', lang)}: {notification['note']}")
    return Message(subject, tuple(lines))


def wecom_payload(message: Message) -> dict[str, Any]:
    """A WeCom group robot's ``markdown`` message (its content is at most 4096 bytes)."""
    content = f"**{message.subject}**\n" + "\n".join(f"> {line}" for line in message.lines)
    return {"msgtype": "markdown", "markdown": {"content": content.encode()[:4096].decode(errors="ignore")}}


def dingtalk_payload(message: Message) -> dict[str, Any]:
    """A DingTalk group robot's ``markdown`` message."""
    text = f"#### {message.subject}\n\n" + "\n\n".join(message.lines)
    return {"msgtype": "markdown", "markdown": {"title": message.subject[:64], "text": text}}


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot URL with DingTalk's signature: base64(HMAC-SHA256(secret, "<ms>\\n<secret>")), URL-encoded."""
    signed = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp_ms}&sign={quote_plus(base64.b64encode(signed).decode())}"


def quiet_until(now: datetime, timezone: str, quiet_from: time | None, quiet_to: time | None) -> datetime | None:
    """When quiet hours (site time, ``quiet_from`` to ``quiet_to``, may span midnight) end, if ``now`` is in them."""
    if quiet_from is None or quiet_to is None or quiet_from == quiet_to:
        return None
    local = now.astimezone(ZoneInfo(timezone))
    clock = local.time().replace(tzinfo=None)
    spans_midnight = quiet_from > quiet_to
    inside = (clock >= quiet_from or clock < quiet_to) if spans_midnight else (quiet_from <= clock < quiet_to)
    if not inside:
        return None
    end = local.replace(hour=quiet_to.hour, minute=quiet_to.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(now.tzinfo)
