-- name: read_stream
-- One job's events in order, after version $2, at most $3 of them (NULL: all).
-- $1 job_id uuid, $2 after version int, $3 limit int or NULL
SELECT position, job_id, version, type, data, meta, recorded_at
FROM events
WHERE job_id = $1 AND job_time = chronik_job_time_v1($1) AND version > $2
ORDER BY version
LIMIT $3;

-- name: read_log
-- The next events of the whole log after a projection's checkpoint ($1 tx, $2 position), in
-- (transaction, position) order, only from transactions older than every one still running that
-- could append to the log (chronik_log_horizon_v1): those are all committed or rolled back, so no
-- event can appear later before this page's end.
-- $1 checkpoint tx xid8, $2 checkpoint position, $3 limit
SELECT position, job_id, version, type, data, meta, recorded_at, tx::text AS tx
FROM events
WHERE (tx, position) > ($1::xid8, $2::bigint)
  AND tx < (SELECT chronik_log_horizon_v1())
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

-- name: export_events
-- The whole log after position $1, in position order, for ``chronik events export``.
-- $1 position
SELECT position, job_id, version, type, data::text AS data, meta::text AS meta, recorded_at, hash
FROM events WHERE position > $1 ORDER BY position;

-- name: count_events
-- How many events the log holds.
SELECT count(*) FROM events;

-- name: import_events
-- Load exported events with their own positions and hashes (an import, or an archive restored).
-- $1 positions, $2 job ids, $3 versions, $4 types, $5 data jsonb[], $6 meta jsonb[], $7 recorded_at,
-- $8 hashes bytea[]
INSERT INTO events (position, job_id, job_time, version, type, data, meta, recorded_at, hash)
OVERRIDING SYSTEM VALUE
SELECT e.position, e.job_id, chronik_job_time_v1(e.job_id), e.version, e.type, e.data, e.meta,
       e.recorded_at, e.hash
FROM unnest($1::bigint[], $2::uuid[], $3::int[], $4::text[], $5::jsonb[], $6::jsonb[],
            $7::timestamptz[], $8::bytea[]) AS e(position, job_id, version, type, data, meta, recorded_at, hash);

-- name: canonical_json
-- The text PostgreSQL stores for each JSON document, as the hash chain encodes it.
-- $1 jsonb[]
SELECT d::text AS text FROM unnest($1::jsonb[]) WITH ORDINALITY AS u(d, n) ORDER BY n;

-- name: continue_positions
-- After an import, new events continue after the highest imported position.
SELECT setval(pg_get_serial_sequence('events', 'position'), greatest(max(position), 1)) FROM events;

-- name: log_horizon_holder
-- The session whose open transaction holds the projections' horizon, when one does and it can be
-- seen: what an operator looks for when the projections lag.
SELECT a.pid, a.datname, a.usename, a.application_name, a.state, a.xact_start,
       left(a.query, 200) AS query
FROM pg_stat_activity AS a
WHERE a.backend_xid IS NOT NULL
  AND a.backend_xid::text = (chronik_log_horizon_v1()::text::bigint % 4294967296)::text;
