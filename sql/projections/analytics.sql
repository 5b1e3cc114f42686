-- The chronik_analytics schema: views over the projections with a stable, documented set of
-- columns (docs/analytics.md). Views hold no data; this file is run again whenever a
-- projection is rebuilt or its shape changes, so they always read the live tables.
DROP SCHEMA IF EXISTS chronik_analytics CASCADE;
CREATE SCHEMA chronik_analytics;

-- One row per job: where it ended and how long it took.
CREATE VIEW chronik_analytics.jobs AS
SELECT job_id, blueprint, status, current_state, created_at, finished_at,
       extract(epoch FROM finished_at - created_at)::double precision AS duration_seconds,
       state->'error'->>'code' AS error_code,
       (state->>'parent_job_id')::uuid AS parent_job_id
FROM public.jobs;

-- One row per stay of a job in a state; left_at is NULL while the job is still there.
CREATE VIEW chronik_analytics.state_visits AS
SELECT v.job_id, v.blueprint, v.state, v.entered_at,
       coalesce(v.next_entered_at, e.ended_at) AS left_at,
       extract(epoch FROM coalesce(v.next_entered_at, e.ended_at) - v.entered_at)::double precision
           AS seconds
FROM (
    SELECT job_id, blueprint, state_after AS state, at AS entered_at,
           lead(at) OVER (PARTITION BY job_id ORDER BY version) AS next_entered_at
    FROM public.job_history
    WHERE type IN ('JobCreated', 'StateEntered', 'BranchesJoined')
) AS v
LEFT JOIN (
    SELECT job_id, at AS ended_at FROM public.job_history
    WHERE type IN ('JobFinished', 'JobFailed', 'JobCancelled')
) AS e USING (job_id);

-- One row per task attempt that ended, with its queue wait and run time.
CREATE VIEW chronik_analytics.task_attempts AS
SELECT task_id, attempt, job_id, blueprint, state, task_type, branch, queued_at, claimed_at, ended_at,
       worker_id, outcome, status, error_code, wait_seconds, run_seconds
FROM public.task_attempts;

-- Per error code: failed attempts, and what they led to.
CREATE VIEW chronik_analytics.error_rates AS
WITH codes AS (
    SELECT error_code,
           count(*) FILTER (WHERE type IN ('TaskFailed', 'TaskLost')) AS failed_attempts,
           count(*) FILTER (WHERE type = 'TaskRetryScheduled') AS retried,
           count(*) FILTER (WHERE type = 'JobQuarantined') AS quarantined,
           count(*) FILTER (WHERE type = 'BranchFailed') AS failed_branches,
           count(*) FILTER (WHERE type = 'JobFailed') AS failed_jobs
    FROM public.job_history
    WHERE error_code IS NOT NULL
    GROUP BY error_code
), total AS (SELECT count(*) AS attempts FROM public.task_attempts)
SELECT codes.error_code, codes.failed_attempts, codes.retried, codes.quarantined, codes.failed_branches,
       codes.failed_jobs,
       codes.failed_attempts::double precision / nullif(total.attempts, 0) AS share_of_attempts,
       codes.retried::double precision / nullif(codes.failed_attempts, 0) AS retry_rate,
       codes.quarantined::double precision / nullif(codes.failed_attempts, 0) AS quarantine_rate
FROM codes CROSS JOIN total;

-- Per worker and hour: attempts it ended, and how busy it was (busy_seconds / 3600 is the
-- average number of attempts it ran at once; divide by its capacity for a fraction).
CREATE VIEW chronik_analytics.worker_hours AS
SELECT worker_id, date_trunc('hour', ended_at) AS hour,
       count(*) AS attempts,
       count(*) FILTER (WHERE outcome = 'completed') AS completed,
       count(*) FILTER (WHERE outcome <> 'completed') AS not_completed,
       coalesce(sum(run_seconds), 0)::double precision AS busy_seconds,
       (coalesce(sum(run_seconds), 0) / 3600)::double precision AS utilisation
FROM public.task_attempts
WHERE worker_id IS NOT NULL AND claimed_at IS NOT NULL
GROUP BY worker_id, date_trunc('hour', ended_at);

-- One row per approval asked for, with how and when it was answered (NULL while waiting).
CREATE VIEW chronik_analytics.approvals AS
SELECT r.job_id, r.blueprint, r.state_after AS state, r.at AS requested_at, d.at AS answered_at,
       CASE WHEN d.type IS NULL THEN NULL
            WHEN d.type = 'ApprovalGiven' THEN 'decided'
            WHEN d.type = 'ApprovalTimedOut' THEN 'timed_out'
            ELSE 'abandoned' END AS answer,
       CASE WHEN d.type = 'ApprovalGiven' THEN d.outcome END AS decision,
       CASE WHEN d.type = 'ApprovalGiven' THEN d.actor END AS decided_by,
       extract(epoch FROM d.at - r.at)::double precision AS response_seconds
FROM public.job_history AS r
LEFT JOIN LATERAL (
    SELECT h.type, h.at, h.actor, h.outcome FROM public.job_history AS h
    WHERE h.job_id = r.job_id AND h.version > r.version
      AND h.type IN ('ApprovalGiven', 'ApprovalTimedOut', 'TimedOut', 'JobCancelled', 'JobFailed')
    ORDER BY h.version
    LIMIT 1
) AS d ON true
WHERE r.type = 'ApprovalRequested';
