-- One row per task attempt that ended: answered by its worker (completed, failed), lost
-- (lease_expired, timed_out), or withdrawn because its job stopped waiting (a cancel, a
-- timeout). {table} is task_attempts, or its shadow while it is rebuilt.
CREATE TABLE {table} (
    task_id      uuid        NOT NULL,
    attempt      integer     NOT NULL,
    job_id       uuid        NOT NULL,
    blueprint    text        NOT NULL,
    state        text        NOT NULL,
    task_type    text        NOT NULL,
    branch       boolean     NOT NULL,
    queued_at    timestamptz NOT NULL,
    claimed_at   timestamptz,
    ended_at     timestamptz NOT NULL,
    worker_id    text,
    outcome      text        NOT NULL,
    status       text,
    error_code   text,
    wait_seconds double precision,
    run_seconds  double precision,
    PRIMARY KEY (task_id, attempt)
);
CREATE INDEX {table}_type_ended_idx ON {table} (task_type, ended_at);
CREATE INDEX {table}_worker_ended_idx ON {table} (worker_id, ended_at);
