-- Tokens expire (issue 16): `liftwatch token create` sets expires_at (LIFTWATCH_API_TOKEN_DAYS,
-- 90 days by default for people; --no-expiry for an integration). Tokens made before keep
-- working: NULL never expires.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

-- Console sessions: the cookie holds a random session id, not the token, and signing out deletes
-- the session, so a copied cookie stops working at once. A session lives at most its
-- expires_at, and never longer than its token (revoked or expired tokens end their sessions).
CREATE TABLE api_sessions (
    session_hash  text PRIMARY KEY,
    -- The token's hash (api_tokens.token_hash, or the bootstrap admin token's, which has no row).
    token_hash    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX api_sessions_expires ON api_sessions (expires_at);
