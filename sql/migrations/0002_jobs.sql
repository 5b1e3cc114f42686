-- The current-state projection, written in the same transaction as each append.
-- "state" holds the whole folded JobState; the other columns are its queryable parts.
CREATE TABLE jobs (
    job_id        uuid PRIMARY KEY,
    blueprint     text        NOT NULL,
    status        text        NOT NULL,
    current_state text        NOT NULL,
    version       integer     NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    state         jsonb       NOT NULL
);

-- Live jobs are few and hot; ended ones pile up. A partial index keeps the hot
-- queries independent of how much history there is.
CREATE INDEX jobs_live_idx ON jobs (blueprint, current_state) WHERE status = 'running';
CREATE INDEX jobs_created_idx ON jobs (created_at, job_id);
