-- The console's overview counts jobs ended per minute and per hour over the last day, and the
-- error codes of the jobs that failed in it. Without an index on finished_at that is a scan of
-- every job ever kept; these read only the day's range, everyone's or one client's (the owner
-- is state->>'client', as in jobs_client_created_idx). Partial: a job that has not ended has no
-- entry, so the indexes grow with ended jobs only and a live job's updates add no entries.
-- status is included so the failed jobs of a range are found in the index, and the heap is read
-- only for them (their error code).
CREATE INDEX jobs_finished_idx ON jobs (finished_at, status) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_client_finished_idx ON jobs ((state->>'client'), finished_at, status)
    WHERE finished_at IS NOT NULL;
