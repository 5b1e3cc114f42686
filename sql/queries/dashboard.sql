-- name: count_jobs_by_status
-- Every job per status, with the task attempts of each status's jobs that wait in the queue for a
-- worker. Only a job that has not ended can have queued attempts, so the per-job look into tasks
-- (tasks_job_idx) is made for the live jobs only. A full scan of jobs: an admin's dashboard.
SELECT status, count(*)::int AS jobs,
       coalesce(sum(CASE WHEN finished_at IS NULL THEN
           (SELECT count(*) FROM tasks t WHERE t.job_id = j.job_id AND t.status = 'queued') END), 0)::int
           AS queued
FROM jobs j
GROUP BY status;

-- name: count_client_jobs_by_status
-- As count_jobs_by_status, for the jobs of client $1 only: they are found by the expression index
-- jobs_client_created_idx, so the cost follows the client's jobs, not everyone's. (A separate
-- query, not "$1 IS NULL OR ...": a generic plan of that would scan every job for every client.)
-- $1 client
SELECT status, count(*)::int AS jobs,
       coalesce(sum(CASE WHEN finished_at IS NULL THEN
           (SELECT count(*) FROM tasks t WHERE t.job_id = j.job_id AND t.status = 'queued') END), 0)::int
           AS queued
FROM jobs j
WHERE state->>'client' = $1
GROUP BY status;
