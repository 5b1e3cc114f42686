-- The W3C traceparent of the job a task belongs to, handed to the worker with the task so that
-- its spans join the job's trace.
ALTER TABLE tasks ADD COLUMN traceparent text;
