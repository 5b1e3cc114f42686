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

-- name: prune_webhook_deliveries
-- Retention: forget up to $1 notifications that ended 7 days ago or more, delivered or failed for
-- good; a pending one stays however old (WEBHOOK_MAX_ATTEMPTS bounds its life, at most an hour
-- between attempts). 7 days: long enough for whoever runs a receiver to look up, after a weekend,
-- what was sent and how each attempt went (GET /api/v1/jobs/{id}/webhooks, the console);
-- nothing else reads the row once the attempts are over (receivers de-duplicate by event_id).
-- The end is delivered_at, or for a failed one next_attempt_at: when its last attempt was due (the
-- sender made it then, or within its lease of then). FOR UPDATE SKIP LOCKED: a row a sender is
-- still writing (two senders' late records of one attempt) is left for the next round, and a ctid
-- found is always the row that matched, never a newer version of it.
-- One LIMITed batch a statement: a short transaction, however large the backlog.
-- $1 most rows
DELETE FROM webhook_deliveries WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM webhook_deliveries
    WHERE status <> 'pending' AND coalesce(delivered_at, next_attempt_at) < now() - interval '7 days'
    LIMIT $1
    FOR UPDATE SKIP LOCKED
));
