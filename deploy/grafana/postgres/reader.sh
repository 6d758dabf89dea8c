#!/bin/sh
# /docker-entrypoint-initdb.d hook of the timescaledb service (compose.yaml): runs once, when the
# data volume is initialised. On an existing volume run it by hand:
#   docker compose exec timescaledb sh /docker-entrypoint-initdb.d/20-grafana-reader.sh
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader=grafana -v reader_password="$GRAFANA_DB_PASSWORD" \
    -v owner="$POSTGRES_USER" -v schema=public \
    -f /liftwatch/grafana-reader.sql
