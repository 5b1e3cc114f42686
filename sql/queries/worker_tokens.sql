-- name: issue_worker_token
-- Keep a new short-lived token's digest for $4 seconds; returns the seconds it lasts, measured by
-- the database's clock (the one every check uses).
-- $1 token_sha256 bytea, $2 worker_id text, $3 by_certificate boolean, $4 lifetime seconds float8
INSERT INTO worker_tokens (token_sha256, worker_id, by_certificate, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
RETURNING extract(epoch FROM expires_at - now())::float8 AS remaining;

-- name: find_worker_token
-- The worker a short-lived token was issued to and the seconds it has left; nothing when it is
-- unknown or has expired (a row the housekeeping has not deleted yet is no longer valid).
-- $1 token_sha256 bytea
SELECT worker_id, by_certificate, extract(epoch FROM expires_at - now())::float8 AS remaining
FROM worker_tokens
WHERE token_sha256 = $1 AND expires_at > now();

-- name: prune_worker_tokens
-- Forget short-lived tokens that expired (the expires_at index finds them).
DELETE FROM worker_tokens WHERE expires_at <= now();
