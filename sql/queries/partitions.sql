-- name: ensure_partitions
-- Create the log's partitions missing from the one holding $1 until $2, each $3 days long.
-- $1 since timestamptz, $2 until timestamptz, $3 days int
SELECT name FROM chronik_ensure_partitions_v1($1, $2, $3) AS name;

-- name: list_partitions
-- Every partition of the log, live or archived, oldest first.
SELECT name, lo, hi, status, archived_at, archive_uri, events, jobs, sha256
FROM event_partitions ORDER BY lo;

-- name: partition_plan
-- Per live partition that no new job can enter any more (its range is over): how many jobs it
-- holds, how many still run, whether a job is kept forever (no retention for it), when the last
-- one's retention ends, and the job that holds it longest. A job is kept for its blueprint's
-- retention, else the default; a failed one (quarantined ones are failed) for the failed
-- retention when that is longer. NULL retention: kept forever.
-- $1 default retention seconds float8 or NULL, $2 failed retention seconds or NULL,
-- $3 blueprint names text[], $4 their retention seconds float8[] (NULL items: forever)
WITH kept AS (
    SELECT p.name, j.job_id, j.status, j.finished_at,
           CASE WHEN base.keep IS NULL THEN NULL
                WHEN j.status = 'failed' AND $2::float8 IS NOT NULL THEN greatest(base.keep, $2::float8)
                ELSE base.keep END AS keep
    FROM event_partitions AS p
    JOIN jobs AS j ON chronik_job_time_v1(j.job_id) >= p.lo AND chronik_job_time_v1(j.job_id) < p.hi
    LEFT JOIN unnest($3::text[], $4::float8[]) AS b(name, keep) ON b.name = j.blueprint
    CROSS JOIN LATERAL (SELECT CASE WHEN b.name IS NULL THEN $1::float8 ELSE b.keep END AS keep) AS base
    WHERE p.status = 'live' AND p.hi <= now()
)
SELECT p.name, p.lo, p.hi,
       count(k.job_id)::bigint AS jobs,
       count(k.job_id) FILTER (WHERE k.finished_at IS NULL)::bigint AS running,
       count(k.job_id) FILTER (WHERE k.finished_at IS NOT NULL AND k.keep IS NULL)::bigint AS forever,
       max(k.finished_at + make_interval(secs => k.keep)) AS leaves_at,
       (SELECT k2.job_id FROM kept AS k2 WHERE k2.name = p.name
        ORDER BY k2.finished_at IS NOT NULL, k2.keep IS NOT NULL,
                 k2.finished_at + make_interval(secs => k2.keep) DESC LIMIT 1) AS holder
FROM event_partitions AS p
LEFT JOIN kept AS k ON k.name = p.name
WHERE p.status = 'live' AND p.hi <= now()
GROUP BY p.name, p.lo, p.hi
ORDER BY p.lo;

-- name: partition_events
-- A partition's events, one job after another in version order (an archive file's order).
-- $1 lo timestamptz, $2 hi timestamptz
SELECT position, job_id, version, type, data::text AS data, meta::text AS meta, recorded_at, hash
FROM events WHERE job_time >= $1 AND job_time < $2
ORDER BY job_id, version;

-- name: record_archived_jobs
-- Index a batch of archived jobs: which archive file holds each one's events and where, and its
-- owner and end, from its jobs row (or, for a job archived before whose row is gone, as indexed).
-- $1 partition, $2 archive key, $3 job ids uuid[], $4 byte offsets bigint[], $5 byte lengths bigint[],
-- $6 event counts int[], $7 chain heads bytea[]
INSERT INTO archived_jobs (job_id, partition, archive_key, byte_offset, byte_length, events, chain_head,
                           blueprint, status, client, created_at, finished_at)
SELECT a.job_id, $1, $2, a.byte_offset, a.byte_length, a.events, a.chain_head,
       coalesce(j.blueprint, o.blueprint), coalesce(j.status, o.status),
       CASE WHEN j.job_id IS NULL THEN o.client ELSE j.state->>'client' END,
       coalesce(j.created_at, o.created_at), coalesce(j.finished_at, o.finished_at)
FROM unnest($3::uuid[], $4::bigint[], $5::bigint[], $6::int[], $7::bytea[])
     AS a(job_id, byte_offset, byte_length, events, chain_head)
LEFT JOIN jobs AS j ON j.job_id = a.job_id
LEFT JOIN archived_jobs AS o ON o.job_id = a.job_id
ON CONFLICT (job_id) DO UPDATE SET
    partition = excluded.partition, archive_key = excluded.archive_key,
    byte_offset = excluded.byte_offset, byte_length = excluded.byte_length, events = excluded.events,
    chain_head = excluded.chain_head, blueprint = excluded.blueprint, status = excluded.status,
    client = excluded.client, created_at = excluded.created_at, finished_at = excluded.finished_at;

-- name: forget_archived_jobs
-- Remove the live rows of archived jobs (their current state and audit-trail projections) whose
-- log did not move since it was archived; a job revived meanwhile keeps its rows.
-- $1 job ids uuid[]
WITH gone AS (
    DELETE FROM jobs AS j USING archived_jobs AS a
    WHERE j.job_id = ANY($1::uuid[]) AND a.job_id = j.job_id AND j.version = a.events
    RETURNING j.job_id
), history AS (
    DELETE FROM job_history WHERE job_id IN (SELECT job_id FROM gone)
    RETURNING 1
), attempts AS (
    DELETE FROM task_attempts WHERE job_id IN (SELECT job_id FROM gone)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: drop_partition
-- Let an archived partition leave, if it still holds exactly $2 events; how many it held.
-- $1 partition name, $2 expected event count
SELECT chronik_drop_partition_v1($1, $2);

-- name: mark_partition_archived
-- Record that a partition's events are in a verified archive file.
-- $1 name, $2 archive uri, $3 events, $4 jobs, $5 sha256 hex of the file
UPDATE event_partitions
SET status = 'archived', archived_at = now(), archive_uri = $2, events = $3, jobs = $4, sha256 = $5
WHERE name = $1;

-- name: archived_job
-- Where an archived job's events are: its archive file, its place in it, its owner and head.
-- $1 job_id
SELECT a.job_id, a.partition, a.archive_key, a.byte_offset, a.byte_length, a.events, a.chain_head,
       a.blueprint, a.status, a.client, a.created_at, a.finished_at
FROM archived_jobs AS a
WHERE a.job_id = $1;

-- name: job_chain
-- One job's events as the hash chain encodes them, and the head its jobs row holds.
-- $1 job_id
SELECT e.job_id, e.version, e.type, e.data::text AS data, e.meta::text AS meta, e.recorded_at, e.hash,
       j.chain_head
FROM events AS e LEFT JOIN jobs AS j ON j.job_id = e.job_id
WHERE e.job_id = $1 AND e.job_time = chronik_job_time_v1($1)
ORDER BY e.version;

-- name: chain_jobs_page
-- The next page of job ids with events in the log, after $1, for ``chronik events verify --all``.
-- $1 after job_id, $2 limit
SELECT job_id, chain_head FROM jobs WHERE job_id > $1 ORDER BY job_id LIMIT $2;

-- name: jobs_with_events
-- Which of these jobs have events in the log now (a restore must not load a job twice).
-- $1 job ids uuid[]
SELECT DISTINCT job_id FROM events WHERE job_id = ANY($1::uuid[]);

-- name: unindex_archived_jobs
-- Restored jobs are live again: their events are read from the log, not from the archive.
-- $1 job ids uuid[]
DELETE FROM archived_jobs WHERE job_id = ANY($1::uuid[]);
