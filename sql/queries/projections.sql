-- name: get_checkpoint
-- A projection's recorded version and checkpoint; no row when it was never set up.
-- $1 name
SELECT version, tx::text AS tx, position FROM projection_checkpoints WHERE name = $1;

-- name: lock_checkpoint
-- Take a projection's checkpoint row for this transaction, or nothing when another instance
-- (or a rebuild) holds it: one writer per projection at a time, without waiting.
-- $1 name
SELECT tx::text AS tx, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE SKIP LOCKED;

-- name: wait_for_checkpoint
-- Take a projection's checkpoint row for this transaction, waiting for its current holder.
-- $1 name
SELECT tx::text AS tx, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE;

-- name: save_checkpoint
-- Move a projection's checkpoint, in the transaction that applied the events up to it.
-- $1 name, $2 tx xid8, $3 position
UPDATE projection_checkpoints SET tx = $2::xid8, position = $3, updated_at = now() WHERE name = $1;

-- name: reset_checkpoint
-- (Re)start a projection from the beginning of the log at version $2.
-- $1 name, $2 version
INSERT INTO projection_checkpoints (name, version) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET version = $2, tx = '0', position = 0, updated_at = now();

-- name: list_checkpoints
-- Every projection's checkpoint.
SELECT name, version, tx::text AS tx, position, updated_at FROM projection_checkpoints ORDER BY name;

-- name: table_exists
-- Whether a table of this name exists in the search path.
-- $1 table name
SELECT to_regclass($1) IS NOT NULL;

-- name: lock_projection_setup
-- Serialize the set-up of projection tables between instances starting at once.
SELECT pg_advisory_xact_lock(hashtext('chronik.projections'));

-- name: analytics_checksum
-- The checksum of the analytics views as last installed (kept as the schema's comment).
SELECT obj_description(to_regnamespace('chronik_analytics'), 'pg_namespace');

-- name: analytics_grants
-- Who was granted what on the analytics schema and its views, to grant it again after the views
-- are recreated (a rebuild drops them with the tables they read).
SELECT 'schema' AS kind, r.rolname AS grantee, 'USAGE' AS privilege, NULL AS view
FROM pg_namespace AS n, aclexplode(n.nspacl) AS a JOIN pg_roles AS r ON r.oid = a.grantee
WHERE n.nspname = 'chronik_analytics' AND a.privilege_type = 'USAGE' AND a.grantee <> n.nspowner
UNION
SELECT 'view', grantee, privilege_type, table_name FROM information_schema.role_table_grants
WHERE table_schema = 'chronik_analytics' AND grantee <> current_user AND privilege_type = 'SELECT';

-- name: analytics_views
-- The views of the analytics schema as installed now.
SELECT table_name FROM information_schema.views WHERE table_schema = 'chronik_analytics';

-- name: table_indexes
-- The indexes of a table, to rename them with it.
-- $1 table name
SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1;
