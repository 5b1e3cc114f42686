-- name: create_migrations_table
-- The record of applied migrations.
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: lock_migrations
-- Serialize migrators: two instances starting at once apply each file once.
-- The key is fixed: hashtext('chronik.migrate').
SELECT pg_advisory_xact_lock(hashtext('chronik.migrate'));

-- name: applied_migrations
-- Migrations already applied, with their checksums.
SELECT name, checksum FROM schema_migrations ORDER BY name;

-- name: record_migration
-- Record one applied migration.
-- $1 name text, $2 checksum text
INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2);
