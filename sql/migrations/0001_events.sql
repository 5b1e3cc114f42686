-- The event log: one immutable row per change of a job, in global order.
CREATE TABLE events (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      uuid        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    meta        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tx          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    -- Optimistic concurrency: two writers that read the same version cannot both append.
    CONSTRAINT events_job_version_key UNIQUE (job_id, version)
);

CREATE INDEX events_type_idx ON events (type);

-- Append-only is enforced by the database, not by convention: history is never edited.
CREATE FUNCTION chronik_events_append_only_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chronik: the events table is append-only; % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Events are never edited or deleted. Append a new event to change a job.';
END;
$$;

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION chronik_events_append_only_v1();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION chronik_events_append_only_v1();
