#!/usr/bin/env python3
"""The two commands of the README, needing nothing but Python 3.11.

    python3 dev.py demo   # install, then run the platform with a simulated fleet
    python3 dev.py test   # install, then run the whole test suite
    python3 dev.py check  # format check, lint, types, tests
    python3 dev.py typecheck  # mypy strict only

Installs into ./.venv (re-installed when pyproject.toml changes). Services that are not
running are started by liftwatch itself (see docs/operations.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".liftwatch-installed"


def run(*cmd: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def install(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("liftwatch needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".[{extras}]" if extras else ".")
    STAMP.write_text(digest)


# Debian packages liftwatch runs with when no broker is configured: the embedded MQTT broker is
# mosquitto (MQTT 5 is required: receive-maximum back-pressure, shared subscriptions; no
# pure-Python broker on PyPI implements it with QoS 1, see docs/operations.md).
RUNTIME_SYSTEM_PACKAGES = {"mosquitto": "/usr/sbin/mosquitto"}
# ... and the test suite drives these for real too: the console runs in chromium (with a CJK font
# so Chinese renders), promtool validates the production Prometheus config.
TEST_SYSTEM_PACKAGES = {
    **RUNTIME_SYSTEM_PACKAGES,
    "chromium": "/usr/bin/chromium",
    "fonts-noto-cjk": "/usr/share/fonts/opentype/noto",
    "prometheus": "/usr/bin/promtool",
    "fonts-wqy-microhei": "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # TrueType CJK for PDF reports
    "poppler-utils": "/usr/bin/pdftoppm",  # the report tests render PDF pages to check the glyphs
}


def ensure_system_packages(packages: dict[str, str]) -> None:
    """Install the missing Debian packages when we may (root with apt-get), else say what is missing."""
    missing = [name for name, path in packages.items() if not Path(path).exists() and not shutil.which(name)]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            run("apt-get", "update", "-qq", env=env)
            run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)
            return
        except subprocess.CalledProcessError:
            pass
    print(f"missing Debian packages (install them, or configure external services): {' '.join(missing)}", flush=True)


PACKAGE_DIRS = {"ingest", "rules", "alerts", "api", "simulators", "dashboards", "reports"}


def typecheck() -> None:
    """mypy strict over the installed layout: core/ is `liftwatch`, the other folders its sub-packages.

    setuptools' editable install maps the folders with an import hook mypy cannot follow, so we
    mirror the layout with symlinks under .typecheck/ (real files, so errors point at sources).
    """
    tree = ROOT / ".typecheck"
    if tree.exists():
        shutil.rmtree(tree)
    package = tree / "liftwatch"
    package.mkdir(parents=True)
    for item in (ROOT / "core").iterdir():
        (package / item.name).symlink_to(item)
    for name in sorted(PACKAGE_DIRS):
        if (ROOT / name).is_dir():
            (package / name).symlink_to(ROOT / name)
    run(BIN / "mypy", "-p", "liftwatch", env={**os.environ, "MYPYPATH": str(tree)})


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if command == "demo":
        install("")
        ensure_system_packages(RUNTIME_SYSTEM_PACKAGES)
        os.execv(BIN / "liftwatch", [str(BIN / "liftwatch"), "demo", *rest])
    elif command == "test":
        install("dev")
        ensure_system_packages(TEST_SYSTEM_PACKAGES)
        os.execv(BIN / "python", [str(BIN / "python"), "-m", "pytest", "-q", *rest])
    elif command == "typecheck":
        install("dev")
        typecheck()
    elif command == "check":
        install("dev")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "ruff", "check", ".")
        typecheck()
        os.execv(BIN / "python", [str(BIN / "python"), "-m", "pytest", "-q", *rest])
    else:
        print(__doc__)


if __name__ == "__main__":
    main()
