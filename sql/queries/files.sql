-- name: claim_file_cleanups
-- Lease up to $1 ended jobs whose files are to be removed, for $2 seconds.
-- $1 limit, $2 lease seconds
WITH due AS (
    SELECT job_id FROM file_cleanups
    WHERE leased_until IS NULL OR leased_until < now()
    ORDER BY created_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE file_cleanups AS f SET leased_until = now() + make_interval(secs => $2)
FROM due WHERE f.job_id = due.job_id
RETURNING f.job_id;

-- name: finish_file_cleanup
-- The job's folder is empty: forget it.
-- $1 job_id
DELETE FROM file_cleanups WHERE job_id = $1;
