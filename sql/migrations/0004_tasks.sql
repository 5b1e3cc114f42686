-- The worker task queue: one row per task attempt waiting for or held by a worker.
-- A row leaves when its result is appended (or its job ends), so the table stays small.
CREATE TABLE tasks (
    task_id          uuid PRIMARY KEY,
    job_id           uuid        NOT NULL,
    task_type        text        NOT NULL,
    params           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority         integer     NOT NULL DEFAULT 0,
    attempt          integer     NOT NULL,
    -- queued: claimable from available_at; leased: a worker holds it until lease_expires_at;
    -- cancelled: its job was cancelled while leased, the worker is told on its next heartbeat.
    status           text        NOT NULL CHECK (status IN ('queued', 'leased', 'cancelled')),
    available_at     timestamptz NOT NULL,
    timeout_seconds  double precision,
    dispatched_at    timestamptz NOT NULL,
    worker_id        text,
    claimed_at       timestamptz,
    lease_expires_at timestamptz,
    deadline_at      timestamptz,
    -- Progress is soft state of the running attempt, shown with the job; it is not history.
    progress         double precision,
    progress_message text,
    progress_at      timestamptz
);

-- The claim reads only queued rows of the worker's types, best priority and oldest first.
CREATE INDEX tasks_queue_idx ON tasks (task_type, priority DESC, available_at) WHERE status = 'queued';
-- The watcher reads only held rows by expiry.
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status <> 'queued';
CREATE INDEX tasks_job_idx ON tasks (job_id);
CREATE INDEX tasks_worker_idx ON tasks (worker_id) WHERE status <> 'queued';

-- Wake long-polling workers of the instance; the payload is the task type only (a hint).
CREATE FUNCTION chronik_notify_task_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chronik_tasks', NEW.task_type);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify
    AFTER INSERT OR UPDATE OF status, available_at ON tasks
    FOR EACH ROW WHEN (NEW.status = 'queued')
    EXECUTE FUNCTION chronik_notify_task_v1();

-- Results are found by task id through the dispatch event, also after the queue row is gone.
CREATE INDEX events_task_dispatched_idx ON events ((data->>'task_id')) WHERE type = 'TaskDispatched';

-- Registered workers. UNLOGGED: liveness is soft state that workers re-create by registering
-- again, and no recovery ever depends on it (leases live on the task rows).
CREATE UNLOGGED TABLE workers (
    worker_id         text PRIMARY KEY,
    task_types        text[]      NOT NULL DEFAULT '{}',
    capacity          integer     NOT NULL DEFAULT 1,
    info              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    registered_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now()
);
