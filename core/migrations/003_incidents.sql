-- Incidents and their audit trail (kept at least 5 years: never deleted by the platform).

CREATE TABLE incidents (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_code   text REFERENCES elevators (registration_code),
    terminal_id         text NOT NULL,
    code                text NOT NULL,
    severity            text NOT NULL CHECK (severity IN ('critical', 'major', 'minor')),
    status              text NOT NULL CHECK (status IN ('detected', 'acknowledged', 'dispatched', 'arrived',
                                                        'released', 'closed', 'false_alarm', 'auto_cleared')),
    -- Snapshot of routing data at detection, so statistics do not move when the registry changes.
    maintainer_id       bigint REFERENCES maintenance_firms (id),
    district            text,
    use_unit_id         bigint REFERENCES use_units (id),
    detected_at         timestamptz NOT NULL,   -- event time the fault was raised
    opened_at           timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL,
    occurrences         integer NOT NULL DEFAULT 1,
    chattering          boolean NOT NULL DEFAULT false,
    condition_cleared_at timestamptz,
    evidence            jsonb NOT NULL DEFAULT '{}',
    acknowledged_at     timestamptz,
    dispatched_at       timestamptz,
    arrived_at          timestamptz,
    released_at         timestamptz,
    closed_at           timestamptz,
    close_cause         text,
    escalation_level    smallint NOT NULL DEFAULT 1,
    dispatch_deadline_missed boolean NOT NULL DEFAULT false,
    arrival_deadline_missed  boolean NOT NULL DEFAULT false,
    last_notified_at    timestamptz
);
-- At most one open incident per (elevator, code); unregistered terminals are keyed by terminal.
CREATE UNIQUE INDEX incidents_one_open ON incidents (terminal_id, code)
    WHERE status NOT IN ('closed', 'false_alarm', 'auto_cleared');
CREATE INDEX incidents_open_status ON incidents (status) WHERE status NOT IN ('closed', 'false_alarm', 'auto_cleared');
CREATE INDEX incidents_detected ON incidents (detected_at);
CREATE INDEX incidents_registration ON incidents (registration_code, detected_at);
CREATE INDEX incidents_maintainer ON incidents (maintainer_id, detected_at);

CREATE TABLE incident_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id     bigint NOT NULL REFERENCES incidents (id),
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL,
    status_after    text NOT NULL,
    actor           text NOT NULL,
    note            text NOT NULL DEFAULT '',
    data            jsonb NOT NULL DEFAULT '{}',
    -- Replayed inputs carry the same key and are ignored (exactly-once effect).
    idempotency_key text UNIQUE
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);
