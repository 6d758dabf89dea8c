-- The "elevators with the most incidents" of a district, firm or use unit count only the incidents
-- the elevator had in that scope. report_elevator_incidents keeps one row per elevator (the city
-- ranking, read in index order), attributed to one snapshot; an elevator that changed firm (or
-- use unit) during the month has incidents under two snapshots, and a firm's ranking must not
-- show the other firm's ones. This table holds the month's incidents per elevator and snapshot.
CREATE TABLE report_elevator_scope_incidents (
    month               date NOT NULL,
    registration_code   text NOT NULL,
    district            text,
    maintainer_id       bigint,
    use_unit_id         bigint,
    incidents           integer NOT NULL,
    entrapments         integer NOT NULL,
    repeats             integer NOT NULL
);
CREATE INDEX report_elevator_scope_district ON report_elevator_scope_incidents (month, district);
CREATE INDEX report_elevator_scope_maintainer ON report_elevator_scope_incidents (month, maintainer_id);
CREATE INDEX report_elevator_scope_use_unit ON report_elevator_scope_incidents (month, use_unit_id);
