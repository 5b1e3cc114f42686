-- The filters of the job list (GET /api/v1/jobs, the console, batch actions), each read by an
-- index when it picks few jobs, so a page or a count does not scan the table:
-- * status: newest first within one status (the quarantined, the failed, the waiting); a rare
--   status would otherwise walk jobs_created_idx through every job to fill a page.
-- * data.<key>=<value> and metadata.<key>=<value>: JSON containment (@>) on initial_data and
--   metadata. jsonb_path_ops indexes one hash per path to a value: smaller and faster for @>
--   than the default operator class, which serves key-existence tests no route offers.
-- An id prefix is a range of the primary key; a client's jobs have jobs_client_created_idx.
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at, job_id);
CREATE INDEX jobs_initial_data_idx ON jobs USING gin ((state->'initial_data') jsonb_path_ops);
CREATE INDEX jobs_metadata_idx ON jobs USING gin ((state->'metadata') jsonb_path_ops);
