-- Telemetry on TimescaleDB: a hypertable with compression and retention.
-- Chosen automatically when the timescaledb extension is usable (see liftwatch.db and
-- docs/storage.md). Not run by the test suite (no TimescaleDB there); written against the
-- TimescaleDB 2.x API (create_hypertable, add_compression_policy, add_retention_policy).

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE telemetry (
    terminal_id     text NOT NULL,
    ts              timestamptz NOT NULL,
    seq             bigint NOT NULL,
    idx             smallint NOT NULL,
    mode            text NOT NULL,
    floor           smallint NOT NULL,
    door_zone       boolean NOT NULL,
    direction       text NOT NULL,
    speed           real NOT NULL,
    door            text NOT NULL,
    occupied        boolean NOT NULL,
    safety_circuit  boolean NOT NULL,
    door_lock       boolean,
    alarm_button    boolean NOT NULL,
    power           boolean NOT NULL,
    load_pct        real,
    limit_up        boolean NOT NULL,
    limit_down      boolean NOT NULL,
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (terminal_id, ts, seq, idx)
);
-- One chunk per day, like the plain variant's partitions; the primary key includes the time column,
-- as a hypertable's unique indexes must.
SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => interval '1 day');
-- Compressed per terminal, in time order. The whole primary key is in segmentby + orderby, so the
-- writer's ON CONFLICT DO NOTHING on a late sample checks a compressed chunk per segment (and
-- TimescaleDB does not warn about an uncovered unique constraint).
ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'terminal_id',
                           timescaledb.compress_orderby = 'ts, seq, idx');
-- Chunks older than 2 days are compressed (late samples are rarer than that: the gateway refuses
-- samples from the future and Kafka keeps 72 h); chunks older than 400 days are dropped (the
-- default of the gateway's LIFTWATCH_RETENTION_DAYS, which refuses older samples; change both together).
SELECT add_compression_policy('telemetry', compress_after => interval '2 days');
SELECT add_retention_policy('telemetry', drop_after => interval '400 days');

CREATE TABLE storage_mode (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    mode      text NOT NULL
);
INSERT INTO storage_mode (mode) VALUES ('timescaledb');

-- Hypertables create chunks themselves; kept so callers need not know the storage mode.
CREATE FUNCTION liftwatch_ensure_telemetry_partitions(days_back integer, days_ahead integer)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
