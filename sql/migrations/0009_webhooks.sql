-- The webhook outbox: one row per notification, written by the statement that appends the event
-- it announces, so a notification is never lost nor sent for a change that rolled back.
CREATE TABLE webhook_deliveries (
    event_id         text PRIMARY KEY,   -- "<job_id>:<version>": receivers de-duplicate by it
    job_id           uuid        NOT NULL,
    event            text        NOT NULL CHECK (event IN ('job_finished', 'job_failed', 'job_quarantined',
                                                           'job_cancelled')),
    url              text        NOT NULL,
    payload          jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    attempt_log      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_job_idx ON webhook_deliveries (job_id);
