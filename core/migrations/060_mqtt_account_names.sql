-- Service account names contain a dot, which no terminal id can (terminals' own check), so the
-- broker's password file never gets one user twice (liftwatch.ingest.credentials). NOT VALID:
-- accounts named before the rule keep working until replaced; the export refuses a collision.
ALTER TABLE mqtt_accounts ADD CONSTRAINT mqtt_accounts_not_a_terminal_id
    CHECK (username ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$' AND length(username) <= 64) NOT VALID;
