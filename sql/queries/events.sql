-- name: read_stream
-- One job's events in order.
-- $1 job_id uuid
SELECT position, job_id, version, type, data, meta, recorded_at
FROM events
WHERE job_id = $1
ORDER BY version;
