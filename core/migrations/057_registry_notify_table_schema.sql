-- The registry notification names the schema of the table that changed (TG_TABLE_SCHEMA), not the
-- writer's search_path (current_schema()): a session whose search_path starts elsewhere, or that
-- writes schema-qualified names, still wakes the right rule engines.
CREATE OR REPLACE FUNCTION liftwatch_registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('liftwatch_registry', TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$$;
