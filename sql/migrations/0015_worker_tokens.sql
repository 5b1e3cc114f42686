-- Short-lived worker tokens (POST /_worker/auth/token). Only each token's SHA-256 digest is kept,
-- never the token, with the worker it was issued to and when it ends, so that every instance
-- accepts a token any instance issued. by_certificate: issued for a client certificate, not for
-- a worker token (WORKER_AUTH_MODE=mtls-only accepts only those). Retention: the watcher's
-- housekeeping deletes the rows that expired (the expires_at index finds them).
CREATE TABLE worker_tokens (
    token_sha256   bytea       PRIMARY KEY,
    worker_id      text        NOT NULL,
    by_certificate boolean     NOT NULL,
    expires_at     timestamptz NOT NULL
);

CREATE INDEX worker_tokens_expires_idx ON worker_tokens (expires_at);
