-- Operator desks (issue 17, alarm load): a desk of the emergency centre watches a set of
-- districts; the alarm-load report (ISA-18.2 / EEMUA 191) is per desk and day.
CREATE TABLE operator_desks (
    name        text PRIMARY KEY CHECK (name ~ '^[^\s].{0,99}$'),
    districts   text[] NOT NULL CHECK (cardinality(districts) > 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
