-- Tenancy: a job belongs to the client that created it (state->>'client', from JobCreated.client).
-- Listing a client's jobs reads this index newest first, as jobs_created_idx does for everyone's,
-- so one client's page costs the same however many jobs the others have.
CREATE INDEX jobs_client_created_idx ON jobs ((state->>'client'), created_at, job_id);
