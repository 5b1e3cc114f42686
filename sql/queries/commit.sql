-- name: commit_job
-- Append a job's new events and, in the same statement, rewrite its projection row and set its
-- step and task rows: one round trip, one transaction, so none of them commits without the others.
-- A unique violation on events (job_id, version) means another writer appended first.
-- $1 job_id uuid, $2 versions int[], $3 types text[], $4 data jsonb[], $5 meta jsonb,
-- $6 blueprint, $7 status, $8 current_state, $9 version, $10 created_at, $11 updated_at,
-- $12 finished_at, $13 state jsonb (the jobs row),
-- $14 step: 'enqueue' | 'delete' | 'keep', $15 when an enqueued step is due (NULL: now),
-- $16..$23 the task attempts to queue, as arrays: task_id, task_type, params jsonb, priority,
-- attempt, available_at, timeout_seconds, dispatched_at,
-- $24 task ids whose rows go (answered), $25 task ids whose rows are marked cancelled (abandoned),
-- $26 a job to wake now (the parent of a child that ended), or NULL,
-- $27 a webhook to notify (url), $28 its event name, $29 its payload jsonb, $30 its event id,
-- $31 the job's traceparent, handed to its queued tasks,
-- $32 true when the job ended now with files in S3 to remove,
-- $33 with an enqueued step due now: the lease in seconds this instance takes on it at once, to
-- run the handler itself (NULL: the step is queued for any instance), $34 this instance,
-- $35 the queued attempts' dispatch_timeout float8[] (NULL items: none): a queued row's deadline_at
-- is then when a worker must have taken it (a claim sets deadline_at anew, for the run).
-- Returns the step's claim count when this instance took it, and the database's clock.
WITH chained AS (
    -- The new events' hashes, chained from the job's head as its row holds it (this statement's
    -- snapshot: a writer that moved the job meanwhile makes the insert below fail on its version).
    SELECT chronik_chain_v1(
        (SELECT chain_head FROM jobs WHERE job_id = $1), $1, $2::int[], $3::text[], $4::jsonb[],
        array_fill($5::jsonb, ARRAY[cardinality($2::int[])]),
        array_fill(now(), ARRAY[cardinality($2::int[])])) AS hashes
), appended AS (
    INSERT INTO events (job_id, job_time, version, type, data, meta, recorded_at, hash)
    SELECT $1, chronik_job_time_v1($1), e.version, e.type, e.data, $5, now(), c.hashes[e.n]
    FROM unnest($2::int[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS e(version, type, data, n),
         chained AS c
    ORDER BY e.n
    RETURNING position
), projected AS (
    INSERT INTO jobs (job_id, blueprint, status, current_state, version, created_at, updated_at,
                      finished_at, state, chain_head)
    VALUES ($1, $6, $7, $8, $9, $10, $11, $12, $13,
            coalesce((SELECT hashes[cardinality(hashes)] FROM chained),
                     -- No events now (an import deriving the row): the head is the newest event's.
                     (SELECT hash FROM events
                      WHERE job_id = $1 AND job_time = chronik_job_time_v1($1) AND version = $9)))
    ON CONFLICT (job_id) DO UPDATE SET
        chain_head = excluded.chain_head,
        blueprint = excluded.blueprint,
        status = excluded.status,
        current_state = excluded.current_state,
        version = excluded.version,
        created_at = excluded.created_at,
        updated_at = excluded.updated_at,
        finished_at = excluded.finished_at,
        state = excluded.state
    RETURNING 1
), step_enqueued AS (
    -- A step taken here at once is inserted leased, so its trigger wakes no other instance; it
    -- counts as a claim (``attempts``), as claim_steps would have.
    INSERT INTO job_steps (job_id, run_at, leased_until, leased_by, attempts)
    SELECT $1, coalesce($15::timestamptz, now()), now() + make_interval(secs => $33::float8),
           CASE WHEN $33::float8 IS NOT NULL THEN $34::text END,
           CASE WHEN $33::float8 IS NOT NULL THEN 1 ELSE 0 END
    WHERE $14::text = 'enqueue'
    ON CONFLICT (job_id) DO UPDATE
        SET run_at = coalesce($15::timestamptz, now()),
            leased_until = now() + make_interval(secs => $33::float8),
            leased_by = CASE WHEN $33::float8 IS NOT NULL THEN $34::text END,
            attempts = job_steps.attempts + CASE WHEN $33::float8 IS NOT NULL THEN 1 ELSE 0 END
    RETURNING attempts
), step_deleted AS (
    DELETE FROM job_steps WHERE job_id = $1 AND $14::text = 'delete'
    RETURNING 1
), task_queued AS (
    -- A row already holding this attempt (leased, say) is left alone; an older attempt's row is reset.
    INSERT INTO tasks (task_id, job_id, task_type, params, priority, attempt, status, available_at,
                       timeout_seconds, dispatched_at, traceparent, deadline_at)
    SELECT q.task_id, $1, q.task_type, q.params, q.priority, q.attempt, 'queued', q.available_at,
           q.timeout_seconds, q.dispatched_at, $31::text,
           q.available_at + make_interval(secs => q.dispatch_timeout)
    FROM unnest($16::uuid[], $17::text[], $18::jsonb[], $19::int[], $20::int[], $21::timestamptz[],
                $22::float8[], $23::timestamptz[], $35::float8[])
         AS q(task_id, task_type, params, priority, attempt, available_at, timeout_seconds, dispatched_at,
              dispatch_timeout)
    ON CONFLICT (task_id) DO UPDATE SET
        attempt = excluded.attempt, status = 'queued', available_at = excluded.available_at,
        worker_id = NULL, claimed_at = NULL, lease_expires_at = NULL, deadline_at = excluded.deadline_at,
        progress = NULL, progress_message = NULL, progress_at = NULL
    WHERE tasks.attempt <> excluded.attempt
    RETURNING 1
), task_dropped AS (
    DELETE FROM tasks WHERE task_id = ANY($24::uuid[])
    RETURNING 1
), task_cancelled AS (
    -- Abandoned rows are marked with no filter on their status: a claim racing this statement
    -- may lease a queued row meanwhile, and the marking must still reach it. A held attempt's
    -- worker is told on its next heartbeat; the watcher removes each marked row once its lease
    -- (now, for a row never claimed) has run out.
    UPDATE tasks SET status = 'cancelled', lease_expires_at = coalesce(lease_expires_at, now())
    WHERE task_id = ANY($25::uuid[])
    RETURNING 1
), woken AS (
    -- Taking the lease away makes an instance that holds the step (to check a deadline, say)
    -- leave it alone, so this wake-up is never undone. ``attempts`` is never reset: it counts
    -- claims, and an instance's stale reschedule matches only the claim it made.
    INSERT INTO job_steps (job_id, run_at) SELECT $26::uuid, now() WHERE $26::uuid IS NOT NULL
    ON CONFLICT (job_id) DO UPDATE
        SET run_at = now(), leased_until = NULL, leased_by = NULL
    RETURNING 1
), files_to_remove AS (
    INSERT INTO file_cleanups (job_id) SELECT $1 WHERE $32::boolean
    ON CONFLICT (job_id) DO NOTHING
    RETURNING 1
), notified AS (
    INSERT INTO webhook_deliveries (event_id, job_id, event, url, payload)
    SELECT $30, $1, $28, $27, $29 WHERE $27::text IS NOT NULL
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
SELECT CASE WHEN $33::float8 IS NOT NULL THEN (SELECT attempts FROM step_enqueued) END AS step_attempts,
       now() AS at;
