-- Idempotency keys of job creation: the same client and key within 24 hours get the first job.
CREATE TABLE idempotency_keys (
    client     text        NOT NULL,
    key        text        NOT NULL,
    job_id     uuid        NOT NULL,
    -- A fingerprint of the request (blueprint and initial data): a key reused for another is refused.
    request    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
