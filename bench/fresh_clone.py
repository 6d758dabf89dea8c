#!/usr/bin/env python3
"""What a newcomer gets: clone into a temporary folder, run the README's two commands, time them.

    python3 bench/fresh_clone.py                # demo until /healthz answers, stop it, then the whole suite
    python3 bench/fresh_clone.py --quick        # ... then only tests/unit
    python3 bench/fresh_clone.py --cold-cache   # also with an empty uv cache: every wheel from PyPI
    python3 bench/fresh_clone.py --ci           # ... then `bash .ci/run` (CI=true) instead of the test command
    python3 bench/fresh_clone.py -- -k contract # pytest arguments after --

Clones this checkout's committed HEAD (uncommitted changes are not in it), with no .venv, runs
``python3 dev.py demo`` until its API answers ``/healthz`` (on a free port), stops it with SIGINT
and requires exit status 0, then runs ``python3 dev.py test`` and prints how long each took. Needs
nothing but Python 3.11 and git, like dev.py. Exits non-zero when either command fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A fresh install (uv, ~80 wheels, the editable build) plus embedded PostgreSQL, Kafka and MQTT
# starting from nothing: generous, since the machine may be shared.
DEMO_TIMEOUT_S = 600
# SIGINT stops every service and the embedded brokers; they each get a few seconds.
STOP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clone(dest: Path) -> str:
    """Clone ROOT's committed HEAD into dest; returns the commit."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", commit], check=True)
    # The shared contract lives beside the checkout; the docs test reads it from there.
    shared = ROOT.parent / "shared"
    if shared.is_dir() and not (dest.parent / "shared").exists():
        (dest.parent / "shared").symlink_to(shared)
    return commit


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def run_demo(checkout: Path, env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Start the demo, wait for /healthz, SIGINT it: (seconds to healthy, seconds to stop, exit status)."""
    port = free_port()
    env = {**env, "LIFTWATCH_API_PORT": str(port), "LIFTWATCH_API_HOST": "127.0.0.1"}
    url = f"http://127.0.0.1:{port}/healthz"
    start = time.monotonic()
    with log.open("wb") as out:
        # dev.py execs liftwatch, so this process is the demo itself once installed.
        demo = subprocess.Popen(
            [sys.executable, "dev.py", "demo", "--elevators", "50"],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            while not healthy(url):
                if demo.poll() is not None:
                    raise SystemExit(f"the demo exited with {demo.returncode} before answering; see {log}")
                if time.monotonic() - start > DEMO_TIMEOUT_S:
                    raise SystemExit(f"the demo did not answer {url} within {DEMO_TIMEOUT_S} s; see {log}")
                time.sleep(1)
            up_s = time.monotonic() - start
            stopping = time.monotonic()
            demo.send_signal(signal.SIGINT)
            status = demo.wait(timeout=STOP_TIMEOUT_S)
            return up_s, time.monotonic() - stopping, status
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()


def run_tests(checkout: Path, env: dict[str, str], log: Path, command: list[str]) -> tuple[float, int, str]:
    """The test command: (seconds, exit status, its last line: pytest's summary)."""
    start = time.monotonic()
    with log.open("wb") as out:
        status = subprocess.run(
            command,
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        ).returncode
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return time.monotonic() - start, status, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="run only tests/unit after the demo")
    parser.add_argument("--cold-cache", action="store_true", help="an empty uv cache: download every wheel")
    parser.add_argument("--ci", action="store_true", help="run `bash .ci/run` with CI=true instead of dev.py test")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, .venv)")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args()
    pytest_args = args.pytest_args or (["tests/unit"] if args.quick else [])

    work = Path(tempfile.mkdtemp(prefix="liftwatch-fresh-"))
    checkout = work / "liftwatch"
    # The caller's environment, less what would make the clone use another install or settings.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("LIFTWATCH_")}
    if args.cold_cache:
        env["UV_CACHE_DIR"] = str(work / "uv-cache")
    failed = False
    try:
        commit = clone(checkout)
        print(f"fresh clone of {commit[:12]} in {checkout}", flush=True)
        up_s, stop_s, demo_status = run_demo(checkout, env, work / "demo.log")
        print(f"demo: /healthz answered {up_s:.0f} s after `python3 dev.py demo` (install included); "
              f"SIGINT stopped it in {stop_s:.1f} s with exit status {demo_status}", flush=True)  # fmt: skip
        failed |= demo_status != 0
        command = ["bash", ".ci/run"] if args.ci else [sys.executable, "dev.py", "test", *pytest_args]
        test_env = {**env, "CI": "true"} if args.ci else env
        test_s, test_status, summary = run_tests(checkout, test_env, work / "test.log", command)
        what = "bash .ci/run" if args.ci else " ".join(["python3 dev.py test", *pytest_args])
        print(f"test: `{what}` took {test_s:.0f} s, exit status {test_status}: {summary}", flush=True)
        failed |= test_status != 0
    except BaseException:
        failed = True
        raise
    finally:
        if args.keep or failed:
            print(f"kept {work} (demo.log, test.log)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
