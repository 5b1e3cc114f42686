-- The audit trail a person reads: one row per event, with who did it, the job's status and
-- state before and after, the task and worker involved, and the time since the job's
-- previous event. ``outcome`` is what the event decided: a worker's status, a person's
-- decision, a child's end, a deadline's scope. {table} is job_history, or its shadow while it
-- is rebuilt.
CREATE TABLE {table} (
    position         bigint PRIMARY KEY,
    job_id           uuid        NOT NULL,
    version          integer     NOT NULL,
    blueprint        text        NOT NULL,
    type             text        NOT NULL,
    at               timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL,
    actor            text        NOT NULL,
    status_before    text,
    status_after     text        NOT NULL,
    state_before     text,
    state_after      text        NOT NULL,
    task_id          uuid,
    task_type        text,
    attempt          integer,
    worker_id        text,
    error_code       text,
    outcome          text,
    duration_seconds double precision NOT NULL,
    summary          text        NOT NULL
);
CREATE UNIQUE INDEX {table}_job_version_idx ON {table} (job_id, version);
CREATE INDEX {table}_at_idx ON {table} (at);
CREATE INDEX {table}_blueprint_type_idx ON {table} (blueprint, type);
