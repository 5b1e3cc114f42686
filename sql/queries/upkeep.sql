-- name: database_size
-- The current database's size on disk, in bytes.
SELECT pg_database_size(current_database());

-- name: relation_size
-- A table's size with its indexes and TOAST, in bytes; for a partitioned table, the sum over its
-- partitions (a partitioned table has no storage of its own).
-- $1 the table's name
SELECT CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(c.oid))
            ELSE pg_total_relation_size(c.oid) END
FROM pg_class c WHERE c.oid = $1::regclass;

-- name: secondary_indexes
-- A table's indexes other than its primary key, each with the statement that makes it again.
-- $1 the table's name
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i WHERE i.indrelid = $1::regclass AND NOT i.indisprimary
ORDER BY 1;

-- name: last_log_position
-- The log's last event in the projections' reading order (events_tx_position_idx).
SELECT tx::text AS tx, position FROM events ORDER BY events.tx DESC, events.position DESC LIMIT 1;

-- name: job_id_at
-- The job id at offset $1 in id order (a job somewhere in the table, for a filter to look for).
-- $1 offset
SELECT job_id FROM jobs ORDER BY job_id OFFSET $1 LIMIT 1;

-- name: server_setting
-- A server setting's value as SHOW gives it.
-- $1 the setting's name
SELECT current_setting($1);
