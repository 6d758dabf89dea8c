"""The migration plan: both storage variants cover the same versions, in order, within their ranges."""

from __future__ import annotations

from liftwatch import db


def test_both_storage_variants_plan_the_same_versions_in_order() -> None:
    plain = db.planned_migrations(use_timescale=False)
    timescale = db.planned_migrations(use_timescale=True)
    versions = [m.version for m in plain]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert [m.version for m in timescale] == versions
    assert all(len(v) == 3 and v.isdigit() for v in versions)
    for ours, theirs in zip(plain, timescale, strict=True):
        if ours.name != theirs.name:  # a version with variants: each side takes its own
            assert ours.name.endswith(".plain.sql") and theirs.name.endswith(".timescale.sql")
