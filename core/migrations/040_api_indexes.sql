-- Indexes for the API's incident lists: newest first (keyset on id), for the open board and for a
-- maintenance firm's own incidents, so a page costs the same with 100 or 10 million closed incidents.
CREATE INDEX incidents_open_id ON incidents (id DESC) WHERE status NOT IN ('closed', 'false_alarm', 'auto_cleared');
CREATE INDEX incidents_maintainer_id ON incidents (maintainer_id, id DESC);
