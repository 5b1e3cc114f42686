-- Fan-out branches are dispatched in one ParallelDispatched event; a late or repeated result of a
-- branch whose queue row is gone finds its job through this index, as single tasks do through
-- events_task_dispatched_idx.
CREATE INDEX events_branches_idx ON events USING gin ((data->'branches') jsonb_path_ops)
    WHERE type = 'ParallelDispatched';

