"""`liftwatch dashboards push` talks to Grafana's HTTP API (a local recording server stands in)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from liftwatch.launcher.cli import app
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


class _Recorder(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, str | None, Any]]] = []
    folders: ClassVar[set[str]] = set()

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.calls.append((self.command, self.path, self.headers.get("Authorization"), body))
        return body

    def do_GET(self) -> None:
        self._record()
        uid = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/api/folders/") and uid in self.folders:
            self._answer(200, {"uid": uid})
        else:
            self._answer(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/api/folders":
            self.folders.add(body["uid"])
            self._answer(200, {"uid": body["uid"], "title": body["title"]})
        elif self.path == "/api/dashboards/db":
            if self.headers.get("Authorization") != "Bearer glsa_test":
                self._answer(401, {"message": "invalid API key"})
                return
            self._answer(200, {"status": "success", "uid": body["dashboard"]["uid"], "version": 1})
        else:
            self._answer(404, {"message": "not found"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[str]:
    _Recorder.calls = []
    _Recorder.folders = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_push_creates_the_folder_once_and_upserts_every_dashboard(grafana: str) -> None:
    for _ in range(2):
        result = CliRunner().invoke(app, ["dashboards", "push", "--url", grafana, "--token", "glsa_test"])
        assert result.exit_code == 0, result.output
    assert "liftwatch-live" in result.output and "liftwatch-regulator" in result.output
    posts = [(path, body) for method, path, _, body in _Recorder.calls if method == "POST"]
    assert [p for p, _ in posts].count("/api/folders") == 1
    uploads = [body for path, body in posts if path == "/api/dashboards/db"]
    assert len(uploads) == 4
    assert all(u["overwrite"] and u["folderUid"] == "liftwatch" and u["dashboard"]["id"] is None for u in uploads)
    assert all(auth == "Bearer glsa_test" for _, _, auth, _ in _Recorder.calls)


def test_push_with_a_bad_token_fails_clearly(grafana: str) -> None:
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", grafana, "--token", "wrong"])
    assert result.exit_code == 1
    assert "grafana refused" in result.output
