-- Schedules and email (contract §10).
--
-- Exactly once: a schedule fires a time only by inserting its run row, and (schedule_id, scheduled_for) is
-- unique; the run row and the job it enqueues commit together, so two schedulers, or one restarted half-way,
-- can never fire the same time twice. The same holds for the built-in schedules (system_schedule_runs).
--
-- An email is one row per event: (tenant_id, event_key) is unique, so an event that is noticed twice (a job
-- retried after its end was written) still makes one email; the email's id is its Message-ID.

CREATE TABLE schedules (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    cron          text NOT NULL,
    time_zone     text NOT NULL,
    -- {"type": "report", "report", "params", "format"} or {"type": "export", "template_id"}
    action        jsonb NOT NULL,
    recipients    uuid[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 50),
    send_if_data  boolean NOT NULL DEFAULT false,
    enabled       boolean NOT NULL DEFAULT true,
    -- the next local time the cron names, as an instant; NULL while disabled
    next_run_at   timestamptz,
    created_by    uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT schedules_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX schedules_tenant_created_idx ON schedules (tenant_id, created_at DESC);
-- The schedulers' work list, across tenants.
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled;

CREATE TABLE schedule_runs (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    schedule_id     uuid NOT NULL,
    scheduled_for   timestamptz NOT NULL,
    fired_at        timestamptz NOT NULL DEFAULT now(),
    -- schedule: on time; catch_up: the latest of the times missed while no scheduler ran; manual: run now
    trigger         text NOT NULL CHECK (trigger IN ('schedule', 'catch_up', 'manual')),
    job_id          uuid,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped')),
    emails_sent     integer NOT NULL DEFAULT 0,
    skipped_reason  text,
    -- what happened per recipient: [{user_id, outcome, detail}]
    recipients      jsonb NOT NULL DEFAULT '[]',
    finished_at     timestamptz,
    CONSTRAINT schedule_runs_schedule_fkey FOREIGN KEY (tenant_id, schedule_id)
        REFERENCES schedules (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT schedule_runs_once UNIQUE (schedule_id, scheduled_for),
    CONSTRAINT schedule_runs_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX schedule_runs_schedule_idx ON schedule_runs (tenant_id, schedule_id, scheduled_for DESC);

-- The built-in schedules run across tenants, by the scheduler itself; one row per (name, time) they fired.
CREATE TABLE system_schedule_runs (
    name           text NOT NULL,
    scheduled_for  timestamptz NOT NULL,
    fired_at       timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    outcome        jsonb,
    error          text,
    PRIMARY KEY (name, scheduled_for)
);

CREATE TABLE emails (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    to_user_id   uuid,
    to_address   text NOT NULL,
    subject      text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('import_ended', 'export_ready', 'ticket_created', 'ticket_assigned',
                                               'ticket_replied', 'scheduled_report', 'scheduled_export')),
    -- what the email is about, unique per tenant: one email per event however often it is noticed
    event_key    text NOT NULL,
    text_body    text NOT NULL,
    html_body    text NOT NULL,
    -- [{file_name, content_type, storage_key, size}]
    attachments  jsonb NOT NULL DEFAULT '[]',
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed', 'held')),
    attempts     integer NOT NULL DEFAULT 0,
    error        text,
    job_id       uuid,
    schedule_run_id uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT emails_event_once UNIQUE (tenant_id, event_key),
    CONSTRAINT emails_to_user_fkey FOREIGN KEY (tenant_id, to_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT emails_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX emails_tenant_created_idx ON emails (tenant_id, created_at DESC);
-- Held emails, sent once a worker with SMTP_URL finds them.
CREATE INDEX emails_held_idx ON emails (created_at) WHERE status = 'held';

-- A scheduled export makes one export per recipient; the export's end emails it.
ALTER TABLE exports ADD COLUMN schedule_run_id uuid;

-- Finished jobs are pruned (JOB_RETENTION_DAYS); what pointed at them keeps its own record.
ALTER TABLE imports DROP CONSTRAINT imports_job_fkey;
ALTER TABLE imports ADD CONSTRAINT imports_job_fkey FOREIGN KEY (tenant_id, job_id)
    REFERENCES jobs (tenant_id, id) ON DELETE SET NULL (job_id);
ALTER TABLE exports DROP CONSTRAINT exports_job_fkey;
ALTER TABLE exports ADD CONSTRAINT exports_job_fkey FOREIGN KEY (tenant_id, job_id)
    REFERENCES jobs (tenant_id, id) ON DELETE SET NULL (job_id);
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX exports_job_idx ON exports (tenant_id, job_id);
CREATE INDEX imports_job_idx ON imports (tenant_id, job_id);

-- Ticket replies go with their ticket when clean-up deletes it.
ALTER TABLE ticket_replies DROP CONSTRAINT ticket_replies_ticket_fkey;
ALTER TABLE ticket_replies ADD CONSTRAINT ticket_replies_ticket_fkey FOREIGN KEY (tenant_id, ticket_id)
    REFERENCES tickets (tenant_id, id) ON DELETE CASCADE;

-- An admin's "run this built-in schedule now" is a job of its tenant.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('import', 'export', 'report', 'email', 'rollup', 'probe', 'maintenance'));

ALTER TABLE schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON schedules USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
ALTER TABLE schedule_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON schedule_runs USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
ALTER TABLE emails ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON emails USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON schedules, schedule_runs, emails TO crm_app;
GRANT SELECT ON system_schedule_runs TO crm_app;
