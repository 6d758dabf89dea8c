"""The HTTPS proxy (deploy/caddy/Caddyfile) as shipped, in front of the real API and a stand-in Grafana.

Caddy runs the shipped file with only its certificate folder, upstream addresses and ports moved
here; its certificate is signed by a throw-away CA.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme
from liftwatch.config import ApiSettings
from liftwatch.launcher import services

from tests.fixtures.api import running_api

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CADDY = Path("/usr/bin/caddy")
ADMIN_TOKEN = "admin-token-for-the-proxy-test"


class _Grafana(BaseHTTPRequestHandler):
    """Stands in for Grafana: answers with the path it was asked for."""

    def do_GET(self) -> None:
        body = f"grafana {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Proxy:
    https: str
    http: str
    ca: trustme.CA

    def client(self, *, trusted: bool = True) -> httpx.Client:
        context = ssl.create_default_context()
        if trusted:
            self.ca.configure_trust(context)
        return httpx.Client(base_url=self.https, verify=context, timeout=10)


@pytest.fixture
def proxy(database_url: str, tmp_path: Path) -> Iterator[Proxy]:
    ca = trustme.CA()
    certs = tmp_path / "tls"
    certs.mkdir()
    server = ca.issue_cert("localhost")
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    for index, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(certs / "server.crt"), append=index > 0)
    grafana = ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    threading.Thread(target=grafana.serve_forever, daemon=True).start()
    api_settings = ApiSettings(
        database_url=database_url,
        kafka_bootstrap=None,
        mqtt_url=None,
        api_port=services.free_port(),
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        api_cookie_secure=True,  # what compose.yaml sets behind the proxy
        log_level="WARNING",
    )
    https_port, http_port = services.free_port(), services.free_port()
    text = (ROOT / "deploy/caddy/Caddyfile").read_text()
    for shipped, here in (
        ("/etc/liftwatch/tls/", f"{certs}/"),
        ("api:8080", f"127.0.0.1:{api_settings.api_port}"),
        ("grafana:3000", f"127.0.0.1:{grafana.server_port}"),
        ("\tadmin off\n", f"\tadmin off\n\thttp_port {http_port}\n\thttps_port {https_port}\n"),
    ):
        assert shipped in text, shipped
        text = text.replace(shipped, here)
    config = tmp_path / "Caddyfile"
    config.write_text(text)
    assert CADDY.exists(), "install the Debian package caddy (python3 dev.py test does)"
    env = {
        **os.environ,
        "LIFTWATCH_HOSTNAME": "localhost",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    with running_api(api_settings):
        process = subprocess.Popen(
            [str(CADDY), "run", "--config", str(config), "--adapter", "caddyfile"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            services.wait_for_port("127.0.0.1", https_port, proc=process)
            services.wait_for_port("127.0.0.1", http_port, proc=process)
            yield Proxy(f"https://localhost:{https_port}", f"http://localhost:{http_port}", ca)
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
            grafana.shutdown()
            grafana.server_close()
    assert b'"level":"error"' not in stderr, stderr.decode()


def test_the_api_and_grafana_are_served_over_https_only(proxy: Proxy) -> None:
    with proxy.client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.headers["strict-transport-security"].startswith("max-age=")
        signed_in = client.post("/api/v1/session", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert signed_in.status_code == 204, signed_in.text
        cookie = signed_in.headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie  # the browser never sends it over plain HTTP
        assert client.get("/grafana/d/liftwatch-live").text == "grafana /grafana/d/liftwatch-live"
    with httpx.Client(timeout=10) as plain:
        redirected = plain.get(f"{proxy.http}/api/v1/me")
    assert redirected.status_code in (301, 308)
    # To the standard port (443, where compose publishes it), whatever port the test moved it to.
    assert redirected.headers["location"] == "https://localhost/api/v1/me"


def test_a_client_without_the_sites_ca_refuses_the_proxy(proxy: Proxy) -> None:
    with proxy.client(trusted=False) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get("/healthz")
