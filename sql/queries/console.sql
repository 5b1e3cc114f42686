-- name: open_console_session
-- A new console session for client $2, admin $3, with CSRF token $4, for $5 seconds.
-- $1 the session id's SHA-256 digest
INSERT INTO console_sessions (session_sha256, client, is_admin, csrf_token, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5));

-- name: find_console_session
-- The live session whose id has the digest $1, if any.
SELECT client, is_admin, csrf_token FROM console_sessions
WHERE session_sha256 = $1 AND expires_at > now();

-- name: close_console_session
-- Sign out: the session ends at once.
-- $1 the session id's digest
DELETE FROM console_sessions WHERE session_sha256 = $1;

-- name: prune_console_sessions
-- Housekeeping: sessions past their expiry.
DELETE FROM console_sessions WHERE expires_at <= now();

-- name: console_jobs_per_minute
-- The console's overview: jobs created and jobs ended per minute since $1 (a day ago), every
-- client's. Each half reads one index range (jobs_created_idx, jobs_finished_idx), so the cost
-- follows the day's jobs, never the whole table. date_bin, not date_trunc: minutes of absolute
-- time, whatever the session's time zone.
-- $1 since
SELECT 'created' AS kind, date_bin('1 minute', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS minute,
       count(*)::int AS jobs
FROM jobs WHERE created_at >= $1 GROUP BY 2
UNION ALL
SELECT 'ended', date_bin('1 minute', finished_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), count(*)::int
FROM jobs WHERE finished_at >= $1 GROUP BY 2;

-- name: console_client_jobs_per_minute
-- As console_jobs_per_minute, for client $2's jobs only (jobs_client_created_idx,
-- jobs_client_finished_idx). A separate query, not "$2 IS NULL OR ...", whose generic plan would
-- read every client's range.
-- $1 since, $2 client
SELECT 'created' AS kind, date_bin('1 minute', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS minute,
       count(*)::int AS jobs
FROM jobs WHERE state->>'client' = $2 AND created_at >= $1 GROUP BY 2
UNION ALL
SELECT 'ended', date_bin('1 minute', finished_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), count(*)::int
FROM jobs WHERE state->>'client' = $2 AND finished_at >= $1 GROUP BY 2;

-- name: console_failure_codes
-- The error codes of the jobs that failed since $1, most frequent first, every client's. The
-- range and the status come from jobs_finished_idx; only the failed jobs' rows are read.
-- $1 since, $2 how many codes
SELECT coalesce(state->'error'->>'code', '') AS code, count(*)::int AS jobs
FROM jobs WHERE finished_at >= $1 AND status = 'failed'
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2;

-- name: console_client_failure_codes
-- As console_failure_codes, for client $3's jobs only (jobs_client_finished_idx).
-- $1 since, $2 how many codes, $3 client
SELECT coalesce(state->'error'->>'code', '') AS code, count(*)::int AS jobs
FROM jobs WHERE state->>'client' = $3 AND finished_at >= $1 AND status = 'failed'
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2;

-- name: console_queue
-- Task attempts waiting in the queue, and how long the one waiting longest for a worker has
-- waited (an attempt in its retry backoff is not waiting yet). The queue table stays small: rows
-- leave when their result is in.
SELECT count(*)::int AS queued,
       extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now()))::float8
           AS oldest_seconds
FROM tasks WHERE status = 'queued';

-- name: console_client_queue
-- As console_queue, for client $1's jobs' attempts only: one primary-key probe of jobs per
-- queued attempt.
-- $1 client
SELECT count(*)::int AS queued,
       extract(epoch FROM now() - min(t.available_at) FILTER (WHERE t.available_at <= now()))::float8
           AS oldest_seconds
FROM tasks t JOIN jobs j ON j.job_id = t.job_id
WHERE t.status = 'queued' AND j.state->>'client' = $1;

-- name: console_last_schedule_runs
-- Each named schedule's last fire and its job (status, owner), if it fired at all and the job is
-- still kept: one backwards probe of schedule_runs' primary key per name.
-- $1 schedule names
SELECT n.name, r.fire_time, r.job_id, j.status, j.state->>'client' AS client
FROM unnest($1::text[]) AS n(name)
LEFT JOIN LATERAL (
    SELECT s.fire_time, s.job_id FROM schedule_runs s
    WHERE s.name = n.name ORDER BY s.fire_time DESC LIMIT 1
) AS r ON true
LEFT JOIN jobs j ON j.job_id = r.job_id;

-- name: console_statement_timeout
-- The analytics page reads views that may scan the whole history: cap each of its statements
-- at $1 (e.g. '10s'), for this transaction only, so a slow page cannot load the orchestrator's
-- database for long.
-- $1 a duration
SELECT set_config('statement_timeout', $1, true);

-- name: console_state_times
-- The analytics page: time per state since $1 (stays that ended), median and 95th percentile,
-- slowest first. state_visits reads job_history whole (its window function needs every visit).
-- $1 since, $2 most rows
SELECT blueprint, state, count(*)::int AS visits,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95
FROM chronik_analytics.state_visits
WHERE entered_at >= $1 AND seconds IS NOT NULL
GROUP BY blueprint, state
ORDER BY p95 DESC, blueprint, state
LIMIT $2;

-- name: console_task_error_rates
-- The analytics page: per task type, the attempts that ended since $1 (withdrawn ones left out:
-- their job stopped waiting, the worker did not fail), how many failed (a worker's failure) or
-- were lost (lease expired, timed out), and the share of both.
-- $1 since, $2 most rows
SELECT task_type, count(*)::int AS attempts,
       count(*) FILTER (WHERE outcome = 'failed')::int AS failed,
       count(*) FILTER (WHERE outcome IN ('lease_expired', 'timed_out'))::int AS lost,
       (count(*) FILTER (WHERE outcome IN ('failed', 'lease_expired', 'timed_out')))::float8
           / count(*) AS error_rate
FROM chronik_analytics.task_attempts
WHERE ended_at >= $1 AND outcome <> 'withdrawn'
GROUP BY task_type
ORDER BY error_rate DESC, task_type
LIMIT $2;

-- name: console_throughput
-- The analytics page: jobs that ended since $1 per bucket of $2 seconds, by how they ended.
-- chronik_analytics.jobs is a plain view of jobs, so the range reads jobs_finished_idx.
-- $1 since, $2 bucket width in seconds
SELECT date_bin(make_interval(secs => $2), finished_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       count(*) FILTER (WHERE status = 'finished')::int AS finished,
       count(*) FILTER (WHERE status = 'failed')::int AS failed,
       count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled
FROM chronik_analytics.jobs
WHERE finished_at >= $1
GROUP BY 1
ORDER BY 1;
