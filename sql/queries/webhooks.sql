-- name: claim_webhooks
-- Lease up to $1 due notifications to this sender for $2 seconds; SKIP LOCKED lets instances
-- send side by side, and a lease that runs out (the sender died) makes a row due again.
-- $1 limit, $2 lease seconds
WITH due AS (
    SELECT event_id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries AS w SET leased_until = now() + make_interval(secs => $2)
FROM due WHERE w.event_id = due.event_id
RETURNING w.event_id, w.url, w.payload::text AS payload, w.attempts;

-- name: record_webhook_attempt
-- One attempt's outcome: delivered, or due again at $4, or failed for good ($3 'failed').
-- $1 event_id, $2 attempt jsonb, $3 new status, $4 next attempt time
UPDATE webhook_deliveries
SET attempts = attempts + 1, attempt_log = attempt_log || jsonb_build_array($2::jsonb), status = $3,
    next_attempt_at = coalesce($4, next_attempt_at), leased_until = NULL,
    delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
WHERE event_id = $1;

-- name: webhooks_of_job
-- A job's notifications, oldest first.
-- $1 job_id
SELECT event_id, event, url, status, attempts, next_attempt_at, attempt_log::text AS attempt_log,
       created_at, delivered_at
FROM webhook_deliveries WHERE job_id = $1 ORDER BY created_at, event_id;
