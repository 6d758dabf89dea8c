-- Registry changes are pushed to the processes that cache the registry (the rule engine): a NOTIFY
-- on channel liftwatch_registry, delivered at commit, once per statement (PostgreSQL folds equal
-- notifications of one transaction). The payload is the schema, so a listener ignores the
-- changes of other schemas sharing the database (tests, several platforms on one server).
-- Only the columns the rules read count: the writer's last_seen_at updates must not wake anyone.

CREATE FUNCTION liftwatch_registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('liftwatch_registry', current_schema());
    RETURN NULL;
END;
$$;

CREATE TRIGGER terminals_changed
    AFTER INSERT OR DELETE OR UPDATE OF terminal_id, registration_code ON terminals
    FOR EACH STATEMENT EXECUTE FUNCTION liftwatch_registry_changed();
CREATE TRIGGER terminals_truncated AFTER TRUNCATE ON terminals
    FOR EACH STATEMENT EXECUTE FUNCTION liftwatch_registry_changed();

CREATE TRIGGER elevators_changed
    AFTER INSERT OR DELETE OR UPDATE OF registration_code, rated_speed, bottom_floor, top_floor, model ON elevators
    FOR EACH STATEMENT EXECUTE FUNCTION liftwatch_registry_changed();
CREATE TRIGGER elevators_truncated AFTER TRUNCATE ON elevators
    FOR EACH STATEMENT EXECUTE FUNCTION liftwatch_registry_changed();
