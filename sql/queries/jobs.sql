-- name: get_job_state
-- The folded state of one job, as the projection holds it.
-- $1 job_id uuid
SELECT state FROM jobs WHERE job_id = $1;

-- name: get_job_row
-- Every column of one job's projection row, for comparisons with a fresh fold.
-- $1 job_id uuid
SELECT job_id, blueprint, status, current_state, version, created_at, updated_at, finished_at, state::text AS state
FROM jobs WHERE job_id = $1;

-- name: normalize_job_row
-- A projection row as PostgreSQL would store it, to compare with a stored one byte for byte.
-- $1..$9 the jobs row, in column order
SELECT $1::uuid AS job_id, $2::text AS blueprint, $3::text AS status, $4::text AS current_state,
       $5::integer AS version, $6::timestamptz AS created_at, $7::timestamptz AS updated_at,
       $8::timestamptz AS finished_at, $9::jsonb::text AS state;

-- name: get_job_with_progress
-- A job's state and the last progress a worker reported for its task, for the status route.
-- $1 job_id uuid
SELECT j.state::text AS state, p.progress, p.progress_message, p.progress_at, p.worker_id
FROM jobs AS j
LEFT JOIN LATERAL (
    SELECT progress, progress_message, progress_at, worker_id FROM tasks
    WHERE tasks.job_id = j.job_id AND progress IS NOT NULL
    ORDER BY progress_at DESC LIMIT 1
) AS p ON true
WHERE j.job_id = $1;

-- name: list_jobs
-- A page of jobs, newest first, after the keyset cursor ($6, $7); every filter is optional (NULL).
-- The ORDER BY matches jobs_created_idx, read backwards, so a page costs the same at any depth.
-- $1 blueprint, $2 status, $3 current_state, $4 created_after, $5 created_before,
-- $6 cursor created_at, $7 cursor job_id, $8 limit, $9 the owning client (NULL: every client's)
SELECT state::text AS state, created_at, job_id
FROM jobs
WHERE ($9::text IS NULL OR state->>'client' = $9)
  AND ($1::text IS NULL OR blueprint = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR current_state = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, job_id) < ($6, $7::uuid))
ORDER BY created_at DESC, job_id DESC
LIMIT $8;
