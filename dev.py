#!/usr/bin/env python3
"""The two commands of the README, needing nothing but Python 3.11.

    python3 dev.py demo   # install, then run the platform with a simulated fleet
    python3 dev.py test   # install, then run the whole test suite
    python3 dev.py check  # lock up to date, format check, lint, types, tests (what CI runs)
    python3 dev.py typecheck  # mypy strict only
    python3 dev.py lock   # update uv.lock after editing pyproject.toml's dependencies
                          # (extra arguments go to `uv lock`, e.g. --upgrade-package msgspec;
                          # `lock --uv VERSION` moves the pinned uv itself)

Installs exactly the versions of uv.lock into ./.venv (re-synced when uv.lock or pyproject.toml
changes) with a uv pinned by hash in requirements-uv.txt, itself installed from PyPI into
./.venv-tools. Services that are not running are started by liftwatch itself (see
docs/operations.md); docs/dependencies.md says why uv and how the lock is kept.
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
LOCK = ROOT / "uv.lock"
# uv itself, pinned with the hashes of all its wheels; lives in its own venv so that
# `uv sync` (which removes what the lock does not list) never uninstalls it.
UV_REQUIREMENTS = ROOT / "requirements-uv.txt"
TOOLS = ROOT / ".venv-tools"
UV = TOOLS / "bin" / "uv"
UV_STAMP = TOOLS / ".liftwatch-uv"


STALE_LOCK = "uv.lock does not match pyproject.toml: run `python3 dev.py lock` and commit uv.lock"


def run(*cmd: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def digest(*paths: Path) -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in paths)).hexdigest()


def uv_env() -> dict[str, str]:
    """uv runs the Python that runs dev.py (never one it downloads) and syncs ./.venv."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # another active venv is not ours
    return {**env, "UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never", "UV_PROJECT_ENVIRONMENT": str(VENV)}


def ensure_uv() -> Path:
    """Install the uv of requirements-uv.txt (wheels only, hashes checked) unless it is there."""
    if sys.version_info < (3, 11):
        sys.exit("liftwatch needs Python 3.11 or newer")
    wanted = digest(UV_REQUIREMENTS)
    if UV.exists() and UV_STAMP.exists() and UV_STAMP.read_text() == wanted:
        return UV
    if TOOLS.exists():
        shutil.rmtree(TOOLS)
    venv.EnvBuilder(with_pip=True).create(TOOLS)
    pip = (TOOLS / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    run(*pip, "--require-hashes", "--only-binary=:all:", "--no-deps", "-r", UV_REQUIREMENTS)
    UV_STAMP.write_text(wanted)
    return UV


def install(extras: str) -> None:
    """Make ./.venv exactly uv.lock (plus `extras`), liftwatch itself editable; a no-op when it is."""
    wanted = digest(LOCK, ROOT / "pyproject.toml")
    if STAMP.exists():
        installed, _, installed_extras = STAMP.read_text().partition("\n")
        # demo after test keeps the dev extras rather than removing them and re-adding them next time
        if installed == wanted and (not extras or extras in installed_extras.split()):
            return
    # --locked: stop, rather than resolve anew, when pyproject.toml changed and uv.lock did not
    check_lock()
    run(ensure_uv(), "sync", "--locked", *(("--extra", extras) if extras else ()), env=uv_env())
    STAMP.write_text(f"{wanted}\n{extras}")


def check_lock() -> None:
    """Stop with the fix when uv.lock no longer satisfies pyproject.toml (no network needed)."""
    try:
        run(ensure_uv(), "lock", "--check", "--offline", "--quiet", env=uv_env())
    except subprocess.CalledProcessError:
        sys.exit(STALE_LOCK)


def lock(args: list[str]) -> None:
    """`uv lock` with our uv and Python; `--uv VERSION` first re-pins uv itself."""
    if args[:1] == ["--uv"] and len(args) >= 2:
        version, args = args[1], args[2:]
        pin = subprocess.run(
            [ensure_uv(), "pip", "compile", "--generate-hashes", "--universal", "--no-header", "--quiet", "-"],
            input=f"uv=={version}\n",
            capture_output=True,
            text=True,
            check=True,
            env=uv_env(),
        ).stdout
        UV_REQUIREMENTS.write_text(
            "# The uv that dev.py installs: `python3 dev.py lock --uv VERSION` rewrites it.\n" + pin
        )
    run(ensure_uv(), "lock", *args, env=uv_env())


# Debian packages liftwatch runs with when no broker is configured: the embedded MQTT broker is
# mosquitto (MQTT 5 is required: receive-maximum back-pressure, shared subscriptions; no
# pure-Python broker on PyPI implements it with QoS 1, see docs/operations.md).
RUNTIME_SYSTEM_PACKAGES = {"mosquitto": "/usr/sbin/mosquitto"}
# ... and the test suite drives these for real too: the console runs in chromium (with a CJK font
# so Chinese renders), promtool validates the production Prometheus config, caddy serves the
# production HTTPS proxy config.
TEST_SYSTEM_PACKAGES = {
    **RUNTIME_SYSTEM_PACKAGES,
    "chromium": "/usr/bin/chromium",
    "fonts-noto-cjk": "/usr/share/fonts/opentype/noto",
    "prometheus": "/usr/bin/promtool",
    "caddy": "/usr/bin/caddy",  # the HTTPS proxy test runs deploy/caddy/Caddyfile
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


PACKAGE_DIRS = {"ingest", "rules", "alerts", "api", "simulators", "dashboards", "reports", "registry", "launcher"}


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


# Test processes of the whole suite (pytest-xdist). Most integration tests wait on brokers, the
# database or a browser rather than compute, so three workers keep two cores busy: the suite runs
# in about half the time of one. Each worker has its own brokers and database (the fixtures isolate
# every test anyway). LIFTWATCH_TEST_WORKERS=0 runs in one process; `-n` on the command line wins.
TEST_WORKERS = 3


def test_workers(args: list[str]) -> list[str]:
    """The pytest-xdist arguments for a run of ``args`` (none when the caller chose, or asked for 0)."""
    if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args):
        return []
    workers = int(os.environ.get("LIFTWATCH_TEST_WORKERS", TEST_WORKERS))
    return ["-n", str(workers)] if workers > 0 else []


def main() -> None:
    try:
        dispatch()
    except subprocess.CalledProcessError as failed:
        sys.exit(f"dev.py: {' '.join(map(str, failed.cmd))} exited with {failed.returncode}")


def dispatch() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if command == "lock":
        lock(rest)
    elif command == "demo":
        install("")
        ensure_system_packages(RUNTIME_SYSTEM_PACKAGES)
        os.execv(BIN / "liftwatch", [str(BIN / "liftwatch"), "demo", *rest])
    elif command == "test":
        install("dev")
        ensure_system_packages(TEST_SYSTEM_PACKAGES)
        os.execv(BIN / "python", [str(BIN / "python"), "-m", "pytest", "-q", *test_workers(rest), *rest])
    elif command == "typecheck":
        install("dev")
        typecheck()
    elif command == "check":
        # the lock first: a stale one means the suite below would not test what pyproject.toml says
        check_lock()
        install("dev")
        ensure_system_packages(TEST_SYSTEM_PACKAGES)
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "ruff", "check", ".")
        typecheck()
        # the slowest tests in CI's log: the whole run must stay under 10 minutes on 2 cores
        os.execv(
            BIN / "python", [str(BIN / "python"), "-m", "pytest", "-q", "--durations=15", *test_workers(rest), *rest]
        )
    else:
        print(__doc__)


if __name__ == "__main__":
    main()
