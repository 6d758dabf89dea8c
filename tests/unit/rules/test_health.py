"""The late share over the engine's last five minutes."""

from liftwatch.rules.health import LateShare


def test_late_share_counts_the_window_only() -> None:
    share = LateShare(window_s=300)
    assert share.share(0) == 0.0
    share.record(0, late=10, evaluated=990)
    share.record(100, late=0, evaluated=1000)
    assert share.share(100) == 10 / 2000
    assert share.share(301) == 0.0  # the late batch left the window
    share.record(401, late=5, evaluated=0)
    assert share.share(401) == 1.0
