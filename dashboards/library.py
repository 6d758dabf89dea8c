"""The Grafana dashboards kept in this folder as JSON, and their upload to a Grafana server.

``live_operations.json`` (Prometheus + PostgreSQL) and ``regulator_monthly.json`` (PostgreSQL,
reading the report rollup tables) are the source of truth: edit them in Grafana, export, commit.
compose.yaml provisions them from the files; :func:`push` uploads them to any other Grafana.
Datasources are referenced by the fixed uids below, which deploy/grafana provisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

POSTGRES_UID = "liftwatch-postgres"
PROMETHEUS_UID = "liftwatch-prometheus"
FOLDER_UID = "liftwatch"
FOLDER_TITLE = "liftwatch"
DASHBOARD_FILES = ("live_operations.json", "regulator_monthly.json")


def load_dashboards() -> list[dict[str, Any]]:
    """Every dashboard model of this package."""
    base = resources.files("liftwatch.dashboards")
    return [json.loads(base.joinpath(name).read_text(encoding="utf-8")) for name in DASHBOARD_FILES]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, including those nested in rows."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@dataclass(frozen=True, slots=True)
class Pushed:
    uid: str
    title: str
    status: str


def push(url: str, token: str, *, folder_uid: str = FOLDER_UID, timeout: float = 10.0) -> list[Pushed]:
    """Create the folder if needed and upsert every dashboard into it (overwriting older versions)."""
    grafana = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    try:
        grafana.folder.get_folder(folder_uid)
    except GrafanaClientError as error:
        if error.status_code != 404:
            raise
        grafana.folder.create_folder(FOLDER_TITLE, uid=folder_uid)
    results = []
    for dashboard in load_dashboards():
        model = {**dashboard, "id": None}
        answer = grafana.dashboard.update_dashboard(
            {"dashboard": model, "folderUid": folder_uid, "overwrite": True, "message": "liftwatch dashboards push"}
        )
        results.append(Pushed(dashboard["uid"], dashboard["title"], str(answer.get("status", ""))))
    return results
