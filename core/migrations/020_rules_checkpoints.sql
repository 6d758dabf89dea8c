-- Rule engine checkpoints: per consumer group and telemetry partition, the engine state of the
-- partition's terminals (compressed numpy archive) and the next offset to read, written in one
-- transaction after the fault events derived from the consumed records were acknowledged by Kafka.

CREATE TABLE rules_checkpoints (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL CHECK (kafka_partition >= 0),
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    terminals       integer NOT NULL,
    state           bytea NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
