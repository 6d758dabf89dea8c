-- Which maintenance firm had each elevator when: telemetry belongs to the firm that maintained
-- the elevator at the time of the sample, so after a handover the previous firm keeps its own
-- history and no newer sample, and the new firm starts from the handover (issue 16).
-- Recorded by triggers on elevators, so every path that changes a firm (registry import, the
-- API, plain SQL) leaves its trace. Periods are half-open [since, until); until NULL = current.

CREATE TABLE elevator_maintainers (
    registration_code   text NOT NULL REFERENCES elevators (registration_code) ON UPDATE CASCADE ON DELETE CASCADE,
    maintainer_id       bigint NOT NULL REFERENCES maintenance_firms (id),
    since               timestamptz NOT NULL,
    until               timestamptz,
    PRIMARY KEY (registration_code, since),
    CHECK (until IS NULL OR until >= since)
);
CREATE INDEX elevator_maintainers_firm ON elevator_maintainers (registration_code, maintainer_id);

-- Before this table existed nothing was recorded: the firm of the day is taken to have always had
-- the elevator (what the API showed until now).
INSERT INTO elevator_maintainers (registration_code, maintainer_id, since)
SELECT registration_code, maintainer_id, '-infinity' FROM elevators;

-- The first firm of an elevator owns everything before it too (samples of a terminal fitted before
-- the elevator was registered): nobody else had it.
CREATE FUNCTION liftwatch_elevator_maintainer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO elevator_maintainers (registration_code, maintainer_id, since)
        VALUES (NEW.registration_code, NEW.maintainer_id, '-infinity');
        RETURN NULL;
    END IF;
    UPDATE elevator_maintainers SET until = now()
    WHERE registration_code = NEW.registration_code AND until IS NULL;
    -- A second change in one transaction (same now()) replaces the period the first one opened.
    INSERT INTO elevator_maintainers (registration_code, maintainer_id, since)
    VALUES (NEW.registration_code, NEW.maintainer_id, now())
    ON CONFLICT (registration_code, since) DO UPDATE SET maintainer_id = EXCLUDED.maintainer_id, until = NULL;
    RETURN NULL;
END;
$$;

CREATE TRIGGER elevators_maintainer_inserted
    AFTER INSERT ON elevators
    FOR EACH ROW EXECUTE FUNCTION liftwatch_elevator_maintainer_changed();
CREATE TRIGGER elevators_maintainer_changed
    AFTER UPDATE OF maintainer_id ON elevators
    FOR EACH ROW WHEN (OLD.maintainer_id IS DISTINCT FROM NEW.maintainer_id)
    EXECUTE FUNCTION liftwatch_elevator_maintainer_changed();
