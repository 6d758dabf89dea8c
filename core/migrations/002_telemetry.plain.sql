-- Telemetry on plain PostgreSQL: native range partitioning by day, BRIN on time.
-- Chosen when the timescaledb extension is not available (see 002_telemetry.timescale.sql).

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
    -- Identity of a sample: a re-delivered message (same seq, same ts) is not stored twice.
    PRIMARY KEY (terminal_id, ts, seq, idx)
) PARTITION BY RANGE (ts);

-- Rows outside every daily partition land here rather than failing the batch.
CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;

CREATE INDEX telemetry_ts_brin ON telemetry USING brin (ts);

CREATE TABLE storage_mode (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    mode      text NOT NULL
);
INSERT INTO storage_mode (mode) VALUES ('plain');

-- Create the daily partitions covering [today - days_back, today + days_ahead] (UTC days).
CREATE FUNCTION liftwatch_ensure_telemetry_partitions(days_back integer, days_ahead integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    created integer := 0;
    part text;
BEGIN
    FOR day IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - days_back,
                                      (now() AT TIME ZONE 'UTC')::date + days_ahead, interval '1 day')::date
    LOOP
        part := format('telemetry_%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
                part, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

SELECT liftwatch_ensure_telemetry_partitions(2, 7);
