-- name: register_worker
-- Register (or re-register) a worker.
-- $1 worker_id, $2 task types text[], $3 capacity, $4 info jsonb
INSERT INTO workers (worker_id, task_types, capacity, info)
VALUES ($1, $2, $3, $4)
ON CONFLICT (worker_id) DO UPDATE SET
    task_types = excluded.task_types, capacity = excluded.capacity, info = excluded.info,
    registered_at = now(), last_heartbeat_at = now();

-- name: heartbeat_worker
-- A worker is alive; returns its row, or nothing when it is not registered.
-- $1 worker_id
UPDATE workers SET last_heartbeat_at = now() WHERE worker_id = $1 RETURNING task_types;

