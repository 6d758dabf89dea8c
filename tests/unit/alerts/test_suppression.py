"""What is recorded but not notified, pure: windows, shelves, out of service, and the safety codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from liftwatch.alerts import suppression
from liftwatch.alerts.suppression import Suppression
from liftwatch.schema import FaultCode

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("starts", "ends", "problem"),
    [
        (NOW, NOW + 2 * H, None),
        (NOW - 0.5 * H, NOW + H, None),  # declared a little late, on site
        (NOW + 24 * H, NOW + 96 * H, None),  # planned ahead, 72 h long
        (NOW, NOW, "after starts_at"),
        (NOW - 3 * H, NOW - 2 * H, "already over"),
        (NOW - 2 * H, NOW + H, "at most 1:00:00 ago"),
        (NOW, NOW + 73 * H, "out of service"),
    ],
)
def test_maintenance_windows_are_bounded(starts: datetime, ends: datetime, problem: str | None) -> None:
    if problem is None:
        suppression.check_window(starts, ends, now=NOW)
    else:
        with pytest.raises(ValueError, match=problem):
            suppression.check_window(starts, ends, now=NOW)


def test_shelves_last_at_most_8_hours_and_never_hide_an_entrapment_or_overspeed() -> None:
    assert suppression.shelf_expiry("door_reopen_loop", 8 * H, now=NOW) == NOW + 8 * H
    for duration in (timedelta(0), 8 * H + timedelta(seconds=1)):
        with pytest.raises(ValueError, match="at most 8:00:00"):
            suppression.shelf_expiry("door_reopen_loop", duration, now=NOW)
    for code in ("trapped_passenger", "overspeed"):
        with pytest.raises(ValueError, match="never shelved"):
            suppression.shelf_expiry(code, H, now=NOW)


@pytest.mark.parametrize("code", list(FaultCode))
@pytest.mark.parametrize("shelved", [False, True])
@pytest.mark.parametrize("maintenance", [False, True])
@pytest.mark.parametrize("out", [False, True])
def test_what_suppresses_a_change(code: FaultCode, shelved: bool, maintenance: bool, out: bool) -> None:
    why = suppression.suppression(code.value, shelved=shelved, in_maintenance=maintenance, out_of_service=out)
    if code in (FaultCode.TRAPPED_PASSENGER, FaultCode.OVERSPEED):
        assert why is None  # someone may be inside: always notified
    elif shelved:
        assert why is Suppression.SHELVED
    elif maintenance:
        assert why is Suppression.MAINTENANCE
    elif out:
        assert why is Suppression.OUT_OF_SERVICE
    else:
        assert why is None


def test_reasons_are_required() -> None:
    assert suppression.check_reason("  replacing the door operator ") == "replacing the door operator"
    for bad in ("", "  ", "x" * 501):
        with pytest.raises(ValueError, match="reason"):
            suppression.check_reason(bad)
