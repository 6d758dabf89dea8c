-- The share of late samples (arrived older than what their terminal already had judged) over the
-- engine's last five minutes, written with every checkpoint: /healthz reports a high share, since
-- late samples are judged apart (the late lane) and usually mean a terminal or gateway misbehaves.
ALTER TABLE rules_checkpoints
    ADD COLUMN late_share double precision NOT NULL DEFAULT 0 CHECK (late_share BETWEEN 0 AND 1);
