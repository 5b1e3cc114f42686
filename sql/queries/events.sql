-- name: read_stream
-- One job's events in order, after version $2, at most $3 of them (NULL: all).
-- $1 job_id uuid, $2 after version int, $3 limit int or NULL
SELECT position, job_id, version, type, data, meta, recorded_at
FROM events
WHERE job_id = $1 AND version > $2
ORDER BY version
LIMIT $3;

-- name: read_log
-- The next events of the whole log after a projection's checkpoint ($1 tx, $2 position), in
-- (transaction, position) order, only from transactions older than every one still running:
-- those are all committed or rolled back, so no event can appear later before this page's end.
-- $1 checkpoint tx xid8, $2 checkpoint position, $3 limit
SELECT position, job_id, version, type, data, meta, recorded_at, tx::text AS tx
FROM events
WHERE (tx, position) > ($1::xid8, $2::bigint)
  AND tx < pg_snapshot_xmin(pg_current_snapshot())
-- Qualified: the output column "tx" is text, and text would order 1000 before 992.
ORDER BY events.tx, events.position
LIMIT $3;

-- name: log_lag
-- How far a checkpoint ($1 tx, $2 position) is behind the log: events not yet applied, and
-- the age of the oldest of them.
-- $1 checkpoint tx xid8, $2 checkpoint position
SELECT count(*) AS events, extract(epoch FROM now() - min(recorded_at))::float8 AS seconds
FROM events
WHERE (tx, position) > ($1::xid8, $2::bigint);
