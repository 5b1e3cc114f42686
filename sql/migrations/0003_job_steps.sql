-- The orchestrator's own queue: jobs whose current state's handler must run.
-- A row leaves the table when the handler's outcome is appended, so it stays small.
CREATE TABLE job_steps (
    job_id       uuid PRIMARY KEY,
    run_at       timestamptz NOT NULL DEFAULT now(),
    leased_until timestamptz,
    leased_by    text,
    attempts     integer     NOT NULL DEFAULT 0
);

CREATE INDEX job_steps_run_at_idx ON job_steps (run_at);

-- Wake idle instances. The payload is only the job id: a notification is a hint,
-- and the periodic poll guarantees progress when one is lost.
CREATE FUNCTION chronik_notify_step_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chronik_steps', NEW.job_id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_steps_notify
    AFTER INSERT OR UPDATE OF run_at ON job_steps
    FOR EACH ROW WHEN (NEW.leased_until IS NULL)
    EXECUTE FUNCTION chronik_notify_step_v1();
