"""uv.lock records exactly what pyproject.toml asks for: dev.py installs only from the lock.

`uv sync --locked` refuses a stale lock too; this catches it in the suite, without uv or a network.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
FIX = "pyproject.toml and uv.lock disagree: run `python3 dev.py lock` and commit uv.lock"

Key = tuple[str, frozenset[str], str]  # (package, its extras, the liftwatch extra that asks for it or "")


def _asked(requirements: list[str], extra: str) -> dict[Key, SpecifierSet]:
    asked = {}
    for text in requirements:
        req = Requirement(text)
        asked[(canonicalize_name(req.name), frozenset(req.extras), extra)] = req.specifier
    return asked


def _recorded(entry: dict[str, Any]) -> tuple[Key, SpecifierSet]:
    extra = re.search(r"extra == '([^']+)'", entry.get("marker", ""))
    key = (canonicalize_name(entry["name"]), frozenset(entry.get("extras", ())), extra.group(1) if extra else "")
    return key, SpecifierSet(entry.get("specifier", ""))


def test_the_lock_was_made_from_the_dependencies_of_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    project = pyproject["project"]
    asked = _asked(project["dependencies"], "")
    for extra, requirements in project.get("optional-dependencies", {}).items():
        asked |= _asked(requirements, extra)
    (liftwatch,) = (package for package in lock["package"] if package["name"] == project["name"])
    recorded = dict(_recorded(entry) for entry in liftwatch["metadata"]["requires-dist"])
    assert recorded == asked, FIX


def test_the_lock_pins_the_setuptools_that_builds_liftwatch() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    asked = {
        canonicalize_name(r.name): r.specifier
        for r in map(Requirement, pyproject["tool"]["uv"]["build-constraint-dependencies"])
    }
    recorded = {
        canonicalize_name(c["name"]): SpecifierSet(c["specifier"]) for c in lock["manifest"]["build-constraints"]
    }
    assert recorded == asked, FIX


def test_the_image_installs_the_lock_too() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = " ".join(re.findall(r"^COPY (.+)$", dockerfile, re.M))
    assert "uv.lock" in copied and "requirements-uv.txt" in copied
    assert "uv sync --locked" in dockerfile and "pip install --no-cache-dir ." not in dockerfile
