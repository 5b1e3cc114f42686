-- A job's dispatch_timeout (Avtomatika's): a queued attempt's deadline_at is when a worker must
-- have taken it. The watcher reads the few queued rows that have one by this index, so jobs
-- without a dispatch_timeout (most) cost it nothing.
CREATE INDEX tasks_dispatch_deadline_idx ON tasks (deadline_at) WHERE status = 'queued' AND deadline_at IS NOT NULL;
