"""dev.py keeps .venv equal to uv.lock: it re-syncs exactly when the lock (or pyproject.toml) changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, list[tuple[str, ...]]]:
    spec = importlib.util.spec_from_file_location("dev_under_test", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / ".venv").mkdir()
    (tmp_path / "uv.lock").write_text("lock 1")
    (tmp_path / "pyproject.toml").write_text("[project]")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "LOCK", tmp_path / "uv.lock")
    monkeypatch.setattr(module, "STAMP", tmp_path / ".venv" / ".liftwatch-installed")
    monkeypatch.setattr(module, "ensure_uv", lambda: "uv")
    monkeypatch.setattr(module, "check_lock", lambda: None)
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(module, "run", lambda *cmd, **kwargs: calls.append(tuple(map(str, cmd))))
    return module, calls


def test_the_venv_is_synced_once_per_lock_and_again_when_it_changes(
    dev: tuple[ModuleType, list[tuple[str, ...]]],
) -> None:
    module, calls = dev
    module.install("dev")
    assert calls == [("uv", "sync", "--locked", "--extra", "dev")]
    module.install("dev")
    assert len(calls) == 1, "nothing changed: no sync"
    module.LOCK.write_text("lock 2")
    module.install("dev")
    assert len(calls) == 2, "uv.lock changed: synced again"
    (module.ROOT / "pyproject.toml").write_text("[project]\n# changed")
    module.install("dev")
    assert len(calls) == 3, "pyproject.toml changed: synced (and checked against the lock) again"


def test_demo_after_test_keeps_the_dev_extras_and_test_after_demo_adds_them(
    dev: tuple[ModuleType, list[tuple[str, ...]]],
) -> None:
    module, calls = dev
    module.install("dev")
    module.install("")
    assert calls == [("uv", "sync", "--locked", "--extra", "dev")]
    module.STAMP.unlink()
    module.install("")
    module.install("dev")
    assert calls[1:] == [("uv", "sync", "--locked"), ("uv", "sync", "--locked", "--extra", "dev")]
