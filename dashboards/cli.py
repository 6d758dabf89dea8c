"""``liftwatch dashboards``: upload the repository's Grafana dashboards to a Grafana server."""

from __future__ import annotations

from typing import Annotated

import typer
from grafana_client.client import GrafanaException
from liftwatch.dashboards.library import FOLDER_UID, push

app = typer.Typer(help="Grafana dashboards kept as code.", no_args_is_help=True)


@app.command("push")
def push_command(
    url: Annotated[str, typer.Option(help="Grafana base URL, e.g. http://grafana:3000.")],
    token: Annotated[str, typer.Option(help="Service-account token (Editor).", envvar="LIFTWATCH_GRAFANA_TOKEN")],
    folder: Annotated[str, typer.Option(help="Folder uid (created if missing).")] = FOLDER_UID,
) -> None:
    """Create or update every dashboard in the folder."""
    try:
        pushed = push(url, token, folder_uid=folder)
    except GrafanaException as error:
        typer.echo(f"grafana refused: {error}", err=True)
        raise typer.Exit(1) from error
    for item in pushed:
        typer.echo(f"{item.uid}: {item.title} ({item.status})")
