-- Plain telemetry: creating a daily partition never fails because of rows parked in the default
-- partition. PostgreSQL refuses `CREATE TABLE ... PARTITION OF` when the default partition holds
-- rows of the new range ("updated partition constraint for default partition would be violated"),
-- and since the function creates every missing day in one call, one such day would stop all the
-- days after it from being created: everything would pile up in the default partition. Such rows
-- appear when samples arrive for a day before its partition exists (a clock far ahead, a writer
-- that could not create partitions for a while, a backfill). For those days the partition is
-- built beside the table, the rows move into it, and it is attached, in one transaction.

CREATE OR REPLACE FUNCTION liftwatch_ensure_telemetry_partitions(days_back integer, days_ahead integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    created integer := 0;
    part text;
    low timestamptz;
    high timestamptz;
BEGIN
    FOR day IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - days_back,
                                      (now() AT TIME ZONE 'UTC')::date + days_ahead, interval '1 day')::date
    LOOP
        part := format('telemetry_%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(part) IS NOT NULL THEN
            CONTINUE;
        END IF;
        low := day::timestamp AT TIME ZONE 'UTC';
        high := (day + 1)::timestamp AT TIME ZONE 'UTC';
        IF EXISTS (SELECT 1 FROM telemetry_default WHERE ts >= low AND ts < high) THEN
            EXECUTE format('CREATE TABLE %I (LIKE telemetry INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format(
                'WITH moved AS (DELETE FROM telemetry_default WHERE ts >= %L AND ts < %L RETURNING *) '
                'INSERT INTO %I SELECT * FROM moved', low, high, part);
            -- Indexes of the parent (primary key, BRIN) are created on the partition by ATTACH.
            EXECUTE format('ALTER TABLE telemetry ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, low, high);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)', part, low, high);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;
