-- A registry import may swap rescue codes between two elevators in one statement. PostgreSQL
-- checks a non-deferrable unique constraint row by row, which would refuse the swap half-way;
-- a DEFERRABLE (INITIALLY IMMEDIATE) one is checked at the end of the statement. Nothing uses
-- these columns as an ON CONFLICT arbiter (deferrable constraints cannot be arbiters).

ALTER TABLE elevators
    DROP CONSTRAINT elevators_rescue_code_key,
    ADD CONSTRAINT elevators_rescue_code_key UNIQUE (rescue_code) DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE terminals
    DROP CONSTRAINT terminals_registration_code_key,
    ADD CONSTRAINT terminals_registration_code_key UNIQUE (registration_code) DEFERRABLE INITIALLY IMMEDIATE;
