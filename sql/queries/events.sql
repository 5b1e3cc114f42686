-- name: append_events
-- Append a job's new events in version order; a unique violation means another writer won.
-- $1 job_id uuid, $2 versions int[], $3 types text[], $4 data jsonb[], $5 meta jsonb
INSERT INTO events (job_id, version, type, data, meta)
SELECT $1, e.version, e.type, e.data, $5
FROM unnest($2::int[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS e(version, type, data, n)
ORDER BY e.n
RETURNING position;

-- name: read_stream
-- One job's events in order.
-- $1 job_id uuid
SELECT position, job_id, version, type, data, meta, recorded_at
FROM events
WHERE job_id = $1
ORDER BY version;
