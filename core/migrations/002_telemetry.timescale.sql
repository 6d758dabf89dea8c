-- Telemetry on TimescaleDB: a hypertable with compression and retention.
-- Chosen automatically when the timescaledb extension is available.

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
SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => interval '1 day');
ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'terminal_id',
                           timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('telemetry', interval '2 days');
SELECT add_retention_policy('telemetry', interval '400 days');

CREATE TABLE storage_mode (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    mode      text NOT NULL
);
INSERT INTO storage_mode (mode) VALUES ('timescaledb');

-- Hypertables create chunks themselves; kept so callers need not know the storage mode.
CREATE FUNCTION liftwatch_ensure_telemetry_partitions(days_back integer, days_ahead integer)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
