"""Errors of the alert service; each carries a stable machine code in ``reason``.

The API maps them to HTTP answers by ``reason`` (never by message text):
``incident_not_found`` (404), ``illegal_transition`` / ``cause_required`` / ``unknown_cause`` / ``note_required`` /
``escalation_exhausted`` (409/422), and notification channel errors stay inside the service.
"""

from __future__ import annotations

from liftwatch.errors import ConfigError, LiftwatchError


class AlertsError(LiftwatchError):
    """Root of the alert service's errors."""

    reason = "alerts"


class AlertsConfigError(ConfigError):
    """A setting of the alert service names something that does not exist (a fault code, a change kind)."""

    reason = "alerts_config"


class IncidentNotFound(AlertsError):
    """No incident has this id."""

    reason = "incident_not_found"

    def __init__(self, incident_id: int) -> None:
        super().__init__(f"incident {incident_id} does not exist")
        self.incident_id = incident_id


class IllegalTransition(AlertsError):
    """The lifecycle refuses this action in the incident's current status.

    ``reason`` is ``illegal_transition`` for a refused status change; subclasses narrow it
    (a close without a valid cause, an escalation beyond the last level).
    """

    reason = "illegal_transition"

    def __init__(self, current_status: str, action: str, *, reason: str | None = None, detail: str = "") -> None:
        message = f"cannot {action} an incident that is {current_status}"
        super().__init__(f"{message}: {detail}" if detail else message, reason=reason)
        self.current_status = current_status
        self.action = action


class InvalidCause(IllegalTransition):
    """Closing needs a cause category from :class:`liftwatch.alerts.lifecycle.CloseCause`."""

    reason = "cause_required"


class NoteRequired(IllegalTransition):
    """Closing needs a note (what was found and done): the contract's "closed: with a cause category and a note"."""

    reason = "note_required"


class NotificationError(AlertsError):
    """A notification channel could not take or deliver a notification."""

    reason = "notification_failed"
    retriable = True


class Backpressure(NotificationError):
    """The channel is saturated (too many in flight, HTTP 429): try again, not before ``retry_after_s``.

    The delivery worker counts it as an attempt (a receiver that rate-limits for ever is
    dead-lettered like one that is down) but waits at least ``Retry-After``.
    """

    reason = "backpressure"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeliveryFailed(NotificationError):
    """A transient failure (connection refused, timeout, HTTP 5xx): retried with back-off."""

    reason = "delivery_failed"


class DeliveryRejected(NotificationError):
    """The receiver refused the notification for good (HTTP 4xx other than 408/429): dead-lettered."""

    reason = "delivery_rejected"
    retriable = False


class ElevatorNotFound(AlertsError):
    """No elevator has this registration (or rescue) code: a call cannot open an incident for it."""

    reason = "elevator_not_found"

    def __init__(self, code: str) -> None:
        super().__init__(f"no elevator {code}")
        self.code = code
