-- name: hit_rate_limit
-- Count one request against key $1 in the current window of $2 seconds; the count so far and the
-- seconds until the window ends. One statement, whichever instance serves the request.
-- $1 key, $2 window seconds
INSERT INTO rate_limit_counters (key, window_start, hits)
VALUES ($1, date_bin(make_interval(secs => $2), now(), timestamptz '2000-01-01 00:00:00+00'), 1)
ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limit_counters.hits + 1
RETURNING hits,
          extract(epoch FROM window_start + make_interval(secs => $2) - now())::float8 AS retry_after;

-- name: hit_monthly_quota
-- Count one job against key $1 in the current calendar month (UTC); the count so far.
-- $1 key
INSERT INTO rate_limit_counters (key, window_start, hits)
VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 1)
ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limit_counters.hits + 1
RETURNING hits;

-- name: prune_rate_limits
-- Retention: forget up to $1 windows that ended over a day ago. A quota's window is a calendar
-- month that started up to 31 days ago and may still be counting: those are kept until 40 days
-- after their start. Such windows are no longer counted in, so no row found is written meanwhile.
-- One LIMITed batch a statement: a short transaction, however large the backlog.
-- $1 most rows
DELETE FROM rate_limit_counters WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM rate_limit_counters
    WHERE window_start < now() - interval '40 days'
       OR (window_start < now() - interval '1 day' AND key NOT LIKE 'quota:%')
    LIMIT $1
));
