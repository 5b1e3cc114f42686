-- name: read_stream
-- One job's events in order, after version $2, at most $3 of them (NULL: all).
-- $1 job_id uuid, $2 after version int, $3 limit int or NULL
SELECT position, job_id, version, type, data, meta, recorded_at
FROM events
WHERE job_id = $1 AND version > $2
ORDER BY version
LIMIT $3;
