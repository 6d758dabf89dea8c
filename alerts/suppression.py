"""Faults recorded but not notified: maintenance windows, shelved alarms, elevators out of service. Pure.

* A **maintenance window** (declared by the elevator's firm, or the centre): the elevator's
  faults in the window are recorded as incidents but nobody is paged, and the board shows them
  "in maintenance". Technicians trip door, safety-circuit and power alarms all the time while
  they work.
* A **shelf** (ISA-18.2 shelving, by an operator): one nuisance alarm, an (elevator, fault code),
  for at most :data:`SHELF_MAX` with a reason; it returns by itself when the shelf expires.
* **Out of service** (set by the firm or the regulator, until cleared): a stopped elevator's
  faults are expected.

Never suppressed: :data:`SAFETY_CODES` (a trapped passenger, an overspeed), whatever the window,
shelf or state says: a person may be inside. All three are judged at the change's own time
(:func:`suppression_sql`), so a relay running late decides as it would have on time, and ending
one early stamps it instead of deleting it (the tables are their own audit trail).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from liftwatch.schema import FaultCode

SAFETY_CODES: frozenset[FaultCode] = frozenset({FaultCode.TRAPPED_PASSENGER, FaultCode.OVERSPEED})
"""Codes always notified: someone may be trapped or at risk."""
SHELF_MAX = timedelta(hours=8)
"""Longest shelf (ISA-18.2: shelving is temporary; the database refuses longer ones too)."""
WINDOW_MAX = timedelta(hours=72)
"""Longest maintenance window: a longer stop is an elevator out of service."""
WINDOW_PAST = timedelta(hours=1)
"""How far back a window may start (declared a little late, on site)."""
REASON_MAX = 500


class Suppression(enum.StrEnum):
    """Why an incident change is not notified (``suppressed`` on the API's incident)."""

    SHELVED = "shelved"
    MAINTENANCE = "maintenance"
    OUT_OF_SERVICE = "out_of_service"


def suppressible(code: str) -> bool:
    """Whether faults of ``code`` may be kept from notification at all."""
    return code not in SAFETY_CODES


def check_reason(reason: str) -> str:
    """The reason as stored (trimmed); ValueError when empty or too long."""
    text = reason.strip()
    if not text:
        raise ValueError("a reason is required")
    if len(text) > REASON_MAX:
        raise ValueError(f"a reason has at most {REASON_MAX} characters")
    return text


def check_window(starts_at: datetime, ends_at: datetime, *, now: datetime) -> None:
    """ValueError unless the window is sound: ends after it starts and after now, within the limits."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValueError("times need a UTC offset")
    if ends_at <= starts_at:
        raise ValueError("ends_at must be after starts_at")
    if ends_at <= now:
        raise ValueError("the window is already over")
    if starts_at < now - WINDOW_PAST:
        raise ValueError(f"a window starts at most {WINDOW_PAST} ago")
    if ends_at - starts_at > WINDOW_MAX:
        raise ValueError(f"a window lasts at most {WINDOW_MAX} (longer: mark the elevator out of service)")


def shelf_expiry(code: str, duration: timedelta, *, now: datetime) -> datetime:
    """When a shelf of ``code`` for ``duration`` from ``now`` returns; ValueError when refused."""
    if not suppressible(code):
        raise ValueError(f"{code} is never shelved")
    if duration <= timedelta(0) or duration > SHELF_MAX:
        raise ValueError(f"a shelf lasts more than 0 and at most {SHELF_MAX}")
    return now + duration


def suppression(code: str, *, shelved: bool, in_maintenance: bool, out_of_service: bool) -> Suppression | None:
    """Why a change of an incident of ``code`` is not notified, or None (notified)."""
    if not suppressible(code):
        return None
    if shelved:
        return Suppression.SHELVED
    if in_maintenance:
        return Suppression.MAINTENANCE
    if out_of_service:
        return Suppression.OUT_OF_SERVICE
    return None


def suppression_sql(incident: str, at: str) -> str:
    """SQL of :func:`suppression` for the incident row ``incident`` (an alias) at the time expression ``at``.

    Mirrors :func:`suppression` (same precedence, same safety codes); the tests compare both.
    """
    safety = ", ".join(f"'{code.value}'" for code in sorted(SAFETY_CODES))
    live = f"(x.ended_at IS NULL OR {at} < x.ended_at)"
    return (
        f"(CASE WHEN {incident}.registration_code IS NULL OR {incident}.code IN ({safety}) THEN NULL"
        f" WHEN EXISTS (SELECT 1 FROM alarm_shelves x WHERE x.registration_code = {incident}.registration_code"
        f" AND x.code = {incident}.code AND {at} >= x.shelved_at AND {at} < x.expires_at AND {live})"
        f" THEN '{Suppression.SHELVED.value}'"
        f" WHEN EXISTS (SELECT 1 FROM maintenance_windows x WHERE x.registration_code = {incident}.registration_code"
        f" AND {at} >= x.starts_at AND {at} < x.ends_at AND {live}) THEN '{Suppression.MAINTENANCE.value}'"
        f" WHEN EXISTS (SELECT 1 FROM out_of_service x WHERE x.registration_code = {incident}.registration_code"
        f" AND {at} >= x.since AND {live}) THEN '{Suppression.OUT_OF_SERVICE.value}'"
        " END)"
    )
