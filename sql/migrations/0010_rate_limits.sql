-- Rate-limit and quota counters: one row per key and window. UNLOGGED: a crash that loses the
-- counts only forgives the current window, and the hot path writes no WAL.
CREATE UNLOGGED TABLE rate_limit_counters (
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL,
    PRIMARY KEY (key, window_start)
);
