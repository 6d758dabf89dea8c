"""The production stack files: what can be checked without Docker is checked here."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from liftwatch.config import PlatformSettings
from liftwatch.dashboards.library import POSTGRES_UID, PROMETHEUS_UID
from liftwatch.ingest.credentials import is_account_name
from liftwatch.launcher.cli import app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROMTOOL = Path("/usr/bin/promtool")
LIFTWATCH_PROCESSES = {"gateway-1", "gateway-2", "writer", "rules", "alerts", "api"}
SCRAPE_JOBS = {"gateway", "writer", "rules", "alerts", "api"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _filled(text: str) -> str:
    """``text`` with every ``${VAR...}`` interpolation replaced by a plain value, as Compose would."""
    return re.sub(r"\$\{[^}]*\}", "value", text)


def _liftwatch_services(compose: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == "liftwatch:latest"}


def _cli_argv(service: dict[str, Any]) -> list[list[str]]:
    """The `liftwatch ...` invocations a service runs."""
    entry = service.get("entrypoint")
    command = service.get("command", [])
    if entry is None:
        return [list(command)]
    return [shlex.split(m) for m in re.findall(r"liftwatch ([a-z][a-z -]*)", " ".join(command))]


def _resolves(argv: list[str]) -> bool:
    command: Any = typer.main.get_command(app)
    for word in argv:
        if word.startswith("-"):
            break
        children = getattr(command, "commands", None)  # a group (typer may vendor its own click)
        if children is None or word not in children:
            return False
        command = children[word]
    return True


def test_stack_has_every_component(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("mosquitto", "kafka", "timescaledb", "prometheus", "grafana", *LIFTWATCH_PROCESSES):
        assert name in services, name
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "KAFKA_ZOOKEEPER_CONNECT" not in kafka
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb")


def test_every_liftwatch_command_is_a_real_cli_command(compose: dict[str, Any]) -> None:
    services = _liftwatch_services(compose)
    assert set(services) >= LIFTWATCH_PROCESSES
    for name, service in services.items():
        invocations = _cli_argv(service)
        assert invocations and all(invocations), name
        for argv in invocations:
            assert _resolves(argv), f"{name}: `liftwatch {' '.join(argv)}` is not a command"


def test_liftwatch_environment_names_real_settings(compose: dict[str, Any]) -> None:
    fields = {f"LIFTWATCH_{name.upper()}" for name in PlatformSettings.model_fields}
    for name, service in _liftwatch_services(compose).items():
        env = service["environment"]
        assert set(k for k in env if k.startswith("LIFTWATCH_")) <= fields, name
        assert env["LIFTWATCH_KAFKA_IDEMPOTENT"] == "true"
        if name in LIFTWATCH_PROCESSES:
            assert "healthcheck" in service and not service["healthcheck"].get("disable"), name


def test_consumer_group_stages_scale_and_gateways_keep_their_sessions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("rules", "writer", "alerts"):
        assert "container_name" not in services[name] and "ports" not in services[name], f"{name} cannot be --scale'd"
    gateways = {name: s for name, s in services.items() if s.get("command") == ["gateway"]}
    assert len(gateways) >= 2
    # The broker uses the account as client id: each gateway needs its own account (its own session).
    accounts = [urlsplit(_filled(s["environment"]["LIFTWATCH_MQTT_URL"])).username for s in gateways.values()]
    assert all(map(is_account_name, accounts)) and len(set(accounts)) == len(accounts), accounts
    for service in gateways.values():
        assert "LIFTWATCH_GATEWAY_CLIENT_ID" not in service["environment"]
        assert "gateway" in service["networks"]["default"]["aliases"]  # what Prometheus resolves
    # Anything else logging in with a gateway's account would take its session over (the API's
    # health check connects every 15 s): only gateways carry broker credentials.
    for name, service in _liftwatch_services(compose).items():
        url = (service.get("environment") or {}).get("LIFTWATCH_MQTT_URL")
        if name not in gateways and url is not None:
            assert urlsplit(_filled(url)).username is None, name


def test_every_referenced_file_exists(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in named, f"{name}: undeclared volume {source}"
    for source in re.findall(r"^COPY (\S+)", (ROOT / "Dockerfile").read_text(), re.M):
        assert (ROOT / source).exists(), source
    mosquitto = " ".join(compose["services"]["mosquitto"]["volumes"])
    for path in ("deploy/mosquitto/mosquitto.conf", "deploy/mosquitto/acl", "deploy/mosquitto/passwd"):
        assert path in mosquitto


def test_grafana_provisioning_matches_the_dashboards(compose: dict[str, Any]) -> None:
    sources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/liftwatch.yaml").read_text())
    assert {d["uid"] for d in sources["datasources"]} == {POSTGRES_UID, PROMETHEUS_UID}
    # Grafana reads PostgreSQL as the read-only role the database hook creates, not as the owner.
    postgres = next(d for d in sources["datasources"] if d["uid"] == POSTGRES_UID)
    owner = compose["services"]["timescaledb"]["environment"]["POSTGRES_USER"]
    assert postgres["user"] == "grafana" != owner
    hooks = " ".join(compose["services"]["timescaledb"]["volumes"])
    assert "deploy/grafana/postgres/reader.sh:/docker-entrypoint-initdb.d/" in hooks
    assert "GRAFANA_DB_PASSWORD" in compose["services"]["grafana"]["environment"]
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/liftwatch.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]


def test_prometheus_scrapes_every_process_and_promtool_accepts_it() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} >= SCRAPE_JOBS
    assert PROMTOOL.exists(), "install the Debian package prometheus (python3 dev.py test does)"
    result = subprocess.run(
        [str(PROMTOOL), "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_has_every_package_and_the_runtime_system_packages() -> None:
    """The Dockerfile copies every folder pyproject maps into liftwatch, and installs the font the
    Chinese PDF embeds and the time-zone data the site-local months need."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, re.M))
    assert folders <= copied, folders - copied
    installs = " ".join(re.findall(r"apt-get install [^&]*", dockerfile))
    assert "fonts-wqy-microhei" in installs and "tzdata" in installs


def test_dependencies_exist_and_wait_on_real_health_checks(compose: dict[str, Any]) -> None:
    """`depends_on` names services of the file; `service_healthy` only on services with a health
    check (Compose would otherwise refuse the file); the infrastructure all has one."""
    services = compose["services"]
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                check = services[target].get("healthcheck")
                assert check and not check.get("disable"), f"{name} waits for {target}, which has no health check"
            elif rule["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once to complete"
    for name in ("mosquitto", "kafka", "timescaledb", "prometheus", "grafana"):
        assert "test" in services[name]["healthcheck"], name


def test_secrets_have_no_defaults_and_env_example_lists_them(compose: dict[str, Any]) -> None:
    """Compose refuses to start without each secret (`${VAR:?}`), and .env.example names exactly the
    variables it requires."""
    text = (ROOT / "compose.yaml").read_text()
    interpolations = re.findall(r"\$\{([A-Z0-9_]+)(:?[-?])?", text)
    secrets = {name for name, _ in interpolations if re.search(r"PASSWORD|TOKEN|SECRET|KEY", name)}
    assert {"POSTGRES_PASSWORD", "GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "LIFTWATCH_ADMIN_TOKEN"} <= secrets
    # The key of the past, during a rotation only: empty (none) is its normal value, not a weak default.
    optional = {"LIFTWATCH_SECRETS_KEY_PREVIOUS"}
    for name, operator in interpolations:
        if name in secrets - optional:
            assert operator == ":?", f"{name} must be required (:?), not defaulted"
        elif name in optional:
            assert text.count(f"${{{name}:-}}") == text.count(f"${{{name}"), f"{name} defaults to empty only"
    required = {name for name, operator in interpolations if operator == ":?"} | optional
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    assert listed == required, listed ^ required
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_only_the_https_proxy_and_the_mqtt_tls_listener_are_published(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert published == {"proxy": ["443:443", "80:80"], "mosquitto": ["8883:8883"]}
    mosquitto_conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert (
        "\nlistener 8883\n" in mosquitto_conf
        and "./deploy/tls/mqtt:/mosquitto/certs:ro" in (services["mosquitto"]["volumes"])
    )
    # The proxy reaches the API and Grafana where they listen, and the API marks its cookie Secure.
    caddyfile = (ROOT / "deploy/caddy/Caddyfile").read_text()
    api = services["api"]["environment"]
    assert f"reverse_proxy api:{api['LIFTWATCH_API_PORT']}" in caddyfile
    assert "reverse_proxy grafana:3000" in caddyfile
    assert api["LIFTWATCH_API_COOKIE_SECURE"] == "true"
    assert "ports" not in services["api"] and api["FORWARDED_ALLOW_IPS"] == "*"  # only the proxy reaches it
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true" and grafana["GF_SERVER_ROOT_URL"].endswith("/grafana/")
    proxy_volumes = services["proxy"]["volumes"]
    assert "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy_volumes
    assert "./deploy/tls/https:/etc/liftwatch/tls:ro" in proxy_volumes


def test_every_listener_ties_sessions_to_accounts() -> None:
    """use_username_as_clientid is a listener option: a listener without it would reopen the takeover."""
    text = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    blocks = "\n".join(lines).split("listener ")[1:]
    assert len(blocks) == 2
    for block in blocks:
        assert "\nuse_username_as_clientid true\n" in block, block
