-- The log becomes range-partitioned and hash-chained.
--
-- Partition key: job_time, the instant a job was created, as carried in its UUIDv7 id
-- (chronik_job_time_v1). Every event of a job lands in the partition of the job's creation, so a
-- partition can leave (archived, verified, then dropped whole) once every job created in its range
-- has ended: no DELETE ever touches events. Ids that are not UUIDv7 (jobs made before this change
-- used uuid4) map to -infinity and live in events_legacy. job_time is a stored column rather than
-- an expression key because PostgreSQL needs the key in every unique constraint; it is always the
-- function of job_id, so `job_time = chronik_job_time_v1($1)` beside `job_id = $1` prunes a query
-- to one partition.
--
-- Hash chain: each event's hash is SHA-256 over the previous hash of its job and a canonical
-- encoding of the event (chronik_event_hash_v1; core/chain.py computes the same in Python). The
-- job's newest hash rides on its jobs row (chain_head), which the append statement already writes.

-- Not STRICT: PostgreSQL inlines a plain SQL function (into the check constraint and the append)
-- only when it is not, and a call per row would cost more than the expression.
CREATE FUNCTION chronik_job_time_v1(job_id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN substr(job_id::text, 15, 1) = '7'
                THEN to_timestamp(('x' || lpad(replace(left(job_id::text, 13), '-', ''), 16, '0'))::bit(64)::bigint
                                  / 1000.0)
                ELSE '-infinity'::timestamptz END
$$;

CREATE FUNCTION chronik_event_hash_v1(prev bytea, job_id uuid, version integer, type text, data jsonb,
                                      meta jsonb, recorded_at timestamptz) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(coalesce(prev, ''::bytea) || convert_to(
        job_id::text || E'\n' || version::text || E'\n' || type || E'\n' || data::text || E'\n'
        || meta::text || E'\n' || (extract(epoch FROM recorded_at) * 1000000)::bigint::text, 'UTF8'))
$$;

-- The hashes of a job's consecutive events, chained from prev (NULL: the job's first event).
-- The same encoding as chronik_event_hash_v1, written out: a call of that function per event from
-- PL/pgSQL costs several times the hash itself, and this runs in every append.
CREATE FUNCTION chronik_chain_v1(prev bytea, job_id uuid, versions integer[], types text[], data jsonb[],
                                 meta jsonb[], recorded_at timestamptz[]) RETURNS bytea[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    hashes bytea[] := '{}';
    head bytea := coalesce(prev, ''::bytea);
    id text := job_id::text || E'\n';
BEGIN
    FOR i IN 1 .. coalesce(cardinality(versions), 0) LOOP
        head := sha256(head || convert_to(
            id || versions[i]::text || E'\n' || types[i] || E'\n' || data[i]::text || E'\n' || meta[i]::text
            || E'\n' || (extract(epoch FROM recorded_at[i]) * 1000000)::bigint::text, 'UTF8'));
        hashes := hashes || head;
    END LOOP;
    RETURN hashes;
END;
$$;

-- Every partition of the log, live or archived: its range, and where its archive went.
CREATE TABLE event_partitions (
    name         text PRIMARY KEY,
    lo           timestamptz NOT NULL,
    hi           timestamptz NOT NULL,
    status       text        NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'archived')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    archived_at  timestamptz,
    archive_uri  text,
    events       bigint,
    jobs         bigint,
    sha256       text,
    CHECK (lo < hi)
);

-- Archived jobs, by id: where in which archive file their events are (one gzip member a job),
-- and what the API needs to answer for them without reading the file (owner, status).
CREATE TABLE archived_jobs (
    job_id       uuid PRIMARY KEY,
    partition    text        NOT NULL REFERENCES event_partitions (name),
    archive_key  text        NOT NULL,
    byte_offset  bigint      NOT NULL,
    byte_length  bigint      NOT NULL,
    events       integer     NOT NULL,
    chain_head   bytea       NOT NULL,
    blueprint    text        NOT NULL,
    status       text        NOT NULL,
    client       text,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
CREATE INDEX archived_jobs_partition_idx ON archived_jobs (partition);

-- Create one partition of the log (and its guard against TRUNCATE, which a statement trigger on
-- the parent does not cover), and record it.
CREATE FUNCTION chronik_create_partition_v1(lo timestamptz, hi timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'events_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION chronik_events_append_only_v1()', part);
    INSERT INTO event_partitions AS p (name, lo, hi) VALUES (part, lo, hi)
    ON CONFLICT (name) DO UPDATE SET lo = excluded.lo, hi = excluded.hi, status = 'live',
        archived_at = NULL, archive_uri = NULL, events = NULL, jobs = NULL, sha256 = NULL;
    RETURN part;
END;
$$;

-- Make sure partitions exist from the one holding `since` until `until`, each `days` long and
-- aligned to Mondays (1970-01-05) so that names stay stable; gaps between partitions made with
-- another length are filled up to the next one. Returns the names created.
CREATE FUNCTION chronik_ensure_partitions_v1(since timestamptz, until timestamptz, days integer)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    origin constant timestamptz := '1970-01-05 00:00:00+00';
    period constant interval := make_interval(days => days);
    cursor_at timestamptz := origin + period * floor(extract(epoch FROM since - origin) / extract(epoch FROM period));
    upper_at timestamptz;
    next_lo timestamptz;
BEGIN
    -- Serialize creators: two instances starting at once must not race on the same name.
    PERFORM pg_advisory_xact_lock(hashtext('chronik.partitions'));
    WHILE cursor_at < until LOOP
        SELECT p.hi INTO upper_at FROM event_partitions AS p
        WHERE p.lo <= cursor_at AND cursor_at < p.hi AND p.status = 'live';
        IF FOUND THEN
            cursor_at := upper_at;
            CONTINUE;
        END IF;
        SELECT min(p.lo) INTO next_lo FROM event_partitions AS p WHERE p.lo > cursor_at AND p.status = 'live';
        upper_at := origin + period * (floor(extract(epoch FROM cursor_at - origin) / extract(epoch FROM period)) + 1);
        IF next_lo IS NOT NULL AND next_lo < upper_at THEN
            upper_at := next_lo;
        END IF;
        RETURN NEXT chronik_create_partition_v1(cursor_at, upper_at);
        cursor_at := upper_at;
    END LOOP;
END;
$$;

-- The new log, with the old one's rows copied in (hashed, chained per job) and the old one dropped.
ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_job_version_key TO events_unpartitioned_job_version_key;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
DROP INDEX events_type_idx, events_task_dispatched_idx, events_branches_idx, events_tx_position_idx;

CREATE TABLE events (
    position    bigint GENERATED ALWAYS AS IDENTITY,
    job_id      uuid        NOT NULL,
    job_time    timestamptz NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    meta        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tx          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    hash        bytea       NOT NULL,
    PRIMARY KEY (position, job_time),
    -- Optimistic concurrency: two writers that read the same version cannot both append. job_time
    -- is a function of job_id, so this is (job_id, version) unique across the whole log.
    CONSTRAINT events_job_version_key UNIQUE (job_id, version, job_time),
    CONSTRAINT events_job_time_check CHECK (job_time = chronik_job_time_v1(job_id))
) PARTITION BY RANGE (job_time);

CREATE INDEX events_type_idx ON events (type);
CREATE INDEX events_task_dispatched_idx ON events ((data->>'task_id')) WHERE type = 'TaskDispatched';
CREATE INDEX events_branches_idx ON events USING gin ((data->'branches') jsonb_path_ops)
    WHERE type = 'ParallelDispatched';
CREATE INDEX events_tx_position_idx ON events (tx, position);

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION chronik_events_append_only_v1();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION chronik_events_append_only_v1();

CREATE TABLE events_legacy PARTITION OF events FOR VALUES FROM (MINVALUE) TO ('1970-01-01 00:00:00+00');
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events_legacy
    FOR EACH STATEMENT EXECUTE FUNCTION chronik_events_append_only_v1();
INSERT INTO event_partitions (name, lo, hi) VALUES ('events_legacy', '-infinity', '1970-01-01 00:00:00+00');
SELECT count(*) FROM chronik_ensure_partitions_v1(now(), now() + interval '14 days', 7);

INSERT INTO events (position, job_id, job_time, version, type, data, meta, tx, recorded_at, hash)
OVERRIDING SYSTEM VALUE
SELECT e.position, j.job_id, chronik_job_time_v1(j.job_id), e.version, e.type, e.data, e.meta, e.tx,
       e.recorded_at, c.hash
FROM (SELECT job_id,
             chronik_chain_v1(NULL, job_id, array_agg(version ORDER BY version),
                              array_agg(type ORDER BY version), array_agg(data ORDER BY version),
                              array_agg(meta ORDER BY version), array_agg(recorded_at ORDER BY version))
                 AS hashes,
             array_agg(position ORDER BY version) AS positions
      FROM events_unpartitioned GROUP BY job_id) AS j
CROSS JOIN LATERAL unnest(j.positions, j.hashes) AS c(position, hash)
JOIN events_unpartitioned AS e ON e.position = c.position;

SELECT setval(pg_get_serial_sequence('events', 'position'),
              greatest((SELECT max(position) FROM events_unpartitioned), 1),
              (SELECT max(position) FROM events_unpartitioned) IS NOT NULL);
DROP TABLE events_unpartitioned;

ALTER TABLE jobs ADD COLUMN chain_head bytea;
UPDATE jobs SET chain_head = e.hash
FROM events AS e WHERE e.job_id = jobs.job_id AND e.version = jobs.version;

-- Jobs by the partition of their events (the retention plan counts them per partition).
CREATE INDEX jobs_job_time_idx ON jobs (chronik_job_time_v1(job_id));

-- The one way a partition leaves the log: after its archive was written and read back, and only
-- if it still holds exactly the events the archive holds (a job revived meanwhile, by a retry,
-- appended more: then nothing leaves and the next round archives it anew). The partition is
-- locked against appends while it is counted; detaching it takes the parent's lock for a moment.
CREATE FUNCTION chronik_drop_partition_v1(part text, expected bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    held bigint;
    range_lo timestamptz;
    range_hi timestamptz;
BEGIN
    SELECT p.lo, p.hi INTO range_lo, range_hi FROM event_partitions AS p
    WHERE p.name = part AND p.status = 'live';
    IF part = 'events_legacy' OR NOT FOUND THEN
        RAISE EXCEPTION 'chronik: % is not a live partition that can leave', part;
    END IF;
    SET LOCAL lock_timeout = '10s';
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', part);
    EXECUTE format('SELECT count(*) FROM %I', part) INTO held;
    IF held <> expected THEN
        RETURN held;
    END IF;
    -- Whatever a plan said earlier: a job of this range that runs (now) keeps the partition.
    IF EXISTS (SELECT 1 FROM jobs AS j
               WHERE chronik_job_time_v1(j.job_id) >= range_lo AND chronik_job_time_v1(j.job_id) < range_hi
                 AND j.finished_at IS NULL) THEN
        RETURN -1;
    END IF;
    EXECUTE format('ALTER TABLE events DETACH PARTITION %I', part);
    EXECUTE format('DROP TABLE %I', part);
    RETURN held;
END;
$$;

-- Every side table has a retention rule (the watcher's housekeeping); these let its batched
-- prunes find old rows without reading the whole table.
CREATE INDEX webhook_deliveries_ended_idx ON webhook_deliveries ((coalesce(delivered_at, next_attempt_at)))
    WHERE status <> 'pending';
CREATE INDEX schedule_runs_fire_time_idx ON schedule_runs (fire_time);
