-- Fault storms (issue 17, liftwatch.alerts.storms): the notify relay groups incidents that share
-- a cause (same code and district within a window) and records which incident inhibits another
-- (a power failure explains its elevator's stop outside the door zone).
-- group_id: the group leader's id, on every member and on the leader; NULL = not grouped.
ALTER TABLE incidents ADD COLUMN group_id bigint REFERENCES incidents (id);
-- inhibited_by: the incident whose lasting condition kept this one's last change from being
-- notified; NULL = not inhibited (as judged at its last change).
ALTER TABLE incidents ADD COLUMN inhibited_by bigint REFERENCES incidents (id);
CREATE INDEX incidents_group ON incidents (group_id) WHERE group_id IS NOT NULL;
-- Grouping looks for recent open incidents of a code (a storm's), by opening time.
CREATE INDEX incidents_open_code_opened ON incidents (code, opened_at)
    WHERE status NOT IN ('closed', 'false_alarm', 'auto_cleared');
