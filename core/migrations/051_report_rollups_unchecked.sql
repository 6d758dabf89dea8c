-- The rollup is rewritten a whole month at a time by one function (reports/rollup.py), which
-- deletes every table's rows of the month itself; per-row foreign-key checks on hundreds of
-- thousands of inserted rows cost more than the aggregation, so the references go.
ALTER TABLE report_fleet DROP CONSTRAINT report_fleet_month_fkey;
ALTER TABLE report_incident_counts DROP CONSTRAINT report_incident_counts_month_fkey;
ALTER TABLE report_entrapments DROP CONSTRAINT report_entrapments_month_fkey;
ALTER TABLE report_elevator_incidents DROP CONSTRAINT report_elevator_incidents_month_fkey;
