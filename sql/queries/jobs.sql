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
