-- name: upsert_job
-- Write the current-state projection of one job.
-- $1 job_id, $2 blueprint, $3 status, $4 current_state, $5 version, $6 created_at,
-- $7 updated_at, $8 finished_at, $9 state jsonb
INSERT INTO jobs (job_id, blueprint, status, current_state, version, created_at, updated_at, finished_at, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (job_id) DO UPDATE SET
    blueprint = excluded.blueprint,
    status = excluded.status,
    current_state = excluded.current_state,
    version = excluded.version,
    created_at = excluded.created_at,
    updated_at = excluded.updated_at,
    finished_at = excluded.finished_at,
    state = excluded.state;

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
-- $1..$9 as in upsert_job
SELECT $1::uuid AS job_id, $2::text AS blueprint, $3::text AS status, $4::text AS current_state,
       $5::integer AS version, $6::timestamptz AS created_at, $7::timestamptz AS updated_at,
       $8::timestamptz AS finished_at, $9::jsonb::text AS state;
