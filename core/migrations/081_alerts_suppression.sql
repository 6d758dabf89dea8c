-- Faults that are recorded but not notified (issue 17): maintenance windows a firm declares for
-- its elevator, alarms an operator shelves (ISA-18.2: an elevator and a fault code, at most 8 h),
-- and elevators out of service. Rows are never deleted: ending one early stamps it (who, when),
-- so each table is its own audit trail and a late relay judges a change by the rows as they
-- stood at the change's time. Which codes are never suppressed is liftwatch.alerts.suppression's.

CREATE TABLE maintenance_windows (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_code   text NOT NULL REFERENCES elevators (registration_code),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL CHECK (ends_at > starts_at),
    reason              text NOT NULL CHECK (reason <> ''),
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    ended_by            text,
    ended_at            timestamptz     -- ended early (deleted through the API)
);
CREATE INDEX maintenance_windows_elevator ON maintenance_windows (registration_code, ends_at);

CREATE TABLE alarm_shelves (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_code   text NOT NULL REFERENCES elevators (registration_code),
    code                text NOT NULL,
    reason              text NOT NULL CHECK (reason <> ''),
    shelved_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL CHECK (expires_at > shelved_at AND expires_at <= shelved_at + interval '8 hours'),
    created_by          text NOT NULL,
    ended_by            text,
    ended_at            timestamptz     -- unshelved early
);
CREATE INDEX alarm_shelves_elevator ON alarm_shelves (registration_code, code, expires_at);

CREATE TABLE out_of_service (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_code   text NOT NULL REFERENCES elevators (registration_code),
    since               timestamptz NOT NULL,
    reason              text NOT NULL CHECK (reason <> ''),
    set_by              text NOT NULL,
    ended_by            text,
    ended_at            timestamptz     -- back in service
);
-- At most one open period per elevator.
CREATE UNIQUE INDEX out_of_service_open ON out_of_service (registration_code) WHERE ended_at IS NULL;
