-- Tell waiting clients that a job changed: GET /jobs/{id}?wait= and the /events stream wait on
-- this channel, fanned out in-process by each instance's one LISTEN connection, instead of
-- polling. The payload is "<job_id>:<version>:<status>" (about 60 bytes): the version lets a
-- waiter ignore what it has already read, the status lets it skip re-reading a job that has not
-- ended. It is a hint: an instance whose listener reconnects re-reads for every waiter, and a
-- wait re-reads at its deadline. One notification per commit of a job, whether anyone waits or not.
CREATE FUNCTION chronik_notify_job_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chronik_jobs', NEW.job_id::text || ':' || NEW.version || ':' || NEW.status);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify
    AFTER INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION chronik_notify_job_v1();
