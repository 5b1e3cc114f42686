-- One row per fire of a schedule: the unique key makes every fire start exactly one job, however
-- many instances run the scheduler (each tries; one insert wins, in the job's own transaction).
CREATE TABLE schedule_runs (
    name       text        NOT NULL,
    fire_time  timestamptz NOT NULL,
    job_id     uuid        NOT NULL,
    instance   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, fire_time)
);
