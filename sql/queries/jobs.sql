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
-- A filter that picks few jobs is read by its own index instead: $9 jobs_client_created_idx, $2
-- jobs_status_created_idx, $10/$11 the primary key (an id prefix as a range), $12 and $13 the GIN
-- indexes of initial_data and metadata (containment, @>). The NULL tests are left to the planner:
-- with them every plan is a custom one (a generic plan, blind to which filters are set, estimates
-- about one row and a scan of the table, so PostgreSQL never prefers it to the plans with values).
-- $1 blueprint, $2 status, $3 current_state, $4 created_after, $5 created_before,
-- $6 cursor created_at, $7 cursor job_id, $8 limit, $9 the owning client (NULL: every client's),
-- $10 and $11 the lowest and highest job id (an id prefix), $12 jsonb contained in initial_data,
-- $13 jsonb contained in metadata, $14 text[] statuses, any of which
SELECT state::text AS state, created_at, job_id
FROM jobs
WHERE ($9::text IS NULL OR state->>'client' = $9)
  AND ($1::text IS NULL OR blueprint = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR current_state = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, job_id) < ($6, $7::uuid))
  AND ($10::uuid IS NULL OR job_id BETWEEN $10 AND $11::uuid)
  AND ($12::jsonb IS NULL OR state->'initial_data' @> $12)
  AND ($13::jsonb IS NULL OR state->'metadata' @> $13)
  AND ($14::text[] IS NULL OR status = ANY($14))
ORDER BY created_at DESC, job_id DESC
LIMIT $8;

-- name: list_job_keys
-- The keys of a page of jobs, newest first, as list_jobs finds them (the same filters): what a
-- batch action walks through, without reading whole states.
-- $1..$14 as list_jobs
SELECT created_at, job_id
FROM jobs
WHERE ($9::text IS NULL OR state->>'client' = $9)
  AND ($1::text IS NULL OR blueprint = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR current_state = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, job_id) < ($6, $7::uuid))
  AND ($10::uuid IS NULL OR job_id BETWEEN $10 AND $11::uuid)
  AND ($12::jsonb IS NULL OR state->'initial_data' @> $12)
  AND ($13::jsonb IS NULL OR state->'metadata' @> $13)
  AND ($14::text[] IS NULL OR status = ANY($14))
ORDER BY created_at DESC, job_id DESC
LIMIT $8;

-- name: count_jobs
-- How many jobs list_jobs would find with these filters (on every page), for a batch's dry run.
-- $1 blueprint, $2 status, $3 current_state, $4 created_after, $5 created_before, $6 the owning
-- client, $7 and $8 the lowest and highest job id, $9 jsonb contained in initial_data, $10 jsonb
-- contained in metadata, $11 text[] statuses, any of which (each NULL: no filter)
SELECT count(*)
FROM jobs
WHERE ($6::text IS NULL OR state->>'client' = $6)
  AND ($1::text IS NULL OR blueprint = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR current_state = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($7::uuid IS NULL OR job_id BETWEEN $7 AND $8::uuid)
  AND ($9::jsonb IS NULL OR state->'initial_data' @> $9)
  AND ($10::jsonb IS NULL OR state->'metadata' @> $10)
  AND ($11::text[] IS NULL OR status = ANY($11));
