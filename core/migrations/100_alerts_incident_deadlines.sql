-- Rescue deadlines are fixed on each incident when it opens, so the API, the reports and the
-- dashboards read the same instant the alert service enforces, instead of each knowing the policy.
--
-- alerts_deadline_policy is the policy in force: the alert service replaces its rows from its
-- settings when it starts (LIFTWATCH_DEADLINE_CODES, LIFTWATCH_DISPATCH_DEADLINE_S,
-- LIFTWATCH_ARRIVAL_DEADLINE_S, LIFTWATCH_CODE_DEADLINES_S). A trigger stamps every new incident
-- from it, whoever opens it (the alert service for faults, the API for an emergency centre's call),
-- counting from the earlier of detection and opening: a terminal clock running ahead must not buy
-- the firm time.
CREATE TABLE alerts_deadline_policy (
    code        text PRIMARY KEY,
    dispatch_s  integer CHECK (dispatch_s > 0),
    arrival_s   integer CHECK (arrival_s > 0)
);
-- Until an alert service has started: the shipped default (trapped passenger, 5 and 30 minutes).
INSERT INTO alerts_deadline_policy (code, dispatch_s, arrival_s) VALUES ('trapped_passenger', 300, 1800);

ALTER TABLE incidents ADD COLUMN dispatch_deadline_at timestamptz, ADD COLUMN arrival_deadline_at timestamptz;

CREATE FUNCTION incidents_stamp_deadlines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    policy alerts_deadline_policy%ROWTYPE;
BEGIN
    SELECT * INTO policy FROM alerts_deadline_policy WHERE code = NEW.code;
    IF FOUND THEN
        NEW.dispatch_deadline_at := COALESCE(NEW.dispatch_deadline_at,
            LEAST(NEW.detected_at, NEW.opened_at) + make_interval(secs => policy.dispatch_s));
        NEW.arrival_deadline_at := COALESCE(NEW.arrival_deadline_at,
            LEAST(NEW.detected_at, NEW.opened_at) + make_interval(secs => policy.arrival_s));
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER incidents_stamp_deadlines BEFORE INSERT ON incidents
    FOR EACH ROW EXECUTE FUNCTION incidents_stamp_deadlines();

-- Incidents opened before this migration: the shipped default policy, the one in force unless a
-- site configured another (docs/operations.md says how such a site restamps them).
UPDATE incidents i SET dispatch_deadline_at = LEAST(i.detected_at, i.opened_at) + make_interval(secs => p.dispatch_s),
    arrival_deadline_at = LEAST(i.detected_at, i.opened_at) + make_interval(secs => p.arrival_s)
FROM alerts_deadline_policy p WHERE p.code = i.code;

-- The monthly reports count entrapments reached within their incident's arrival deadline
-- (seconds after detection, as arrive_s is measured); rollups made before: the 30-minute target
-- they were computed with.
ALTER TABLE report_entrapments ADD COLUMN arrival_target_s double precision;
UPDATE report_entrapments SET arrival_target_s = 1800;

GRANT SELECT (dispatch_deadline_at, arrival_deadline_at) ON incidents TO liftwatch_dashboards;
