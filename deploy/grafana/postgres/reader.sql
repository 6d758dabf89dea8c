-- Grafana's PostgreSQL login role (psql variables: reader, reader_password, owner, schema). Run by
-- deploy/grafana/postgres/reader.sh when the database is created; run it again on an existing
-- database to create, repair or tighten the role (it is idempotent).
--
-- The role reads only what the group role liftwatch_dashboards may read: the registry without
-- secrets and the report rollups, granted by migration 061 (core/migrations/). No table is granted
-- to the login role itself and no default privilege makes future tables readable: a new table
-- holding a secret stays the owner's. Dashboard variables are pasted into the panels' SQL by
-- Grafana, so whatever a viewer puts in a URL can at worst read those, never write or lock
-- (read-only transactions, a time limit).

-- Also created by migration 061, whichever runs first.
DO $$
BEGIN
    CREATE ROLE liftwatch_dashboards NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

SELECT format('CREATE ROLE %I', :'reader') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec
ALTER ROLE :"reader" LOGIN PASSWORD :'reader_password';
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
GRANT liftwatch_dashboards TO :"reader";

-- What earlier versions of this file granted: every table, present and future.
REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema" REVOKE ALL ON TABLES FROM :"reader";
