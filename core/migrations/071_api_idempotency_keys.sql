-- Idempotency-Key of API writes, bound to the caller (its token) and to the exact request it first
-- came with (issue 16): a retry of the same request answers without acting again, the same key
-- with another request (another action, incident or body) is refused instead of silently
-- dropping the second request. Written in the transaction of the write it guards.

CREATE TABLE api_idempotency_keys (
    caller      text NOT NULL,
    key         text NOT NULL,
    request     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);
CREATE INDEX api_idempotency_keys_created ON api_idempotency_keys (created_at);
