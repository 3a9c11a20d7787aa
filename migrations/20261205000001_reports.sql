-- Reports and dashboards (contract §8).
--
-- Lead figures come from a pre-aggregate, because counting a million leads per request cannot answer 32
-- clients within the product's ceiling on two cores. `lead_rollup` holds, per tenant, counts of live leads by
-- everything a report groups or scopes by: the creator and assignee (the visibility predicate's two columns,
-- named as on `leads`, so the lists' own predicate applies unchanged), status and source; per bucket of
-- `created_at` in the tenant's time zone at three grains:
--   grain 0: all time (one bucket), grain 1: calendar months, grain 2: days.
-- A date range reads whole months in its middle and days at its ends; no range reads grain 0.
--
-- Writers never touch `lead_rollup` itself: a statement-level trigger on `leads` appends the statement's net
-- change to `lead_rollup_deltas` (append-only, so concurrent imports and edits never wait on, or deadlock
-- over, a hot counter row). Readers add the pending deltas to the rollup in the same statement (one snapshot,
-- so a fold in between cannot count anything twice), and workers fold deltas into the rollup every few seconds.

CREATE TABLE lead_rollup (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    grain               smallint NOT NULL CHECK (grain IN (0, 1, 2)),
    bucket              date NOT NULL,
    created_by          uuid,
    assigned_to_user_id uuid,
    status              text NOT NULL,
    lead_source         text,
    leads               integer NOT NULL,
    -- Leads with a converted_at, and the sum of (converted_at - created_at) in seconds over them.
    timed_conversions   integer NOT NULL,
    conversion_seconds  numeric NOT NULL
);
CREATE UNIQUE INDEX lead_rollup_key ON lead_rollup
    (tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source) NULLS NOT DISTINCT;

CREATE TABLE lead_rollup_deltas (
    tenant_id           uuid NOT NULL,
    grain               smallint NOT NULL,
    bucket              date NOT NULL,
    created_by          uuid,
    assigned_to_user_id uuid,
    status              text NOT NULL,
    lead_source         text,
    leads               integer NOT NULL,
    timed_conversions   integer NOT NULL,
    conversion_seconds  numeric NOT NULL
);
CREATE INDEX lead_rollup_deltas_bucket_idx ON lead_rollup_deltas (tenant_id, grain, bucket);

ALTER TABLE lead_rollup ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON lead_rollup USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
ALTER TABLE lead_rollup_deltas ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON lead_rollup_deltas USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
-- The application reads both; only the trigger (as the owner) and the fold write them.
REVOKE INSERT, UPDATE, DELETE ON lead_rollup, lead_rollup_deltas FROM crm_app;
GRANT SELECT ON lead_rollup, lead_rollup_deltas TO crm_app;

-- The net change of one statement on leads, as delta rows. `changes` is the statement's transition rows with
-- a sign: +1 for rows as they now are, -1 for rows as they were. Soft-deleted rows count nowhere, so a soft
-- delete is -1 and a restore +1; an update that changes nothing a report reads nets to nothing and is left out.
CREATE FUNCTION lead_rollup_capture() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    changes text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows n'
        WHEN 'UPDATE' THEN 'SELECT n.*, 1 AS sign FROM new_rows n UNION ALL SELECT o.*, -1 FROM old_rows o'
        ELSE 'SELECT o.*, -1 AS sign FROM old_rows o'
    END;
BEGIN
    EXECUTE format(
        $sql$
        INSERT INTO lead_rollup_deltas (tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source,
                                        leads, timed_conversions, conversion_seconds)
        SELECT c.tenant_id, b.grain, b.bucket, c.created_by, c.assigned_to_user_id, c.status, c.lead_source,
               sum(c.sign), sum(c.sign * (c.converted_at IS NOT NULL)::int),
               sum(c.sign * COALESCE(extract(epoch FROM c.converted_at - c.created_at), 0))
        FROM (%s) c
        JOIN tenants t ON t.id = c.tenant_id
        CROSS JOIN LATERAL (SELECT (c.created_at AT TIME ZONE t.time_zone)::date AS day) d
        CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'),
                                   (1::smallint, date_trunc('month', d.day)::date),
                                   (2::smallint, d.day)) b (grain, bucket)
        WHERE c.deleted_at IS NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        HAVING sum(c.sign) <> 0 OR sum(c.sign * (c.converted_at IS NOT NULL)::int) <> 0
            OR sum(c.sign * COALESCE(extract(epoch FROM c.converted_at - c.created_at), 0)) <> 0
        $sql$, changes);
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_rollup_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lead_rollup_capture();
CREATE TRIGGER leads_rollup_update AFTER UPDATE ON leads
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lead_rollup_capture();
CREATE TRIGGER leads_rollup_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION lead_rollup_capture();

-- Leads that exist before this migration.
INSERT INTO lead_rollup (tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source, leads,
                         timed_conversions, conversion_seconds)
SELECT l.tenant_id, b.grain, b.bucket, l.created_by, l.assigned_to_user_id, l.status, l.lead_source, count(*),
       count(l.converted_at), COALESCE(sum(extract(epoch FROM l.converted_at - l.created_at)), 0)
FROM leads l
JOIN tenants t ON t.id = l.tenant_id
CROSS JOIN LATERAL (SELECT (l.created_at AT TIME ZONE t.time_zone)::date AS day) d
CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'),
                           (1::smallint, date_trunc('month', d.day)::date),
                           (2::smallint, d.day)) b (grain, bucket)
WHERE l.deleted_at IS NULL
GROUP BY 1, 2, 3, 4, 5, 6, 7;

-- Projects, the same way, at one grain: all time, per creator, assignee, status and close month (NULL: no
-- close date). All-time project figures (pipeline, performance, forecast and its months, projects created per
-- user) read it; a date range reads the projects themselves by index (a range holds few of them).
CREATE TABLE project_rollup (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    created_by          uuid,
    assigned_to_user_id uuid,
    status              text NOT NULL,
    close_month         date,
    projects            integer NOT NULL,
    -- Projects with a value, and the sum of the values.
    valued              integer NOT NULL,
    value_sum           numeric NOT NULL,
    -- Completed projects with a start and a close date, and the sum of their days from start to close.
    timed               integer NOT NULL,
    duration_days       bigint NOT NULL
);
CREATE UNIQUE INDEX project_rollup_key ON project_rollup
    (tenant_id, created_by, assigned_to_user_id, status, close_month) NULLS NOT DISTINCT;
CREATE TABLE project_rollup_deltas (LIKE project_rollup);
CREATE INDEX project_rollup_deltas_tenant_idx ON project_rollup_deltas (tenant_id);

ALTER TABLE project_rollup ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON project_rollup USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
ALTER TABLE project_rollup_deltas ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON project_rollup_deltas USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
REVOKE INSERT, UPDATE, DELETE ON project_rollup, project_rollup_deltas FROM crm_app;
GRANT SELECT ON project_rollup, project_rollup_deltas TO crm_app;

CREATE FUNCTION project_rollup_capture() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    changes text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows n'
        WHEN 'UPDATE' THEN 'SELECT n.*, 1 AS sign FROM new_rows n UNION ALL SELECT o.*, -1 FROM old_rows o'
        ELSE 'SELECT o.*, -1 AS sign FROM old_rows o'
    END;
BEGIN
    EXECUTE format(
        $sql$
        INSERT INTO project_rollup_deltas (tenant_id, created_by, assigned_to_user_id, status, close_month, projects,
                                           valued, value_sum, timed, duration_days)
        SELECT c.tenant_id, c.created_by, c.assigned_to_user_id, c.status, date_trunc('month', c.close_date)::date,
               sum(c.sign), sum(c.sign * (c.value IS NOT NULL)::int), sum(c.sign * COALESCE(c.value, 0)),
               sum(c.sign * (c.status = 'completed' AND c.start_date IS NOT NULL AND c.close_date IS NOT NULL)::int),
               sum(c.sign * CASE WHEN c.status = 'completed' THEN COALESCE(c.close_date - c.start_date, 0) ELSE 0 END)
        FROM (%s) c
        WHERE c.deleted_at IS NULL
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(c.sign) <> 0 OR sum(c.sign * (c.value IS NOT NULL)::int) <> 0
            OR sum(c.sign * COALESCE(c.value, 0)) <> 0
            OR sum(c.sign * (c.status = 'completed' AND c.start_date IS NOT NULL AND c.close_date IS NOT NULL)::int) <> 0
            OR sum(c.sign * CASE WHEN c.status = 'completed' THEN COALESCE(c.close_date - c.start_date, 0) ELSE 0 END) <> 0
        $sql$, changes);
    RETURN NULL;
END
$$;

CREATE TRIGGER projects_rollup_insert AFTER INSERT ON projects
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION project_rollup_capture();
CREATE TRIGGER projects_rollup_update AFTER UPDATE ON projects
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION project_rollup_capture();
CREATE TRIGGER projects_rollup_delete AFTER DELETE ON projects
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION project_rollup_capture();

INSERT INTO project_rollup (tenant_id, created_by, assigned_to_user_id, status, close_month, projects, valued,
                            value_sum, timed, duration_days)
SELECT p.tenant_id, p.created_by, p.assigned_to_user_id, p.status, date_trunc('month', p.close_date)::date, count(*),
       count(p.value), COALESCE(sum(p.value), 0),
       count(*) FILTER (WHERE p.status = 'completed' AND p.start_date IS NOT NULL AND p.close_date IS NOT NULL),
       COALESCE(sum(p.close_date - p.start_date) FILTER (WHERE p.status = 'completed'), 0)
FROM projects p
WHERE p.deleted_at IS NULL
GROUP BY 1, 2, 3, 4, 5;

-- Per-user activity, the way the rollups above are kept: how many records each user has per bucket of their
-- date (all time, month, day in the tenant's zone), by metric:
--   1 leads assigned to the user (by created_at), 2 clients assigned to the user (by created_at),
--   3 interactions the user had (`user_id`, by contact_date), 4 projects the user created (by created_at).
-- User activity lists users in the reader's scope, and every record counted for such a user is one the reader
-- sees (its owner or creator is that user), so no visibility columns are needed here.
CREATE TABLE activity_rollup (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    metric    smallint NOT NULL,
    grain     smallint NOT NULL CHECK (grain IN (0, 1, 2)),
    bucket    date NOT NULL,
    user_id   uuid NOT NULL,
    records   integer NOT NULL
);
CREATE UNIQUE INDEX activity_rollup_key ON activity_rollup (tenant_id, metric, grain, bucket, user_id);
CREATE TABLE activity_rollup_deltas (LIKE activity_rollup);
CREATE INDEX activity_rollup_deltas_bucket_idx ON activity_rollup_deltas (tenant_id, metric, grain, bucket);

ALTER TABLE activity_rollup ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON activity_rollup USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
ALTER TABLE activity_rollup_deltas ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON activity_rollup_deltas USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
REVOKE INSERT, UPDATE, DELETE ON activity_rollup, activity_rollup_deltas FROM crm_app;
GRANT SELECT ON activity_rollup, activity_rollup_deltas TO crm_app;

-- TG_ARGV: the metric, the column naming the user, the timestamp column dating the record.
CREATE FUNCTION activity_rollup_capture() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    changes text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows n'
        WHEN 'UPDATE' THEN 'SELECT n.*, 1 AS sign FROM new_rows n UNION ALL SELECT o.*, -1 FROM old_rows o'
        ELSE 'SELECT o.*, -1 AS sign FROM old_rows o'
    END;
BEGIN
    EXECUTE format(
        $sql$
        INSERT INTO activity_rollup_deltas (tenant_id, metric, grain, bucket, user_id, records)
        SELECT c.tenant_id, %s::smallint, b.grain, b.bucket, c.%I, sum(c.sign)
        FROM (%s) c
        JOIN tenants t ON t.id = c.tenant_id
        CROSS JOIN LATERAL (SELECT (c.%I AT TIME ZONE t.time_zone)::date AS day) d
        CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'),
                                   (1::smallint, date_trunc('month', d.day)::date),
                                   (2::smallint, d.day)) b (grain, bucket)
        WHERE c.deleted_at IS NULL AND c.%I IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(c.sign) <> 0
        $sql$, TG_ARGV[0]::smallint, TG_ARGV[1], changes, TG_ARGV[2], TG_ARGV[1]);
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_activity_insert AFTER INSERT ON leads REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('1', 'assigned_to_user_id', 'created_at');
CREATE TRIGGER leads_activity_update AFTER UPDATE ON leads REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('1', 'assigned_to_user_id', 'created_at');
CREATE TRIGGER leads_activity_delete AFTER DELETE ON leads REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('1', 'assigned_to_user_id', 'created_at');
CREATE TRIGGER clients_activity_insert AFTER INSERT ON clients REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('2', 'assigned_to_user_id', 'created_at');
CREATE TRIGGER clients_activity_update AFTER UPDATE ON clients REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('2', 'assigned_to_user_id', 'created_at');
CREATE TRIGGER clients_activity_delete AFTER DELETE ON clients REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('2', 'assigned_to_user_id', 'created_at');
CREATE TRIGGER interactions_activity_insert AFTER INSERT ON interactions REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('3', 'user_id', 'contact_date');
CREATE TRIGGER interactions_activity_update AFTER UPDATE ON interactions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('3', 'user_id', 'contact_date');
CREATE TRIGGER interactions_activity_delete AFTER DELETE ON interactions REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('3', 'user_id', 'contact_date');
CREATE TRIGGER projects_activity_insert AFTER INSERT ON projects REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('4', 'created_by', 'created_at');
CREATE TRIGGER projects_activity_update AFTER UPDATE ON projects REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('4', 'created_by', 'created_at');
CREATE TRIGGER projects_activity_delete AFTER DELETE ON projects REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION activity_rollup_capture('4', 'created_by', 'created_at');

INSERT INTO activity_rollup (tenant_id, metric, grain, bucket, user_id, records)
SELECT x.tenant_id, x.metric, b.grain, b.bucket, x.user_id, count(*)
FROM (SELECT tenant_id, 1::smallint AS metric, assigned_to_user_id AS user_id, created_at AS dated FROM leads
          WHERE deleted_at IS NULL
      UNION ALL SELECT tenant_id, 2::smallint, assigned_to_user_id, created_at FROM clients WHERE deleted_at IS NULL
      UNION ALL SELECT tenant_id, 3::smallint, user_id, contact_date FROM interactions WHERE deleted_at IS NULL
      UNION ALL SELECT tenant_id, 4::smallint, created_by, created_at FROM projects WHERE deleted_at IS NULL) x
JOIN tenants t ON t.id = x.tenant_id
CROSS JOIN LATERAL (SELECT (x.dated AT TIME ZONE t.time_zone)::date AS day) d
CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'),
                           (1::smallint, date_trunc('month', d.day)::date),
                           (2::smallint, d.day)) b (grain, bucket)
WHERE x.user_id IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;

-- Raw report queries over the smaller tables.
-- Interactions by contact date (client retention's recent interactions, user activity in a range).
CREATE INDEX interactions_live_contact_idx ON interactions (tenant_id, contact_date) WHERE deleted_at IS NULL;
-- Upcoming tasks: open interactions by contact date (open follow-ups by due time exist already).
CREATE INDEX interactions_open_contact_idx ON interactions (tenant_id, contact_date)
    WHERE completed_at IS NULL AND deleted_at IS NULL;
-- The revenue forecast reads projects by close date.
CREATE INDEX projects_close_idx ON projects (tenant_id, close_date);
