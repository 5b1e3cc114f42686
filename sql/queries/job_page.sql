-- name: job_events_of_types_down
-- One job's events of the types $2 at or below version $3, newest first, at most $4: a page of
-- the console's filtered timeline (it walks the (job_id, version) index backwards from $3).
-- $1 job_id uuid, $2 types text[], $3 version int, $4 limit int or NULL (all)
SELECT position, job_id, version, type, data, meta, recorded_at
FROM events
WHERE job_id = $1 AND job_time = chronik_job_time_v1($1) AND version <= $3 AND type = ANY($2::text[])
ORDER BY version DESC
LIMIT $4;

-- name: job_version_after_types
-- The newest version, and how many there are, of the next (at most $4) events of the types $2
-- above version $3: where the console's filtered timeline's "newer" page ends.
-- $1 job_id uuid, $2 types text[], $3 version int, $4 page size int
SELECT max(version) AS newest, count(*) AS found FROM (
    SELECT version FROM events
    WHERE job_id = $1 AND job_time = chronik_job_time_v1($1) AND version > $3 AND type = ANY($2::text[])
    ORDER BY version
    LIMIT $4
) AS page;

-- name: job_moves
-- The moves a job made between states, counted: each (from, to) pair it took, and its first
-- state (a NULL from). The result has a row per distinct move, however long the log is.
-- $1 job_id uuid
SELECT data->>'from_state' AS from_state, data->>'state' AS state, count(*) AS times
FROM events
WHERE job_id = $1 AND job_time = chronik_job_time_v1($1) AND type IN ('StateEntered', 'BranchesJoined')
GROUP BY 1, 2
UNION ALL
SELECT NULL, data->>'start_state', 1 FROM events WHERE job_id = $1 AND job_time = chronik_job_time_v1($1) AND version = 1;

-- name: job_open_tasks
-- The queue rows of a job's attempts that are waiting for or held by a worker now.
-- $1 job_id uuid
SELECT task_id, attempt, status, worker_id, claimed_at, lease_expires_at
FROM tasks WHERE job_id = $1;
