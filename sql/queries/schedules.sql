-- name: claim_schedule_run
-- Take one fire of a schedule for this instance; nothing when another instance took it first.
-- $1 name, $2 fire time, $3 the job it starts, $4 instance
INSERT INTO schedule_runs (name, fire_time, job_id, instance) VALUES ($1, $2, $3, $4)
ON CONFLICT (name, fire_time) DO NOTHING
RETURNING job_id;
