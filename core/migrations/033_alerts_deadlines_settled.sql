-- A closed incident is judged once more by the deadline loop (a deadline it missed while the
-- alert service was down is still recorded against the firm), then marked settled so later
-- ticks skip it. Incidents already closed when this migration runs count as judged.
ALTER TABLE incidents ADD COLUMN deadlines_settled boolean NOT NULL DEFAULT false;
UPDATE incidents SET deadlines_settled = true WHERE status IN ('closed', 'false_alarm', 'auto_cleared');
CREATE INDEX incidents_unsettled ON incidents (id)
    WHERE NOT deadlines_settled AND status IN ('closed', 'false_alarm', 'auto_cleared');
