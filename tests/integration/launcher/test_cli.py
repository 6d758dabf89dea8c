"""`liftwatch demo` as a newcomer runs it: brokers it is not given are started embedded, the banner
tells how to sign in, the console answers, and SIGINT/SIGTERM stop everything cleanly (brokers too)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from liftwatch.launcher import services

pytestmark = pytest.mark.integration


def _wait_for_line(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in the output:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_demo_starts_missing_brokers_serves_the_console_and_stops_cleanly(
    database_url: str, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = services.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIFTWATCH_")},
        "LIFTWATCH_DATABASE_URL": database_url,  # Kafka and MQTT deliberately not configured
        "LIFTWATCH_API_PORT": str(port),
        "LIFTWATCH_STATE_DIR": str(tmp_path / "state"),
    }
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "liftwatch", "demo", "--elevators", "20"], env=env, stdout=out, stderr=out
        )
    try:
        kafka = _wait_for_line(log, r"started kafka \(tansu\) at 127\.0\.0\.1:(\d+)", proc, 60)
        mqtt = _wait_for_line(log, r"started mqtt \(\w+\) at mqtt://127\.0\.0\.1:(\d+)", proc, 60)
        token = _wait_for_line(log, r"operator\s+token\s+(\S+)", proc, 60).group(1)
        assert f"http://127.0.0.1:{port}/" in log.read_text()
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        assert health.json()["checks"] == {"database": "ok", "kafka": "ok", "mqtt": "ok", "late_samples": "ok"}
        assert "<html" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text.lower()
        me = httpx.get(f"http://127.0.0.1:{port}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert me.status_code == 200 and me.json()["role"] == "operator"
    finally:
        proc.send_signal(stop_signal)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    for started in (kafka, mqtt):
        assert not services.port_open("127.0.0.1", int(started.group(1))), "an embedded broker outlived the demo"
    assert "Traceback" not in log.read_text()


def test_without_a_local_server_the_pgserver_wheel_provides_postgresql() -> None:
    """The fresh-machine path of `up`: no PostgreSQL anywhere -> the pgserver wheel, migrated like any other."""
    import psycopg
    from liftwatch import db

    # As root, pgserver runs PostgreSQL as its own user, which must be able to reach the folder
    # (pytest's tmp_path lives under a 0700 directory).
    state = Path(tempfile.mkdtemp(prefix="liftwatch-pgserver-"))
    state.chmod(0o755)
    started = services.start_pgserver(state / "pgdata")
    try:
        with psycopg.connect(started.url) as conn:
            applied = db.migrate(conn)
            assert applied == [m.name for m in db.planned_migrations(use_timescale=False)]
            assert conn.execute("SELECT count(*) FROM elevators").fetchone() == (0,)
    finally:
        started.stop()
        shutil.rmtree(state, ignore_errors=True)
