-- The monthly rollup rolled up once more per report scope, at refresh time (GROUPING SETS).
--
-- report_fleet and report_incident_counts hold one row per (district, firm, use unit, age band
-- [, code]): at city scale that is about one row per elevator, so a city report summing them read
-- a few hundred thousand rows per table, and a 12-month trend twelve times that. These tables
-- hold the same sums per scope (`city` and `district:<name>`, the text of the report's scope)
-- and firm, a few thousand rows for a whole city month. A firm's scope reads the city rows of
-- that firm; a use unit's scope reads the base tables through the use-unit indexes below.

CREATE TABLE report_scope_fleet (
    month           date NOT NULL,
    scope           text NOT NULL,
    maintainer_id   bigint NOT NULL,
    age_band        smallint NOT NULL,
    elevators       integer NOT NULL,
    covered         integer NOT NULL,
    active_days     bigint NOT NULL,
    -- Scope first: a 12-month trend of one scope is one index range.
    PRIMARY KEY (scope, month, maintainer_id, age_band)
);

-- maintainer_id / age_band NULL: incidents of unregistered terminals (city scope only).
CREATE TABLE report_scope_counts (
    month           date NOT NULL,
    scope           text NOT NULL,
    maintainer_id   bigint,
    age_band        smallint,
    code            text NOT NULL,
    incidents       integer NOT NULL,
    entrapments     integer NOT NULL,
    false_alarms    integer NOT NULL,
    dispatch_missed integer NOT NULL,
    arrival_missed  integer NOT NULL,
    repeats         integer NOT NULL
);
CREATE INDEX report_scope_counts_scope ON report_scope_counts (scope, month);

CREATE INDEX report_fleet_use_unit ON report_fleet (month, use_unit_id);
CREATE INDEX report_incident_counts_use_unit ON report_incident_counts (month, use_unit_id);

-- The "most incidents" ranking in index order: LIMIT 10 reads 10 rows, however many elevators
-- tie on the incident count.
DROP INDEX report_elevator_incidents_rank;
CREATE INDEX report_elevator_incidents_rank
    ON report_elevator_incidents (month, incidents DESC, entrapments DESC, registration_code);
