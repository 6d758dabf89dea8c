-- At most one open incident per (elevator, code), as the fault catalog says: keyed by the
-- elevator when the registry knows it, so a replaced or swapped terminal keeps feeding the
-- elevator's open incident instead of opening a second one; an unregistered terminal (no
-- elevator) is keyed by its terminal id. Replaces 003's per-terminal index.
DROP INDEX incidents_one_open;
CREATE UNIQUE INDEX incidents_one_open_elevator ON incidents (registration_code, code)
    WHERE registration_code IS NOT NULL AND status NOT IN ('closed', 'false_alarm', 'auto_cleared');
CREATE UNIQUE INDEX incidents_one_open_terminal ON incidents (terminal_id, code)
    WHERE registration_code IS NULL AND status NOT IN ('closed', 'false_alarm', 'auto_cleared');

-- The audit trail is append-only (kept at least 5 years, and the outbox the relays publish
-- from): the database refuses to change or remove a row, whoever asks.
CREATE FUNCTION incident_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'incident_events is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER incident_events_append_only BEFORE UPDATE OR DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_events_append_only();
