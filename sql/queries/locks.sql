-- name: try_singleton_lock
-- Take the session-level advisory lock named $1 unless another session holds it; whether taken.
-- Held by a dedicated connection: PostgreSQL releases it when that connection ends.
-- $1 lock name
SELECT pg_try_advisory_lock(hashtext($1));

-- name: ping
-- Prove a connection alive: a lock holder's before it acts on the lock, the LISTEN connection now and then.
SELECT 1;
