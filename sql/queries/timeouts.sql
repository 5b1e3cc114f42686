-- name: lift_statement_timeout
-- Lift statement_timeout (DB_STATEMENT_TIMEOUT_SECONDS) for the rest of this transaction only, for
-- work that legitimately runs long: migrations, the archive, export and import.
SET LOCAL statement_timeout = 0;

-- name: lift_lock_timeout
-- Lift lock_timeout (DB_LOCK_TIMEOUT_SECONDS) for the rest of this transaction only: set-up that
-- must wait its turn (migrations and the projections' tables behind another instance's).
SET LOCAL lock_timeout = 0;
