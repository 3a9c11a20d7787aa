-- Live job events (contract §11): every change of a job's status, and its progress at most about once a
-- second, is announced on the `crm_events` channel after its transaction commits. Every API replica LISTENs
-- and passes the events of the watcher's tenant to its server-sent-event streams, so any replica serves any
-- watcher whichever process wrote the change. A rolled-back (or fenced) write announces nothing.
--
-- Probes are left out: they are the job platform's own checks and benchmarks, tens of thousands a second,
-- and each notifying transaction takes Postgres' notify lock at commit. Heartbeats do not fire the trigger.
-- The payload is small (well under NOTIFY's 8000 bytes): ids, status and counts, never the job's payload.

CREATE FUNCTION jobs_announce() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.cancel_requested_at IS DISTINCT FROM OLD.cancel_requested_at
       OR date_trunc('second', NEW.updated_at) <> date_trunc('second', OLD.updated_at) THEN
        PERFORM pg_notify('crm_events', json_build_object(
            'tenant_id', NEW.tenant_id, 'job_id', NEW.id, 'kind', NEW.kind, 'status', NEW.status,
            'progress_done', NEW.progress_done, 'progress_total', NEW.progress_total, 'created_by', NEW.created_by,
            'resource_type', NEW.resource_type, 'resource_id', NEW.resource_id)::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_announce_insert AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.kind <> 'probe') EXECUTE FUNCTION jobs_announce();
CREATE TRIGGER jobs_announce_update AFTER UPDATE ON jobs FOR EACH ROW
    WHEN (NEW.kind <> 'probe' AND (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.progress_done IS DISTINCT FROM NEW.progress_done
          OR OLD.cancel_requested_at IS DISTINCT FROM NEW.cancel_requested_at))
    EXECUTE FUNCTION jobs_announce();
