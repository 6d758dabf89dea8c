-- Event time (ms) of the last fault event applied to an incident: a redelivered event older
-- than it (e.g. a clear that found nothing open the first time) is stale and changes nothing.
ALTER TABLE incidents ADD COLUMN last_event_ms bigint;
