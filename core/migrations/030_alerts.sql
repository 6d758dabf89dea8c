-- Alert service: chattering window on incidents, the outbox relay's position, outbound webhooks
-- and their durable deliveries (pending -> sent | dead).

-- Event times (ms) of the raise/clear toggles seen within the chattering window.
ALTER TABLE incidents ADD COLUMN toggles_ms bigint[] NOT NULL DEFAULT '{}';

-- Where the relay (incident_events -> Kafka `incidents` + notification routing) has got to.
-- Rows of incident_events are written under one transaction-level advisory lock, so ids become
-- visible in id order and "everything up to last_change_id" is a sound position.
CREATE TABLE alerts_relay_position (
    relay           text PRIMARY KEY,
    last_change_id  bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Receivers of incident notifications, managed with `liftwatch alerts webhook ...`.
CREATE TABLE alerts_webhooks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    target          text NOT NULL CHECK (target IN ('maintenance_firm', 'emergency_centre', 'district_rescue',
                                                     'fire_brigade')),
    maintainer_id   bigint REFERENCES maintenance_firms (id),
    -- NULL = every district (an emergency centre or fire brigade for the whole city).
    district        text,
    url             text NOT NULL CHECK (url ~ '^https?://'),
    -- HMAC-SHA256 key of the X-Liftwatch-Signature header; NULL = the service's webhook_secret.
    secret          text,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((target = 'maintenance_firm') = (maintainer_id IS NOT NULL))
);

-- One row per (change, webhook): the unique key makes a replayed relay batch enqueue nothing new.
CREATE TABLE alerts_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_id       bigint NOT NULL REFERENCES incident_events (id),
    webhook_id      bigint NOT NULL REFERENCES alerts_webhooks (id),
    idempotency_key text NOT NULL UNIQUE,
    body            bytea NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    dead_at         timestamptz
);
CREATE INDEX alerts_deliveries_due ON alerts_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alerts_deliveries_dead ON alerts_deliveries (dead_at) WHERE status = 'dead';
