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

-- name: prune_gone_workers
-- Retention: forget up to $1 workers silent for a day or more. A day is far past any lease (the
-- liveness window of list_live_workers), so such a worker shows nowhere and holds no task; no
-- recovery reads this table (leases live on the task rows), and a worker that comes back is
-- answered "not registered" on its next heartbeat and registers again, as after a crash (the
-- table is UNLOGGED). FOR UPDATE SKIP LOCKED: a row a heartbeat or a registration is writing is
-- left for the next round, and one it changed meanwhile is checked again in its new version, so a
-- worker that beat is never deleted.
-- One LIMITed batch a statement: a short transaction, however large the backlog.
-- $1 most rows
DELETE FROM workers WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM workers WHERE last_heartbeat_at < now() - interval '1 day'
    LIMIT $1
    FOR UPDATE SKIP LOCKED
));
