-- Jobs whose S3 folder must be emptied: written by the statement that ends a job that stored
-- files, and worked off by the file janitor of any instance (leased, like the other queues).
CREATE TABLE file_cleanups (
    job_id       uuid PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    leased_until timestamptz
);
