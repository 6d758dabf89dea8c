"""Notifiers: one small base class, one adapter per channel a receiver may be (``alerts_webhooks.channel``).

* ``webhook``: the signed JSON POST of :class:`liftwatch.alerts.channels.WebhookChannel`.
* ``wecom`` / ``dingtalk``: a group robot; the message rendered in the receiver's language as
  the robot's documented ``markdown`` JSON, POSTed through the same checked HTTP client (https,
  public targets; the robot answers ``{"errcode": 0}`` on success). A DingTalk robot with a
  secret gets its timestamp signature in the URL.
* ``email``: SMTP (the stdlib client, in a worker thread), plain text in the receiver's
  language, ``Message-ID`` from the delivery's idempotency key so a retried mail is recognisable.

Each raises a :class:`NotificationError` saying what to do next (retry, back off, dead-letter);
retrying and recording is the delivery loop's, the same for every channel.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from liftwatch.alerts.channels import WebhookCall, WebhookChannel
from liftwatch.alerts.errors import Backpressure, DeliveryFailed, DeliveryRejected
from liftwatch.alerts.messages import dingtalk_payload, dingtalk_url, render, wecom_payload

CHANNELS = ("webhook", "email", "wecom", "dingtalk", "sms", "voice")
# Robot error codes meaning "too many messages now" (WeCom 45009, DingTalk 130101): retried later.
_ROBOT_RATE_LIMITED = frozenset({45009, 130101})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stored delivery to one receiver."""

    channel: str
    url: str
    """http(s) URL, or ``mailto:<address>`` for e-mail."""
    secret: str
    """The webhook's HMAC key, the DingTalk robot's signing secret ('' = none)."""
    body: bytes
    """The notification JSON (docs/alerts.md, webhooks)."""
    idempotency_key: str
    attempt: int = 1
    language: str = "zh"


class Notifier(abc.ABC):
    """Somewhere people or programs are told."""

    channel: str

    @abc.abstractmethod
    async def send(self, delivery: Delivery) -> None:
        """Deliver, or raise a :class:`liftwatch.alerts.errors.NotificationError`."""


class WebhookNotifier(Notifier):
    channel = "webhook"

    def __init__(self, http: WebhookChannel) -> None:
        self._http = http

    async def send(self, delivery: Delivery) -> None:
        await self._http.send(
            WebhookCall(delivery.url, delivery.secret, delivery.body, delivery.idempotency_key, delivery.attempt)
        )


class RobotNotifier(Notifier):
    """A WeCom or DingTalk group robot."""

    def __init__(self, channel: str, http: WebhookChannel, *, timezone: str) -> None:
        if channel not in ("wecom", "dingtalk"):
            raise ValueError(channel)
        self.channel = channel
        self._http = http
        self._timezone = timezone

    async def send(self, delivery: Delivery) -> None:
        message = render(json.loads(delivery.body), delivery.language, self._timezone)
        url = delivery.url
        if self.channel == "wecom":
            payload = wecom_payload(message)
        else:
            payload = dingtalk_payload(message)
            if delivery.secret:
                url = dingtalk_url(url, delivery.secret, int(time.time() * 1000))
        response = await self._http.post(
            url, json.dumps(payload, ensure_ascii=False).encode(), {"Content-Type": "application/json"}
        )
        try:
            answer = response.json()
            code = int(answer.get("errcode", 0))
        except (ValueError, AttributeError, TypeError):
            raise DeliveryFailed(f"{self.channel} robot answered something other than its JSON") from None
        if code in _ROBOT_RATE_LIMITED:
            raise Backpressure(f"{self.channel} robot rate limit (errcode {code})", retry_after_s=60)
        if code != 0:
            raise DeliveryRejected(f"{self.channel} robot refused: errcode {code} {str(answer.get('errmsg'))[:200]}")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 587
    sender: str = "liftwatch@localhost"
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    timeout_s: float = 10.0


class EmailNotifier(Notifier):
    channel = "email"

    def __init__(self, smtp: SmtpSettings | None, *, timezone: str) -> None:
        self._smtp = smtp
        self._timezone = timezone

    def message(self, delivery: Delivery) -> EmailMessage:
        """The mail of a delivery (plain text in the receiver's language)."""
        rendered = render(json.loads(delivery.body), delivery.language, self._timezone)
        mail = EmailMessage()
        mail["From"] = self._smtp.sender if self._smtp else "liftwatch@localhost"
        mail["To"] = delivery.url.removeprefix("mailto:")
        mail["Subject"] = rendered.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{delivery.idempotency_key.replace(':', '.')}@liftwatch>"
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the platform
        mail.set_content(rendered.text)
        return mail

    async def send(self, delivery: Delivery) -> None:
        if self._smtp is None:
            raise DeliveryRejected("no SMTP server configured (LIFTWATCH_SMTP_HOST)", reason="no_smtp")
        mail = self.message(delivery)
        await asyncio.to_thread(self._send_sync, self._smtp, mail)

    @staticmethod
    def _send_sync(smtp: SmtpSettings, mail: EmailMessage) -> None:
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
                if smtp.starttls:
                    client.starttls(context=ssl.create_default_context())
                if smtp.user:
                    client.login(smtp.user, smtp.password or "")
                client.send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise DeliveryFailed(f"recipient deferred: {codes}") from error
            raise DeliveryRejected(f"recipient refused: {codes}") from error
        except smtplib.SMTPResponseException as error:
            if 400 <= error.smtp_code < 500:
                raise DeliveryFailed(f"SMTP {error.smtp_code}") from error
            raise DeliveryRejected(f"SMTP {error.smtp_code}") from error
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryFailed(f"{type(error).__name__}: {error}") from error


@dataclass(frozen=True, slots=True)
class PhoneProvider:
    """An SMS / voice provider speaking Twilio's documented REST API (Messages.json, Calls.json)."""

    account: str
    token: str
    sender: str
    """The provider number messages and calls come from (E.164)."""
    api_base: str = "https://api.twilio.com"


SMS_MAX = 320
"""Characters of an SMS body (two segments of a GSM message; Chinese text takes more segments)."""


class PhoneNotifier(Notifier):
    """SMS or a voice call through :class:`PhoneProvider` (``url`` = ``tel:+<number>``).

    The provider answers 201 with the message's or call's JSON; 4xx (an invalid number, an
    unverified sender) is dead-lettered, 429 backs off, 5xx is retried, like every HTTP receiver.
    """

    def __init__(self, channel: str, http: WebhookChannel, provider: PhoneProvider | None, *, timezone: str) -> None:
        if channel not in ("sms", "voice"):
            raise ValueError(channel)
        self.channel = channel
        self._http = http
        self._provider = provider
        self._timezone = timezone

    def request(self, delivery: Delivery) -> tuple[str, bytes]:
        """The provider URL and form body of a delivery."""
        provider = self._provider
        assert provider is not None
        message = render(json.loads(delivery.body), delivery.language, self._timezone)
        to = delivery.url.removeprefix("tel:")
        form: dict[str, str] = {"To": to, "From": provider.sender}
        if self.channel == "sms":
            resource = "Messages.json"
            form["Body"] = (message.subject + "\n" + "\n".join(message.lines[1:4]))[:SMS_MAX]
        else:
            resource = "Calls.json"
            voice = "zh-CN" if delivery.language == "zh" else "en-GB"
            spoken = escape(". ".join((message.subject, *message.lines[1:3])))
            form["Twiml"] = f'<Response><Say language="{voice}" loop="2">{spoken}</Say></Response>'
        url = f"{provider.api_base.rstrip('/')}/2010-04-01/Accounts/{quote(provider.account)}/{resource}"
        return url, urlencode(form).encode()

    async def send(self, delivery: Delivery) -> None:
        if self._provider is None:
            raise DeliveryRejected("no SMS / voice provider configured (LIFTWATCH_SMS_*)", reason="no_phone_provider")
        url, body = self.request(delivery)
        basic = base64.b64encode(f"{self._provider.account}:{self._provider.token}".encode()).decode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"}
        await self._http.post(url, body, headers)
