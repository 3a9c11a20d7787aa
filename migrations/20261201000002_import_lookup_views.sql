-- The import job's duplicate and reference lookups. Run as crm_app, a lookup such as
-- `lower(email) = $key` cannot be an index condition: lower() is not leakproof, so row-level security must
-- filter the rows first, and the planner read the tenant's whole slice of the index for every key (a 300-row
-- dry run took 24 s in a tenant of 75,000 leads). These views belong to the schema owner, whom row-level
-- security does not apply to, and confine themselves to the transaction's tenant (app_current_tenant(), NULL
-- and so no rows when none is set). crm_app may only read them. Through them the planner uses the
-- (tenant_id, lower(email)) and (tenant_id, client_id, lower(name)) indexes with both conditions.
-- Each row carries who created the record and who it is assigned to, so the job can tell which matches the
-- importer may see and change.

CREATE VIEW lead_import_keys AS
    SELECT id, lower(email) AS email_key, created_by, assigned_to_user_id AS owner_id
    FROM leads
    WHERE tenant_id = app_current_tenant() AND deleted_at IS NULL AND email IS NOT NULL;

CREATE VIEW client_import_keys AS
    SELECT id, lower(name) AS name_key, lower(email) AS email_key, email IS NOT NULL AS has_email,
           created_by, assigned_to_user_id AS owner_id
    FROM clients
    WHERE tenant_id = app_current_tenant() AND deleted_at IS NULL;

CREATE VIEW project_import_keys AS
    SELECT id, client_id, lower(name) AS name_key, created_by, assigned_to_user_id AS owner_id
    FROM projects
    WHERE tenant_id = app_current_tenant() AND deleted_at IS NULL;

GRANT SELECT ON lead_import_keys, client_import_keys, project_import_keys TO crm_app;
