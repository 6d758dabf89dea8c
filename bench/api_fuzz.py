"""Long schemathesis run against the live API: every operation, every role, many cases; 0 server errors.

Migrates a fresh PostgreSQL schema, seeds the test world (two firms, incidents, a token per
role), serves the API in this process (no Kafka) and sends schemathesis' valid and invalid cases
over HTTP (tests/fixtures/fuzz.py). Prints the number of cases tried, the answers by status and
every operation that answered 5xx or dropped the connection. CI runs the same with a few cases
per operation (tests/integration/api/test_bad_input.py).

    .venv/bin/python bench/api_fuzz.py                 # 100 cases per operation, mode and role
    .venv/bin/python bench/api_fuzz.py --examples 500  # longer
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the seeded world and the fuzz driver are the tests' own

from liftwatch import db  # noqa: E402
from liftwatch.config import ApiSettings  # noqa: E402
from liftwatch.launcher import services  # noqa: E402

from tests.fixtures.api import running_api, seed_world  # noqa: E402
from tests.fixtures.fuzz import fuzz_api  # noqa: E402
from tests.fixtures.services import schema_url  # noqa: E402

ROLES = ("admin", "operator", "maintainer", "regulator")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation, mode and role")
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run (default: random)")
    parser.add_argument("--database-url", default=None, help="default: the local PostgreSQL on 127.0.0.1:5432")
    args = parser.parse_args()
    args.database_url = args.database_url or services.local_postgres_url()
    if args.database_url is None:
        sys.exit("no PostgreSQL on 127.0.0.1:5432: pass --database-url")
    schema = f"fuzz_{secrets.token_hex(4)}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        url = schema_url(args.database_url, schema)
        with psycopg.connect(url) as conn:
            db.migrate(conn)
        world = seed_world(url)
        settings = ApiSettings(
            database_url=url, kafka_bootstrap=None, mqtt_url=None, api_port=services.free_port(), log_level="ERROR"
        )
        with running_api(settings) as api:
            report = fuzz_api(
                api.url, {role: world.tokens[role] for role in ROLES}, max_examples=args.examples, seed=args.seed
            )
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    print(f"cases tried: {report.cases} in {report.seconds:.1f} s ({report.cases / report.seconds:.0f}/s)")
    print("answers:", ", ".join(f"{status}: {count}" for status, count in sorted(report.by_status.items())))
    print(f"server errors or dropped connections: {len(report.failures)} operations")
    for (role, method, path, outcome), example in sorted(report.failures.items()):
        print(f"  {role} {method} {path} -> {outcome}: {example[:300]}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
