-- Nothing to do on TimescaleDB: hypertables create their chunks themselves (see
-- 005_telemetry_partitions.plain.sql for what the plain variant fixes). Kept so that both
-- storage modes record the same migration versions.

SELECT 1;
