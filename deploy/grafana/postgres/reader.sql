-- A read-only PostgreSQL role for Grafana's datasource (psql variables: reader, reader_password,
-- owner, schema). Run once, by deploy/grafana/postgres/reader.sh when the database is created.
--
-- Dashboard variables are pasted into the panels' SQL by Grafana; with this role, whatever a
-- viewer puts in a URL can at worst read, never write or lock (read-only transactions, a time limit).
-- Tables created later by the owner (every migration) are readable too (default privileges).
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password';
GRANT USAGE ON SCHEMA :"schema" TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema" GRANT SELECT ON TABLES TO :"reader";
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
