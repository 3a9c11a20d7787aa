-- Exports (contract §7): each export is a row that its job fills in; the file it points at is written whole
-- under a key of its own attempt and only then named here, so a half-written file is never served.

CREATE TABLE export_templates (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    entity      text NOT NULL CHECK (entity IN ('leads', 'clients', 'projects', 'interactions', 'tickets')),
    format      text NOT NULL CHECK (format IN ('csv', 'xlsx', 'pdf')),
    columns     text[] NOT NULL,
    filters     jsonb NOT NULL DEFAULT '{}',
    sort        text,
    shared      boolean NOT NULL DEFAULT false,
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT export_templates_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT export_templates_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX export_templates_name_key ON export_templates (tenant_id, created_by, lower(name));

CREATE TABLE exports (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    job_id      uuid,
    entity      text NOT NULL CHECK (entity IN ('leads', 'clients', 'projects', 'interactions', 'tickets')),
    format      text NOT NULL CHECK (format IN ('csv', 'xlsx', 'pdf')),
    columns     text[] NOT NULL,
    -- the filters and sort as the caller sent them (shown back), and as validated (what the job runs)
    filters     jsonb NOT NULL DEFAULT '{}',
    sort        text,
    query       jsonb NOT NULL,
    file_name   text NOT NULL,
    template_id uuid,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'expired')),
    row_count   bigint,
    file_size   bigint,
    storage_key text,
    error       text,
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    expires_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT exports_job_fkey FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, id),
    CONSTRAINT exports_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT exports_template_fkey FOREIGN KEY (tenant_id, template_id)
        REFERENCES export_templates (tenant_id, id) ON DELETE SET NULL (template_id),
    CONSTRAINT exports_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX exports_tenant_created_idx ON exports (tenant_id, created_at DESC);
-- The expiry sweep's work list.
CREATE INDEX exports_expiry_idx ON exports (expires_at) WHERE status = 'completed';
-- Import uploads whose import has ended, for their expiry.
CREATE INDEX imports_finished_idx ON imports (finished_at) WHERE finished_at IS NOT NULL;
ALTER TABLE imports ADD COLUMN file_deleted_at timestamptz;

ALTER TABLE export_templates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON export_templates USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
ALTER TABLE exports ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON exports USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON export_templates, exports TO crm_app;
