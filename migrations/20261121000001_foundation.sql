-- Foundation schema: tenants, users and teams, CRM records, audit log, and the job and import tables the
-- job platform and importer use. Every tenant-owned table carries tenant_id, and row-level security under the
-- non-owner role `crm_app` enforces tenant isolation a second time, beneath the repositories' own filters.

-- The application role. Roles are cluster-wide, so concurrent migrations of several databases (tests) may race
-- to create it: the duplicate is harmless.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_app') THEN
        CREATE ROLE crm_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION
    WHEN duplicate_object THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'the role crm_app does not exist and % may not create it; as a superuser run: '
            'CREATE ROLE crm_app NOLOGIN; GRANT crm_app TO %', current_user, current_user;
END
$$;
-- The connecting (owner) user switches into crm_app per transaction with set_config('role', ...).
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'crm_app', 'MEMBER') THEN
        EXECUTE format('GRANT crm_app TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'the migrating user % cannot become a member of crm_app; as a superuser run: GRANT crm_app TO %',
        current_user, current_user;
END
$$;

-- The tenant of the current transaction, or NULL when none is set (then every policy hides every row).
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    default_region  text NOT NULL DEFAULT 'US' CHECK (default_region ~ '^[A-Z]{2}$'),
    time_zone       text NOT NULL DEFAULT 'UTC',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    email           text NOT NULL,
    name            text NOT NULL,
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'manager', 'sales', 'support', 'readonly')),
    is_active       boolean NOT NULL DEFAULT true,
    last_login_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_tenant_id_id_key UNIQUE (tenant_id, id)
);
-- Login takes only an email, so a login email names one user across all tenants.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_role_idx ON users (tenant_id, role);

CREATE TABLE teams (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT teams_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX teams_name_key ON teams (tenant_id, lower(name));

CREATE TABLE user_teams (
    tenant_id       uuid NOT NULL,
    team_id         uuid NOT NULL,
    user_id         uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id),
    CONSTRAINT user_teams_team_fkey FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT user_teams_user_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX user_teams_user_idx ON user_teams (tenant_id, user_id, team_id);

-- CRM records. Foreign keys to users and clients are composite with tenant_id, so the database itself refuses a
-- reference to another tenant's row.
CREATE TABLE leads (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    first_name          text NOT NULL,
    last_name           text,
    email               text,
    phone               text,
    company             text,
    lead_source         text CHECK (lead_source IN ('Website', 'Referral', 'Cold Call', 'Email Campaign', 'Social Media',
                                                    'Trade Show', 'Advertisement', 'Partner', 'Other')),
    status              text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'contacted', 'qualified', 'lost', 'converted')),
    notes               text,
    assigned_to_user_id uuid,
    converted_at        timestamptz,
    created_by          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CONSTRAINT leads_assigned_to_fkey FOREIGN KEY (tenant_id, assigned_to_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT leads_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT leads_tenant_id_id_key UNIQUE (tenant_id, id)
);
-- Unique among live records only: a deleted lead's email may be used again (restoring it then answers 409).
CREATE UNIQUE INDEX leads_email_key ON leads (tenant_id, lower(email)) WHERE deleted_at IS NULL AND email IS NOT NULL;
CREATE INDEX leads_created_idx ON leads (tenant_id, created_at);
CREATE INDEX leads_status_idx ON leads (tenant_id, status, created_at);
CREATE INDEX leads_assigned_status_idx ON leads (tenant_id, assigned_to_user_id, status, created_at);
CREATE INDEX leads_source_created_idx ON leads (tenant_id, lead_source, created_at);
CREATE INDEX leads_created_by_idx ON leads (tenant_id, created_by, created_at);

CREATE TABLE clients (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    name                text NOT NULL,
    email               text,
    phone               text,
    status              text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'prospect', 'active', 'inactive')),
    industry            text,
    assigned_to_user_id uuid,
    created_by          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CONSTRAINT clients_assigned_to_fkey FOREIGN KEY (tenant_id, assigned_to_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT clients_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT clients_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX clients_email_key ON clients (tenant_id, lower(email)) WHERE deleted_at IS NULL AND email IS NOT NULL;
CREATE INDEX clients_created_idx ON clients (tenant_id, created_at);
CREATE INDEX clients_status_idx ON clients (tenant_id, status, created_at);
CREATE INDEX clients_assigned_status_idx ON clients (tenant_id, assigned_to_user_id, status, created_at);
CREATE INDEX clients_industry_idx ON clients (tenant_id, industry);
CREATE INDEX clients_created_by_idx ON clients (tenant_id, created_by, created_at);
-- Imports match a project's client by name.
CREATE INDEX clients_name_idx ON clients (tenant_id, lower(name));

CREATE TABLE projects (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    client_id           uuid NOT NULL,
    name                text NOT NULL,
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'pending', 'completed', 'cancelled')),
    value               numeric(14, 2),
    start_date          date,
    close_date          date,
    assigned_to_user_id uuid,
    created_by          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CONSTRAINT projects_client_fkey FOREIGN KEY (tenant_id, client_id) REFERENCES clients (tenant_id, id),
    CONSTRAINT projects_assigned_to_fkey FOREIGN KEY (tenant_id, assigned_to_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT projects_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT projects_dates_check CHECK (close_date IS NULL OR start_date IS NULL OR close_date >= start_date)
);
CREATE INDEX projects_client_idx ON projects (tenant_id, client_id);
CREATE INDEX projects_status_close_idx ON projects (tenant_id, status, close_date);
CREATE INDEX projects_created_idx ON projects (tenant_id, created_at);
CREATE INDEX projects_assigned_status_idx ON projects (tenant_id, assigned_to_user_id, status);
CREATE INDEX projects_created_by_idx ON projects (tenant_id, created_by, created_at);

CREATE TABLE interactions (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    type            text NOT NULL CHECK (type IN ('call', 'meeting', 'email', 'follow_up', 'note')),
    contact_date    timestamptz NOT NULL,
    lead_id         uuid,
    client_id       uuid,
    user_id         uuid,
    notes           text,
    follow_up_at    timestamptz,
    completed_at    timestamptz,
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CONSTRAINT interactions_subject_check CHECK (lead_id IS NOT NULL OR client_id IS NOT NULL),
    CONSTRAINT interactions_lead_fkey FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id),
    CONSTRAINT interactions_client_fkey FOREIGN KEY (tenant_id, client_id) REFERENCES clients (tenant_id, id),
    CONSTRAINT interactions_user_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT interactions_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX interactions_lead_idx ON interactions (tenant_id, lead_id, contact_date);
CREATE INDEX interactions_client_idx ON interactions (tenant_id, client_id, contact_date);
CREATE INDEX interactions_user_date_idx ON interactions (tenant_id, user_id, contact_date);
CREATE INDEX interactions_type_date_idx ON interactions (tenant_id, type, contact_date);
CREATE INDEX interactions_created_idx ON interactions (tenant_id, created_at);
CREATE INDEX interactions_open_follow_ups_idx ON interactions (tenant_id, follow_up_at) WHERE completed_at IS NULL AND deleted_at IS NULL;

CREATE TABLE tickets (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    subject             text NOT NULL,
    description         text,
    category            text NOT NULL DEFAULT 'other' CHECK (category IN ('bug', 'feature', 'question', 'other')),
    priority            text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    queue               text,
    assigned_to_user_id uuid,
    closed_at           timestamptz,
    created_by          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CONSTRAINT tickets_assigned_to_fkey FOREIGN KEY (tenant_id, assigned_to_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT tickets_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT tickets_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX tickets_status_priority_idx ON tickets (tenant_id, status, priority, created_at);
CREATE INDEX tickets_assigned_status_idx ON tickets (tenant_id, assigned_to_user_id, status);
CREATE INDEX tickets_category_idx ON tickets (tenant_id, category, created_at);
CREATE INDEX tickets_queue_status_idx ON tickets (tenant_id, queue, status);
CREATE INDEX tickets_created_idx ON tickets (tenant_id, created_at);
CREATE INDEX tickets_created_by_idx ON tickets (tenant_id, created_by, created_at);
-- Ticket clean-up (scheduler) looks for closed tickets by age.
CREATE INDEX tickets_closed_idx ON tickets (tenant_id, closed_at) WHERE closed_at IS NOT NULL;

CREATE TABLE ticket_replies (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    ticket_id       uuid NOT NULL,
    author_user_id  uuid,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ticket_replies_ticket_fkey FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id),
    CONSTRAINT ticket_replies_author_fkey FOREIGN KEY (tenant_id, author_user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX ticket_replies_ticket_idx ON ticket_replies (tenant_id, ticket_id, created_at);

-- Who did what. Failed logins for an unknown email have no tenant: they are kept for operators only.
CREATE TABLE audit_log (
    id              uuid PRIMARY KEY,
    tenant_id       uuid REFERENCES tenants (id),
    actor_user_id   uuid,
    action          text NOT NULL,
    target_type     text,
    target_id       uuid,
    details         jsonb NOT NULL DEFAULT '{}',
    request_id      text,
    ip              text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_created_idx ON audit_log (tenant_id, created_at);
CREATE INDEX audit_log_target_idx ON audit_log (tenant_id, target_type, target_id);

-- Jobs: Postgres is the source of truth for every job's status, progress and attempts; Redis only carries
-- the hand-off to workers (see shared::jobs).
CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    kind                text NOT NULL CHECK (kind IN ('import', 'export', 'report', 'email', 'rollup')),
    queue               text NOT NULL CHECK (queue IN ('imports', 'exports', 'reports', 'emails')),
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'dead')),
    payload             jsonb NOT NULL DEFAULT '{}',
    progress_done       bigint NOT NULL DEFAULT 0,
    progress_total      bigint,
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    error               text,
    resource_type       text,
    resource_id         uuid,
    created_by          uuid,
    request_id          text,
    -- earliest time the job may run (retry back-off); dispatched_at: when it was last handed to Redis
    run_at              timestamptz NOT NULL DEFAULT now(),
    dispatched_at       timestamptz,
    worker_name         text,
    heartbeat_at        timestamptz,
    cancel_requested_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT jobs_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant_id, created_at DESC);
CREATE INDEX jobs_tenant_kind_status_idx ON jobs (tenant_id, kind, status, created_at DESC);
-- The dispatcher's work list: jobs not yet finished, by queue and due time.
CREATE INDEX jobs_dispatch_idx ON jobs (queue, run_at) WHERE status IN ('queued', 'running');

CREATE TABLE imports (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    job_id          uuid,
    entity          text NOT NULL CHECK (entity IN ('leads', 'clients', 'projects')),
    file_name       text NOT NULL,
    file_size       bigint NOT NULL,
    file_format     text NOT NULL CHECK (file_format IN ('csv', 'xlsx')),
    storage_key     text NOT NULL,
    mode            text NOT NULL DEFAULT 'create' CHECK (mode IN ('create', 'upsert', 'skip')),
    dry_run         boolean NOT NULL DEFAULT false,
    mapping         jsonb,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'completed', 'completed_with_errors', 'failed', 'cancelled')),
    total_rows      bigint,
    processed_rows  bigint NOT NULL DEFAULT 0,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    skipped         bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    attempt         integer NOT NULL DEFAULT 1,
    -- the last data row whose batch committed; a resumed import starts after it
    checkpoint_row  bigint NOT NULL DEFAULT 0,
    error           text,
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT imports_job_fkey FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, id),
    CONSTRAINT imports_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    CONSTRAINT imports_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX imports_tenant_created_idx ON imports (tenant_id, created_at DESC);

CREATE TABLE import_errors (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    import_id       uuid NOT NULL,
    attempt         integer NOT NULL DEFAULT 1,
    row_number      bigint NOT NULL,
    error_type      text NOT NULL CHECK (error_type IN ('validation', 'duplicate', 'reference_not_found', 'database_error')),
    code            text NOT NULL,
    field           text,
    message         text NOT NULL,
    row_data        jsonb NOT NULL,
    corrected_data  jsonb,
    resolved_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT import_errors_import_fkey FOREIGN KEY (tenant_id, import_id) REFERENCES imports (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX import_errors_import_row_idx ON import_errors (tenant_id, import_id, row_number);
CREATE INDEX import_errors_import_type_idx ON import_errors (tenant_id, import_id, error_type, row_number);

-- Row-level security: every tenant-owned table answers only the transaction's tenant to crm_app.
DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['users', 'teams', 'user_teams', 'leads', 'clients', 'projects', 'interactions',
                                      'tickets', 'ticket_replies', 'audit_log', 'jobs', 'imports', 'import_errors']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', table_name);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) '
                       'WITH CHECK (tenant_id = app_current_tenant())', table_name);
    END LOOP;
END
$$;
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (id = app_current_tenant()) WITH CHECK (id = app_current_tenant());

GRANT USAGE ON SCHEMA public TO crm_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO crm_app;
GRANT EXECUTE ON FUNCTION app_current_tenant() TO crm_app;
-- Tables of later migrations get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO crm_app;
-- The migrations ledger is the owner's alone.
REVOKE ALL ON _sqlx_migrations FROM crm_app;
