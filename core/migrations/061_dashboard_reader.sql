-- What Grafana may read: the group role liftwatch_dashboards, granted the registry and the report
-- rollups, and nothing that holds a secret or a person's words (tokens, webhook keys, delivery
-- bodies, broker hashes, incident notes, calls, raw telemetry, dead-letter payloads). Grafana's
-- login role is a member (deploy/grafana/postgres/reader.sql). Grafana pastes dashboard variables
-- into SQL, so whatever a viewer can make it run must find nothing worth reading.
--
-- A later migration adding a table a dashboard reads grants it here too (docs/storage.md).

-- Roles are cluster-wide: another schema or database may have created it already (or be creating
-- it right now: the loser of that race gets unique_violation). An owner without CREATEROLE needs
-- an administrator to create it first (reader.sql does).
DO $$
BEGIN
    CREATE ROLE liftwatch_dashboards NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'liftwatch_dashboards') THEN
        RAISE EXCEPTION 'the role liftwatch_dashboards is missing and % may not create it', current_user
            USING HINT = 'as an administrator: CREATE ROLE liftwatch_dashboards NOLOGIN (or run deploy/grafana/postgres/reader.sql), then migrate again';
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO liftwatch_dashboards', current_schema());
END
$$;

-- The registry without secrets, and the regulators' rollups.
GRANT SELECT ON maintenance_firms, use_units, elevators TO liftwatch_dashboards;
GRANT SELECT (terminal_id, registration_code, created_at, last_seen_at, last_status) ON terminals
    TO liftwatch_dashboards;
GRANT SELECT ON report_months, report_fleet, report_incident_counts, report_entrapments, report_elevator_incidents,
    report_scope_fleet, report_scope_counts, report_elevator_scope_incidents TO liftwatch_dashboards;
-- Incidents: what happened when and where, not the evidence (telemetry) or anyone's notes.
GRANT SELECT (id, registration_code, terminal_id, code, severity, status, maintainer_id, district, use_unit_id,
    detected_at, opened_at, last_seen_at, occurrences, chattering, condition_cleared_at, acknowledged_at,
    dispatched_at, arrived_at, released_at, closed_at, close_cause, escalation_level, dispatch_deadline_missed,
    arrival_deadline_missed) ON incidents TO liftwatch_dashboards;

-- Before this migration, reader.sql granted Grafana's role SELECT on every table (and, through
-- default privileges, on every future one). Take the tables holding secrets back from every role
-- but their owner at once; re-running reader.sql removes the rest (docs/security.md).
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT DISTINCT g.grantee, g.table_name
        FROM information_schema.role_table_grants g
        WHERE g.table_schema = current_schema()
          AND g.table_name IN ('api_tokens', 'alerts_webhooks', 'alerts_deliveries', 'mqtt_accounts', 'terminals')
          AND g.grantee NOT IN (current_user, 'liftwatch_dashboards', 'PUBLIC')
          AND g.grantee IN (SELECT rolname FROM pg_roles WHERE NOT rolsuper)
    LOOP
        EXECUTE format('REVOKE ALL ON %I FROM %I', grant_row.table_name, grant_row.grantee);
    END LOOP;
END
$$;
