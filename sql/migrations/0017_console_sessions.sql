-- Console sign-ins. A browser holds only a random session id in an HttpOnly cookie; the database
-- keeps its SHA-256 digest, whose client it is and that session's CSRF token, so every instance
-- behind a load balancer knows the session, and a database dump holds no usable cookie.
-- Rows past expires_at are deleted by the watcher's housekeeping.
CREATE TABLE console_sessions (
    session_sha256 bytea       PRIMARY KEY,
    client         text        NOT NULL,
    is_admin       boolean     NOT NULL,
    csrf_token     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);

CREATE INDEX console_sessions_expiry_idx ON console_sessions (expires_at);
