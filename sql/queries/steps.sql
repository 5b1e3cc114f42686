-- name: claim_steps
-- Lease up to $1 due steps to this instance for $2 seconds.
-- SKIP LOCKED lets instances claim side by side without waiting on each other's rows;
-- the lease (not the row lock) is what keeps a claimed step from a second instance,
-- because no transaction stays open while the handler runs. A lease that runs out
-- (the instance died) makes the step due again.
-- Each step comes with its job's state, saving the executor a query per step.
-- $1 limit int, $2 lease seconds float8, $3 instance text
WITH due AS (
    SELECT job_id FROM job_steps
    WHERE run_at <= now() AND (leased_until IS NULL OR leased_until < now())
    ORDER BY run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE job_steps AS s
SET leased_until = now() + make_interval(secs => $2), leased_by = $3, attempts = s.attempts + 1
FROM due
WHERE s.job_id = due.job_id
RETURNING s.job_id, s.attempts, now() AS claimed_at,
          (SELECT j.state::text FROM jobs AS j WHERE j.job_id = s.job_id) AS job_state;

-- name: retry_step
-- Give a claimed step back, to run again after $2 seconds (the engine could not finish it).
-- Matching the claim count leaves alone the same job's step that a later commit took for this
-- instance meanwhile (its handler may be running).
-- $1 job_id uuid, $2 delay seconds float8, $3 instance text, $4 attempts int
UPDATE job_steps
SET run_at = now() + make_interval(secs => $2), leased_until = NULL, leased_by = NULL
WHERE job_id = $1 AND leased_by = $3 AND attempts = $4;

-- name: reschedule_claimed_step
-- A step this instance holds whose job has nothing to do now: due again at $4 (its next deadline
-- or timer), or removed when $4 is NULL. Matching the lease and attempt count leaves alone a step
-- that was enqueued or woken again meanwhile.
-- $1 job_id uuid, $2 instance text, $3 attempts int, $4 next due time or NULL
WITH moved AS (
    UPDATE job_steps SET run_at = $4, leased_until = NULL, leased_by = NULL
    WHERE job_id = $1 AND leased_by = $2 AND attempts = $3 AND leased_until IS NOT NULL
      AND $4::timestamptz IS NOT NULL
    RETURNING 1
)
DELETE FROM job_steps
WHERE job_id = $1 AND leased_by = $2 AND attempts = $3 AND leased_until IS NOT NULL
  AND $4::timestamptz IS NULL;

-- name: give_back_held_step
-- A commit that took its job's step for this instance broke before its answer came (the
-- ambiguous commit). If it did commit (the job is at the version it wrote), nobody here runs
-- that step, and it would wait out its whole lease: the lease is taken away instead, so any
-- instance claims the step now. Had it not committed, the version differs and nothing changes.
-- $1 job_id uuid, $2 instance text, $3 version the commit wrote int
UPDATE job_steps SET leased_until = NULL, leased_by = NULL
WHERE job_id = $1 AND leased_by = $2 AND leased_until IS NOT NULL
  AND EXISTS (SELECT 1 FROM jobs WHERE job_id = $1 AND version = $3);

-- name: renew_step_leases
-- Extend the leases of the steps whose handlers this instance is still running.
-- $1 job_ids uuid[], $2 lease seconds float8, $3 instance text
UPDATE job_steps SET leased_until = now() + make_interval(secs => $2)
WHERE job_id = ANY($1::uuid[]) AND leased_by = $3 AND leased_until IS NOT NULL;

-- name: seconds_to_next_step
-- How long until the next step that is not due yet becomes due (a timer); NULL when none waits.
SELECT extract(epoch FROM min(run_at) - now())::float8 FROM job_steps WHERE run_at > now();

-- name: steps_due
-- Handler runs and timers that are due now and not taken by an instance.
SELECT count(*) FROM job_steps WHERE run_at <= now() AND (leased_until IS NULL OR leased_until < now());
