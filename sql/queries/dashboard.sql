-- name: count_jobs_by_status
-- The jobs that have not ended, per status, with their task attempts that wait in the queue for a
-- worker; and the jobs that ended in the last $1 hours, per status. Never a scan of history: the
-- live jobs are few (jobs_status_created_idx finds them), the ended ones are read by their end
-- time (jobs_finished_idx), so the answer costs the same with a million old jobs as with none.
-- $1 hours, $2 the statuses of jobs that have not ended
SELECT status, count(*)::int AS jobs,
       coalesce(sum((SELECT count(*) FROM tasks t WHERE t.job_id = j.job_id AND t.status = 'queued')), 0)::int
           AS queued
FROM jobs j
WHERE status = ANY($2::text[])
GROUP BY status
UNION ALL
SELECT status, count(*)::int, 0
FROM jobs
WHERE finished_at >= now() - make_interval(hours => $1) AND NOT (status = ANY($2::text[]))
GROUP BY status;

-- name: count_client_jobs_by_status
-- As count_jobs_by_status, for the jobs of client $3 only (its ended ones through
-- jobs_client_finished_idx). A separate query, not "$3 IS NULL OR ...": a generic plan of that
-- would read every client's ended jobs for each one.
-- $1 hours, $2 the statuses of jobs that have not ended, $3 client
SELECT status, count(*)::int AS jobs,
       coalesce(sum((SELECT count(*) FROM tasks t WHERE t.job_id = j.job_id AND t.status = 'queued')), 0)::int
           AS queued
FROM jobs j
WHERE status = ANY($2::text[]) AND state->>'client' = $3
GROUP BY status
UNION ALL
SELECT status, count(*)::int, 0
FROM jobs
WHERE state->>'client' = $3 AND finished_at >= now() - make_interval(hours => $1)
  AND NOT (status = ANY($2::text[]))
GROUP BY status;
