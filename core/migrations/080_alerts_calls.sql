-- The emergency centre's own work on incidents (issue 17): an incident opened from a phone call
-- (the 96333 path) rather than by the rules, and the operator holding an incident.
-- `source` says who opened it; a rule detection of the same elevator and code later joins it
-- through the one-open-incident index like any repeat. The caller's number stays on the audit
-- row of the call (incident_events.data), not here: the trail is the record of who called.
ALTER TABLE incidents ADD COLUMN source text NOT NULL DEFAULT 'rule' CHECK (source IN ('rule', 'call'));
-- The operator (api_tokens.name) working the incident; NULL = nobody has claimed it.
ALTER TABLE incidents ADD COLUMN assignee text;
