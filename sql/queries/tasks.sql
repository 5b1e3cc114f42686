-- name: claim_tasks
-- Lease up to $3 queued tasks of the types $2 to worker $1 for $4 seconds, best priority first,
-- then oldest. SKIP LOCKED lets concurrent polls take different rows without waiting.
-- $1 worker_id, $2 task types text[], $3 limit, $4 lease seconds
WITH next AS (
    SELECT task_id FROM tasks
    WHERE status = 'queued' AND task_type = ANY($2::text[]) AND available_at <= now()
    ORDER BY priority DESC, available_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks AS t
SET status = 'leased', worker_id = $1, claimed_at = now(),
    lease_expires_at = now() + make_interval(secs => $4),
    deadline_at = CASE WHEN t.timeout_seconds IS NULL THEN NULL
                       ELSE now() + make_interval(secs => t.timeout_seconds) END
FROM next
WHERE t.task_id = next.task_id
RETURNING t.task_id, t.job_id, t.task_type, t.params::text AS params, t.priority, t.attempt,
          t.timeout_seconds, t.claimed_at, t.deadline_at, t.traceparent;

-- name: find_task
-- The queue row of a task with its job's state, to settle a result against it. No lock: the
-- settlement appends at the version it read, so a concurrent change makes it decide again.
-- A fan-out branch's job comes without its state (it is large, and read again under a lock).
-- $1 task_id
SELECT t.task_id, t.job_id, t.task_type, t.attempt, t.status, t.worker_id, t.claimed_at,
       j.state ? 'fan_out' AND j.state->'fan_out' <> 'null'::jsonb AS fan_out,
       CASE WHEN j.state->'fan_out' IS NULL OR j.state->'fan_out' = 'null'::jsonb
            THEN j.state::text END AS job_state
FROM tasks AS t LEFT JOIN jobs AS j ON j.job_id = t.job_id
WHERE t.task_id = $1;

-- name: find_task_locked
-- The same, inside a transaction, locking the job's row: results of one job settle in turn.
-- $1 task_id
SELECT t.task_id, t.job_id, t.task_type, t.attempt, t.status, t.worker_id, t.claimed_at,
       false AS fan_out, j.state::text AS job_state
FROM tasks AS t JOIN jobs AS j ON j.job_id = t.job_id
WHERE t.task_id = $1
FOR UPDATE OF j;

-- name: find_tasks
-- The queue rows of several tasks (without their jobs' states), to sort a batch of results by job.
-- $1 task ids uuid[]
SELECT task_id, job_id, task_type, attempt, status, worker_id, claimed_at
FROM tasks
WHERE task_id = ANY($1::uuid[]);

-- name: lock_job_state
-- The state of a job, locking its row until the transaction ends: the results of one job that
-- arrive in one batch settle together, and behind any other writer of the job that queues.
-- $1 job_id
SELECT state::text AS job_state FROM jobs WHERE job_id = $1 FOR UPDATE;

-- name: find_dispatched_task
-- The job that dispatched a task (alone or as a fan-out branch), for a task whose queue row is gone.
-- $1 task_id as text
(SELECT job_id FROM events WHERE type = 'TaskDispatched' AND data->>'task_id' = $1 LIMIT 1)
UNION ALL
(SELECT job_id FROM events
 WHERE type = 'ParallelDispatched'
   AND data->'branches' @> jsonb_build_array(jsonb_build_object('task_id', $1::text))
 LIMIT 1)
LIMIT 1;

-- name: delete_task
-- Remove one queue row, if it still holds the attempt and status the caller saw.
-- $1 task_id, $2 attempt, $3 status
DELETE FROM tasks WHERE task_id = $1 AND attempt = $2 AND status = $3;

-- name: extend_worker_leases
-- A worker is alive: extend the leases of the attempts it says it runs ($3, as (task, attempt)
-- pairs), or of every attempt it holds when it does not say ($3 is NULL). A worker restarted
-- under the same id runs none of its old attempts, so their leases lapse.
-- $1 worker_id, $2 lease seconds, $3 task ids uuid[] or NULL, $4 attempts int[]
UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $2)
WHERE worker_id = $1 AND status = 'leased'
  AND ($3::uuid[] IS NULL
       OR (task_id, attempt) IN (SELECT t, a FROM unnest($3::uuid[], $4::int[]) AS held(t, a)));

-- name: cancelled_tasks_of_worker
-- Attempts the worker holds whose jobs were cancelled: it should stop them.
-- $1 worker_id
SELECT task_id, attempt FROM tasks WHERE worker_id = $1 AND status = 'cancelled';

-- name: record_progress
-- Progress of an attempt the worker holds; extends that attempt's lease. Returns its status.
-- $1 task_id, $2 worker_id, $3 progress, $4 message, $5 lease seconds, $6 attempt
UPDATE tasks SET progress = $3, progress_message = $4, progress_at = now(),
                 lease_expires_at = CASE WHEN status = 'leased' THEN now() + make_interval(secs => $5)
                                         ELSE lease_expires_at END
WHERE task_id = $1 AND worker_id = $2 AND attempt = $6 AND status IN ('leased', 'cancelled')
RETURNING status;

-- name: expired_tasks
-- Held attempts whose lease ran out or that ran past their deadline, and queued attempts no worker
-- took by their dispatch deadline (a job's dispatch_timeout). Not locked: the watcher appends at
-- the version it read, so a result settled meanwhile makes it skip the attempt.
-- $1 limit
SELECT task_id, job_id, attempt, status, worker_id, claimed_at,
       CASE WHEN status = 'queued' THEN 'not_taken'
            WHEN deadline_at IS NOT NULL AND deadline_at < now() AND status = 'leased' THEN 'timed_out'
            ELSE 'lease_expired' END AS reason
FROM tasks
WHERE (status <> 'queued'
       AND (lease_expires_at < now() OR (deadline_at IS NOT NULL AND deadline_at < now())))
   OR (status = 'queued' AND deadline_at < now())
ORDER BY lease_expires_at NULLS LAST
LIMIT $1;

-- name: attempt_history
-- What the log says of worker $4 and attempt $3 of task $2: whether a result of it was already
-- taken in (a repeat is then a duplicate), and whether the worker lost it (a result is then late).
-- $1 job_id, $2 task_id text, $3 attempt int, $4 worker_id text
SELECT bool_or(type IN ('TaskCompleted', 'TaskFailed', 'TaskResultIgnored')) AS answered,
       bool_or(type = 'TaskLost') AS lost
FROM events
WHERE job_id = $1 AND job_time = chronik_job_time_v1($1) AND type IN ('TaskCompleted', 'TaskFailed', 'TaskLost', 'TaskResultIgnored')
  AND data->>'task_id' = $2 AND (data->>'attempt')::int = $3 AND data->>'worker_id' = $4;


-- name: queue_depths
-- Per task type: attempts waiting for a worker now, and the age of the oldest of them.
SELECT task_type, count(*) AS queued,
       coalesce(extract(epoch FROM now() - min(available_at)), 0)::float8 AS oldest_seconds
FROM tasks WHERE status = 'queued' AND available_at <= now()
GROUP BY task_type;
