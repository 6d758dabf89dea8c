-- Equipment registry, API tokens, dead letters. Applied in the current search_path.

CREATE TABLE maintenance_firms (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE use_units (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE elevators (
    registration_code   text PRIMARY KEY CHECK (registration_code ~ '^[0-9A-Z]{20}$'),
    rescue_code         text NOT NULL UNIQUE CHECK (rescue_code ~ '^[0-9]{5,6}$'),
    kind                text NOT NULL CHECK (kind IN ('traction', 'hydraulic', 'escalator', 'moving_walk')),
    address             text NOT NULL,
    district            text NOT NULL,
    latitude            double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude           double precision CHECK (longitude BETWEEN -180 AND 180),
    use_unit_id         bigint NOT NULL REFERENCES use_units (id),
    maintainer_id       bigint NOT NULL REFERENCES maintenance_firms (id),
    manufacturer        text,
    model               text,
    installed_on        date NOT NULL,
    rated_speed         double precision NOT NULL CHECK (rated_speed > 0),
    rated_load          integer CHECK (rated_load > 0),
    bottom_floor        integer NOT NULL,
    top_floor           integer NOT NULL,
    last_inspection     date,
    next_inspection_due date,
    insured             boolean,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (bottom_floor <= top_floor)
);
CREATE INDEX elevators_maintainer ON elevators (maintainer_id);
CREATE INDEX elevators_district ON elevators (district);
CREATE INDEX elevators_use_unit ON elevators (use_unit_id);

-- A terminal is the monitoring device; it may exist before it is fitted to an elevator.
CREATE TABLE terminals (
    terminal_id         text PRIMARY KEY CHECK (terminal_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    registration_code   text UNIQUE REFERENCES elevators (registration_code) ON DELETE SET NULL,
    mqtt_password_hash  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz,
    last_status         text
);

CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    source       text NOT NULL,
    topic        text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    terminal_id  text,
    payload      bytea NOT NULL,
    -- Kafka coordinates make a re-delivered dead letter idempotent.
    kafka_partition integer,
    kafka_offset    bigint,
    UNIQUE (kafka_partition, kafka_offset)
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC);

CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'maintainer', 'regulator')),
    maintainer_id bigint REFERENCES maintenance_firms (id),
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK ((role = 'maintainer') = (maintainer_id IS NOT NULL))
);
