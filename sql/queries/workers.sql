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


-- name: list_live_workers
-- The workers that beat within the last $1 seconds (the lease: a worker silent for longer has lost
-- every task it held), each with the attempts it holds now, by worker id. The count reads
-- tasks_worker_idx, one probe per worker.
-- $1 liveness window in seconds
SELECT w.worker_id, w.task_types, w.capacity, w.info, w.registered_at, w.last_heartbeat_at,
       (SELECT count(*) FROM tasks t
        WHERE t.worker_id = w.worker_id AND t.status = 'leased' AND t.lease_expires_at > now())::int
           AS running_tasks
FROM workers w
WHERE w.last_heartbeat_at > now() - make_interval(secs => $1)
ORDER BY w.worker_id;

-- name: count_live_workers
-- How many workers beat within the last $1 seconds.
-- $1 liveness window in seconds
SELECT count(*)::int FROM workers WHERE last_heartbeat_at > now() - make_interval(secs => $1);
