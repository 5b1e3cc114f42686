-- name: claim_schedule_run
-- Take one fire of a schedule for this instance; nothing when another instance took it first.
-- $1 name, $2 fire time, $3 the job it starts, $4 instance
INSERT INTO schedule_runs (name, fire_time, job_id, instance) VALUES ($1, $2, $3, $4)
ON CONFLICT (name, fire_time) DO NOTHING
RETURNING job_id;

-- name: prune_schedule_runs
-- Retention: forget up to $1 fires older than 30 days, except each schedule's newest one (the
-- console shows it as the last fire, also of a monthly or yearly schedule, or of one removed from
-- schedules.toml). Safe for exactly-once: a row only has to outlive every chance of its fire being
-- tried again, and the clock (adapters/scheduling.py) tries a fire only within misfire_grace_time
-- (30 s) of its time, never backfilling past ones after a restart; 30 days is that many times
-- over, clock skew between instances included. The newer run found is of the same name, through
-- the primary key. A run is never updated, so the ctid found stays the row's.
-- One LIMITed batch a statement: a short transaction, however large the backlog.
-- $1 most rows
DELETE FROM schedule_runs WHERE ctid = ANY (ARRAY(
    SELECT r.ctid FROM schedule_runs r
    WHERE r.fire_time < now() - interval '30 days'
      AND EXISTS (SELECT 1 FROM schedule_runs n WHERE n.name = r.name AND n.fire_time > r.fire_time)
    LIMIT $1
));
