-- name: claim_idempotency_key
-- Take the key for a new job, unless a job took it within the last 24 hours; returns the job
-- the key now names. Two racing requests serialize on the primary key: the second one waits,
-- then sees the first one's job.
-- $1 client text, $2 key text, $3 new job_id uuid, $4 request fingerprint text
INSERT INTO idempotency_keys (client, key, job_id, request)
VALUES ($1, $2, $3, $4)
ON CONFLICT (client, key) DO UPDATE
    SET job_id = excluded.job_id, request = excluded.request, created_at = now()
WHERE idempotency_keys.created_at < now() - interval '24 hours'
RETURNING job_id;

-- name: idempotency_key_job
-- The job a fresh key names, and the fingerprint of the request that took it.
-- $1 client text, $2 key text
SELECT job_id, request FROM idempotency_keys WHERE client = $1 AND key = $2;

-- name: prune_idempotency_keys
-- Retention: forget up to $1 keys older than 24 hours: they no longer name a job (the 24 hours of
-- claim_idempotency_key; the created_at index finds them). FOR UPDATE SKIP LOCKED: a key being
-- taken anew is left for the next round, and one taken meanwhile (its created_at moved to now) is
-- checked again in its new version, so a key that names a new job is never deleted.
-- One LIMITed batch a statement: a short transaction, however large the backlog.
-- $1 most rows
DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_keys WHERE created_at < now() - interval '24 hours'
    LIMIT $1
    FOR UPDATE SKIP LOCKED
));
