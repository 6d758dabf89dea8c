-- terminals.last_seen_at is the latest received_at rounded down to 30 s (liftwatch.presence);
-- values written before were exact, and an exact value would beat its own rounded one in the
-- writer's greatest() until the terminal reported in a later 30 s: round them once.
UPDATE terminals
SET last_seen_at = date_bin(interval '30000 milliseconds', last_seen_at, timestamptz 'epoch')
WHERE last_seen_at IS NOT NULL;
