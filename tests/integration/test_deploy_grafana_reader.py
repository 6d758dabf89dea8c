"""Grafana's PostgreSQL role (deploy/grafana/postgres/reader.sql) runs every panel and writes nothing.

The SQL runs as the compose hook runs it (before the migrations, so the default privileges must
cover tables created afterwards), with psql's ``:"identifier"`` / ``:'literal'`` variables filled
in the same way; then every PostgreSQL panel of the dashboards runs logged in as that role.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from liftwatch import db
from liftwatch.reports import rollup
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.fixtures.reports import MONTH, build_fleet
from tests.integration.test_dashboards_sql import END, _queries, grafana_sql

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def psql_script(path: Path, variables: dict[str, str]) -> list[sql.Composed]:
    """The statements of a psql script with its variables substituted as psql does."""
    statements = []
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("--"))
    for statement in filter(None, (s.strip() for s in text.split(";"))):
        parts = re.split(r"""(:"\w+"|:'\w+')""", statement)
        pieces: list[sql.Composable] = []
        for part in parts:
            if part.startswith(':"'):
                pieces.append(sql.Identifier(variables[part[2:-1]]))
            elif part.startswith(":'"):
                pieces.append(sql.Literal(variables[part[2:-1]]))
            else:
                pieces.append(sql.SQL(part))
        statements.append(sql.Composed(pieces))
    return statements


def test_grafana_reader_runs_every_panel_and_cannot_write(empty_database_url: str) -> None:
    schema = parse_qs(urlsplit(empty_database_url).query)["options"][0].removeprefix("-csearch_path=")
    reader, password = f"grafana_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with psycopg.connect(empty_database_url, autocommit=True) as admin:
        owner = admin.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
        variables = {"reader": reader, "reader_password": password, "owner": owner, "schema": schema}
        try:
            for statement in psql_script(ROOT / "deploy/grafana/postgres/reader.sql", variables):
                admin.execute(statement)
            with psycopg.connect(empty_database_url) as conn:
                db.migrate(conn)
            build_fleet(empty_database_url)
            with psycopg.connect(empty_database_url, autocommit=True) as conn:
                rollup.refresh_month(conn, MONTH, "Asia/Shanghai", END)

            params = conninfo_to_dict(empty_database_url)
            as_reader = make_conninfo(**{**params, "user": reader, "password": password})  # type: ignore[arg-type]
            with psycopg.connect(as_reader, autocommit=True) as grafana:
                for uid, title, raw in _queries():
                    query = grafana_sql(raw, {"month": "2026-03", "district": "Xuhui"})
                    try:
                        grafana.execute(query.encode()).fetchall()
                    except psycopg.Error as error:
                        pytest.fail(f"{uid} / {title} as the Grafana role: {error}")
                # What a crafted dashboard variable could try: refused, read-only and no write grant.
                with pytest.raises((psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
                    grafana.execute("UPDATE incidents SET status = 'closed'")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    grafana.execute("SET default_transaction_read_only = off")
                    grafana.execute("DELETE FROM report_months")
        finally:
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (reader,)).fetchone():
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(reader)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(reader)))
