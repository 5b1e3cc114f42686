-- Projections that follow the log asynchronously (job_history, task_attempts, ...), each from
-- its own checkpoint. A checkpoint is the (transaction id, position) of the last event applied:
-- the log is read in that order and only below the oldest transaction still running
-- (pg_snapshot_xmin), so an event of a transaction that commits late is never passed over.
-- The projections' own tables are created from sql/projections/*.sql by the projector code,
-- which rebuilds them from the log when their shape changes (``version``).
CREATE TABLE projection_checkpoints (
    name       text PRIMARY KEY,
    version    integer     NOT NULL,
    tx         xid8        NOT NULL DEFAULT '0',
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_tx_position_idx ON events (tx, position);
