-- Monthly statistics for regulators: rollup tables refreshed one site-local month at a time.
--
-- Raw incidents are mutable (acknowledged, arrived, closed long after detection) and medians are
-- not additive, so the rollup keeps counts per (month, district, firm, use unit, age band, code),
-- one row per entrapment for the rescue-time percentiles, and one row per elevator with incidents
-- for the "most incidents" ranking. `liftwatch report refresh` recomputes a month in one
-- transaction (delete + insert); statistics read only these tables.
-- Dimension columns hold the incident's routing snapshot; NULL = unknown (unregistered terminal).

CREATE TABLE report_months (
    month           date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    site_timezone   text NOT NULL,
    refreshed_at    timestamptz NOT NULL,
    days_in_month   smallint NOT NULL,
    -- Days of the month that had begun when refreshed: coverage is judged on these.
    days_observed   smallint NOT NULL,
    -- Refreshed after the month ended (plus a grace period): never refreshed on demand again.
    complete        boolean NOT NULL
);

-- Registered elevators (denominators), snapshot at refresh.
CREATE TABLE report_fleet (
    month           date NOT NULL REFERENCES report_months (month) ON DELETE CASCADE,
    district        text NOT NULL,
    maintainer_id   bigint NOT NULL,
    use_unit_id     bigint NOT NULL,
    age_band        smallint NOT NULL CHECK (age_band IN (0, 1, 2)),
    elevators       integer NOT NULL,
    -- Elevators whose terminal sent data on >= 90% of the observed days.
    covered         integer NOT NULL,
    -- Sum over elevators of the days with data (online rate = active_days / (elevators * days)).
    active_days     bigint NOT NULL
);
CREATE INDEX report_fleet_month ON report_fleet (month);

CREATE TABLE report_incident_counts (
    month           date NOT NULL REFERENCES report_months (month) ON DELETE CASCADE,
    district        text,
    maintainer_id   bigint,
    use_unit_id     bigint,
    age_band        smallint,
    code            text NOT NULL,
    incidents       integer NOT NULL,
    entrapments     integer NOT NULL,
    false_alarms    integer NOT NULL,
    dispatch_missed integer NOT NULL,
    arrival_missed  integer NOT NULL,
    -- Incidents of the same code on the same elevator within 30 days after a previous one.
    repeats         integer NOT NULL
);
CREATE INDEX report_incident_counts_month ON report_incident_counts (month);

-- Rescue durations in seconds from detection; NULL = the step never happened.
CREATE TABLE report_entrapments (
    month           date NOT NULL REFERENCES report_months (month) ON DELETE CASCADE,
    incident_id     bigint NOT NULL,
    district        text,
    maintainer_id   bigint,
    use_unit_id     bigint,
    acknowledge_s   double precision,
    dispatch_s      double precision,
    arrive_s        double precision,
    release_s       double precision,
    PRIMARY KEY (month, incident_id)
);

CREATE TABLE report_elevator_incidents (
    month               date NOT NULL REFERENCES report_months (month) ON DELETE CASCADE,
    registration_code   text NOT NULL,
    district            text,
    maintainer_id       bigint,
    use_unit_id         bigint,
    incidents           integer NOT NULL,
    entrapments         integer NOT NULL,
    repeats             integer NOT NULL,
    PRIMARY KEY (month, registration_code)
);
CREATE INDEX report_elevator_incidents_rank ON report_elevator_incidents (month, incidents DESC);
