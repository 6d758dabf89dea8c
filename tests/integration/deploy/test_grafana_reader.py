"""Grafana's PostgreSQL role (deploy/grafana/postgres/reader.sql) runs every panel, reads no secret, writes nothing.

The SQL runs as the compose hook runs it (before the migrations, which grant the tables to the
role's group, liftwatch_dashboards), with psql's ``:"identifier"`` / ``:'literal'`` variables and
``\\gexec`` handled the same way; then every PostgreSQL panel of the dashboards runs logged in as
that role, and no secret is readable by it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from liftwatch import db
from liftwatch.reports import rollup
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.fixtures.reports import MONTH, build_fleet
from tests.integration.dashboards.test_sql import END, _queries, grafana_sql

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
READER_SQL = ROOT / "deploy/grafana/postgres/reader.sql"
MIGRATION = ROOT / "core/migrations/061_dashboard_reader.sql"


@dataclass(frozen=True)
class PsqlStatement:
    """One statement of a psql script; with ``gexec``, each cell of its result is run in turn (psql's \\gexec)."""

    sql: sql.Composed
    gexec: bool


def psql_script(path: Path, variables: dict[str, str]) -> list[PsqlStatement]:
    """The statements of a psql script with its variables substituted as psql does.

    Statements end at ``;`` or ``\\gexec`` outside dollar quotes (whose bodies psql leaves alone).
    """
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    statements = []
    for chunk, terminator in _split(text):
        parts = re.split(r"""(:"\w+"|:'\w+')""", chunk) if "$$" not in chunk else [chunk]
        pieces: list[sql.Composable] = []
        for part in parts:
            if part.startswith(':"'):
                pieces.append(sql.Identifier(variables[part[2:-1]]))
            elif part.startswith(":'"):
                pieces.append(sql.Literal(variables[part[2:-1]]))
            else:
                pieces.append(sql.SQL(part))
        statements.append(PsqlStatement(sql.Composed(pieces), terminator == "\\gexec"))
    return statements


def _split(text: str) -> list[tuple[str, str]]:
    found, start, quoted = [], 0, False
    for match in re.finditer(r"\$\$|;|\\gexec", text):
        if match.group() == "$$":
            quoted = not quoted
        elif not quoted:
            chunk = text[start : match.start()].strip()
            if chunk:
                found.append((chunk, match.group()))
            start = match.end()
    assert not text[start:].strip(), f"unterminated statement: {text[start:]!r}"
    return found


def run_psql_script(conn: psycopg.Connection[Any], path: Path, variables: dict[str, str]) -> None:
    for statement in psql_script(path, variables):
        rows = conn.execute(statement.sql).fetchall() if statement.gexec else conn.execute(statement.sql)
        if statement.gexec:
            for row in rows:  # type: ignore[union-attr]
                for cell in row:
                    conn.execute(cell.encode())


@dataclass(frozen=True)
class Reader:
    """Grafana's role on a migrated schema with a month of reports: how to log in as it and as the owner."""

    name: str
    url: str
    admin_url: str
    variables: dict[str, str]


@pytest.fixture
def grafana_reader(empty_database_url: str) -> Iterator[Reader]:
    schema = parse_qs(urlsplit(empty_database_url).query)["options"][0].removeprefix("-csearch_path=")
    reader, password = f"grafana_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with psycopg.connect(empty_database_url, autocommit=True) as admin:
        owner = admin.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
        variables = {"reader": reader, "reader_password": password, "owner": owner, "schema": schema}
        try:
            # As compose runs it: the hook when the volume is created, then the migrations.
            run_psql_script(admin, READER_SQL, variables)
            with psycopg.connect(empty_database_url) as conn:
                db.migrate(conn)
            build_fleet(empty_database_url)
            with psycopg.connect(empty_database_url, autocommit=True) as conn:
                rollup.refresh_month(conn, MONTH, "Asia/Shanghai", END)
            params = conninfo_to_dict(empty_database_url)
            as_reader = make_conninfo(**{**params, "user": reader, "password": password})  # type: ignore[arg-type]
            yield Reader(reader, as_reader, empty_database_url, variables)
        finally:
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (reader,)).fetchone():
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(reader)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(reader)))


def test_grafana_reader_runs_every_panel_and_cannot_write(grafana_reader: Reader) -> None:
    with psycopg.connect(grafana_reader.url, autocommit=True) as grafana:
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


# Columns holding a secret or a person's words, and tables Grafana has no business reading.
SECRETS = [
    ("alerts_webhooks", "secret"),
    ("alerts_deliveries", "body"),
    ("api_tokens", "token_hash"),
    ("mqtt_accounts", "password_hash"),
    ("terminals", "mqtt_password_hash"),
    ("incident_events", "note"),
    ("incidents", "evidence"),
    ("dead_letters", "payload"),
]
# What the dashboards may read (migration 061), and nothing else of the schema.
READABLE = {
    "maintenance_firms",
    "use_units",
    "elevators",
    "terminals",
    "incidents",
    "report_months",
    "report_fleet",
    "report_incident_counts",
    "report_entrapments",
    "report_elevator_incidents",
    "report_scope_fleet",
    "report_scope_counts",
    "report_elevator_scope_incidents",
}


def readable_relations(conn: psycopg.Connection[Any], role: str) -> set[str]:
    """Tables and views of the current schema of which ``role`` may read at least one column."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
        " AND c.relkind IN ('r', 'v', 'm', 'p', 'f') AND has_any_column_privilege(%s, c.oid, 'SELECT')",
        (role,),
    ).fetchall()
    return {row[0] for row in rows}


def assert_no_secret_readable(reader: Reader) -> None:
    with psycopg.connect(reader.url, autocommit=True) as grafana:
        for table, column in SECRETS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                grafana.execute(
                    sql.SQL("SELECT {} FROM {} LIMIT 1").format(sql.Identifier(column), sql.Identifier(table))
                )
    with psycopg.connect(reader.admin_url, autocommit=True) as admin:
        assert readable_relations(admin, reader.name) == READABLE


def test_grafana_reader_reads_the_registry_and_reports_but_no_secret(grafana_reader: Reader) -> None:
    assert_no_secret_readable(grafana_reader)


def test_an_older_reader_loses_the_secrets_to_the_migration_and_the_rest_to_reader_sql(grafana_reader: Reader) -> None:
    """Before migration 061, reader.sql granted every table, present and future. The migration takes
    back the tables holding secrets; running reader.sql again takes back the rest."""
    names = grafana_reader.variables
    with psycopg.connect(grafana_reader.admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                sql.Identifier(names["schema"]), sql.Identifier(names["reader"])
            )
        )
        admin.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(names["owner"]), sql.Identifier(names["schema"]), sql.Identifier(names["reader"])
            )
        )
        assert "api_tokens" in readable_relations(admin, grafana_reader.name)
        admin.execute(MIGRATION.read_text().encode())  # what `db migrate` runs, once
        readable = readable_relations(admin, grafana_reader.name)
        assert not readable & {"api_tokens", "alerts_webhooks", "alerts_deliveries", "mqtt_accounts"}
        assert "incident_events" in readable  # until reader.sql runs again
        with psycopg.connect(grafana_reader.url, autocommit=True) as grafana:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                grafana.execute("SELECT mqtt_password_hash FROM terminals")
            grafana.execute("SELECT last_seen_at FROM terminals")  # the dashboards' columns stay
        run_psql_script(admin, READER_SQL, names)
        admin.execute("CREATE TABLE later_secrets (secret text)")  # no default privilege reaches it
    assert_no_secret_readable(grafana_reader)
    with (
        psycopg.connect(grafana_reader.url, autocommit=True) as grafana,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        grafana.execute("SELECT secret FROM later_secrets")
