-- The job platform: which Redis task carries a job now, a result for finished jobs, and the `probe` kind:
-- a no-op (or a few checkpointed steps) that operators enqueue to check the pipeline end to end and that
-- the job platform's tests and benchmark run.

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('import', 'export', 'report', 'email', 'rollup', 'probe'));

-- The Redis task id of the latest hand-off: a fresh id per hand-off, so a re-hand is never deduplicated away
-- by apalis, and the dispatcher can ask Redis whether it still has the task.
ALTER TABLE jobs ADD COLUMN redis_task_id text;
ALTER TABLE jobs ADD COLUMN result jsonb;

-- Running jobs whose worker stopped beating: the dispatcher's recovery list.
CREATE INDEX jobs_running_heartbeat_idx ON jobs (heartbeat_at) WHERE status = 'running';
-- Jobs handed to Redis and still waiting: checked against Redis for losses.
CREATE INDEX jobs_dispatched_idx ON jobs (queue, dispatched_at) WHERE status = 'queued' AND dispatched_at IS NOT NULL;

-- A probe's effect: one row per completed step, written in the same transaction as the step's checkpoint.
-- The primary key makes a step written twice an error, so tests can prove effects happen exactly once.
CREATE TABLE job_probe_steps (
    tenant_id   uuid NOT NULL,
    job_id      uuid NOT NULL,
    step        integer NOT NULL,
    attempt     integer NOT NULL,
    worker_name text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, step),
    CONSTRAINT job_probe_steps_job_fkey FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE job_probe_steps ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_probe_steps USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON job_probe_steps TO crm_app;

-- The dispatcher's hand-off list: queued, due and not yet in Redis.
DROP INDEX jobs_dispatch_idx;
CREATE INDEX jobs_undispatched_idx ON jobs (queue, run_at) WHERE status = 'queued' AND dispatched_at IS NULL;
-- Operators' per-queue counts.
CREATE INDEX jobs_queue_status_idx ON jobs (queue, status, finished_at);
