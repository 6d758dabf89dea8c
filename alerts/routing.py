"""Who is told about an incident change: routing to webhooks. Pure.

Default routing (configurable through :class:`RoutingPolicy`): every notable change goes to the
maintenance firm of the elevator; changes of critical incidents also go to the emergency
centres (of the district, or city-wide ones); from escalation level 2 the district rescue team
is told, from level 3 the fire brigade. ``updated`` (a repeat detection) goes to Kafka only:
people are not paged for a fault that is already on their screen.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import time


class Target(enum.StrEnum):
    """Who a webhook belongs to (``alerts_webhooks.target``)."""

    MAINTENANCE_FIRM = "maintenance_firm"
    EMERGENCY_CENTRE = "emergency_centre"
    DISTRICT_RESCUE = "district_rescue"
    FIRE_BRIGADE = "fire_brigade"


# Escalation level from which a target is told (1 = from the start).
TARGET_LEVEL: dict[Target, int] = {
    Target.MAINTENANCE_FIRM: 1,
    Target.EMERGENCY_CENTRE: 1,
    Target.DISTRICT_RESCUE: 2,
    Target.FIRE_BRIGADE: 3,
}


@dataclass(frozen=True, slots=True)
class Webhook:
    """One configured receiver."""

    id: int
    name: str
    target: Target
    url: str
    secret: str
    maintainer_id: int | None = None
    district: str | None = None
    enabled: bool = True
    channel: str = "webhook"
    """webhook, email, wecom, dingtalk (liftwatch.alerts.notifiers)."""
    quiet_from: time | None = None
    """Quiet hours (site time) during which non-critical changes wait; None = never quiet."""
    quiet_to: time | None = None


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Which changes go to whom."""

    emergency_severities: frozenset[str] = frozenset({"critical"})
    """Severities the emergency centres receive."""
    firm_severities: frozenset[str] = frozenset({"critical", "major", "minor"})
    """Severities the maintenance firms receive."""
    quiet_kinds: frozenset[str] = field(
        default_factory=lambda: frozenset({"updated", "assigned", "grouped", "inhibited"})
    )
    """Change kinds published on Kafka only."""


@dataclass(frozen=True, slots=True)
class ChangeFacts:
    """What routing needs to know about one change."""

    kind: str
    severity: str
    maintainer_id: int | None
    district: str | None
    escalation_level: int
    suppressed: str | None = None
    """Why nobody is told (liftwatch.alerts.suppression: maintenance, shelved, out_of_service), or None."""


VOICE_KINDS = frozenset({"opened", "called", "renotified", "escalated", "deadline_missed"})
"""Changes worth a phone call (voice receivers, critical incidents only): someone must act now."""


def recipients(change: ChangeFacts, webhooks: Iterable[Webhook], policy: RoutingPolicy) -> list[Webhook]:
    """The webhooks ``change`` is delivered to, in id order."""
    if change.kind in policy.quiet_kinds or change.suppressed is not None:
        return []
    chosen: list[Webhook] = []
    for hook in webhooks:
        if not hook.enabled or change.escalation_level < TARGET_LEVEL[hook.target]:
            continue
        if hook.channel == "voice" and not (change.severity == "critical" and change.kind in VOICE_KINDS):
            continue
        if hook.target is Target.MAINTENANCE_FIRM:
            wanted = hook.maintainer_id == change.maintainer_id and change.severity in policy.firm_severities
        else:
            in_area = hook.district is None or hook.district == change.district
            wanted = in_area and (
                change.severity in policy.emergency_severities if hook.target is Target.EMERGENCY_CENTRE else True
            )
        if wanted:
            chosen.append(hook)
    return sorted(chosen, key=lambda hook: hook.id)
