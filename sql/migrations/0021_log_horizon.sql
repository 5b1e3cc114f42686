-- How far the asynchronous projections may read the log: below every transaction that might
-- still commit events into it, and no further. The rule used to be the snapshot's xmin, the
-- oldest transaction running anywhere on the server: a pg_dump, a long report or a forgotten
-- psql session in any database then froze every projection until it ended.
--
-- Now only transactions that can append to this log count: those of chronik's own sessions
-- (application_name 'chronik', which chronik's pool sets) in this database, and any transaction
-- whose session cannot be seen. A transaction of another database, or of another program in this
-- one, is passed over. Prepared transactions of other databases too. An event of a transaction
-- that commits late is still never skipped: its transaction is in progress, so it counts.
CREATE FUNCTION chronik_log_horizon_v1() RETURNS xid8
LANGUAGE sql STABLE AS $$
    WITH snapshot AS (SELECT pg_current_snapshot() AS s),
    passed_over AS (
        SELECT backend_xid::text AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL
          AND (datname IS DISTINCT FROM current_database() OR application_name IS DISTINCT FROM 'chronik')
        UNION ALL
        SELECT transaction::text FROM pg_prepared_xacts WHERE database <> current_database()
    )
    SELECT coalesce(
        (SELECT min(x) FROM pg_snapshot_xip(snapshot.s) AS x
         WHERE (x::text::bigint % 4294967296)::text NOT IN (SELECT xid FROM passed_over)),
        pg_snapshot_xmax(snapshot.s))
    FROM snapshot
$$;
