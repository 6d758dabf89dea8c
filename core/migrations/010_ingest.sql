-- Ingest: per-terminal daily activity (kept by the writer) and MQTT service accounts.

-- One row per terminal and local day (site time zone), upserted by the writer with every batch
-- from the rows it actually inserted (re-delivered rows are not counted twice). Regulator
-- statistics (terminal coverage, online rate) read this instead of scanning telemetry.
CREATE TABLE terminal_activity (
    terminal_id  text NOT NULL,
    day          date NOT NULL,
    samples      bigint NOT NULL CHECK (samples >= 0),
    first_ts     timestamptz NOT NULL,
    last_ts      timestamptz NOT NULL,
    PRIMARY KEY (terminal_id, day)
);
CREATE INDEX terminal_activity_day ON terminal_activity (day);

-- Broker accounts that are not terminals (gateways, simulators); terminals keep theirs in
-- terminals.mqtt_password_hash. Hashes are mosquitto's PBKDF2-SHA512 format ($7$...).
CREATE TABLE mqtt_accounts (
    username       text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('gateway', 'publisher')),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
