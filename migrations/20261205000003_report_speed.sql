-- Report speed: revenue by client kept per audience, and covering indexes for ranged reads (contract §8).
--
-- Adding up every visible project per client and sorting the clients took 90-150 ms per request at 100,000
-- projects, which 32 clients on two cores turned into a p95 of 2.7 s. The
-- visibility predicate is "created by or assigned to someone in the reader's set", and a project rarely
-- matches a given set twice, so the sums cannot be pre-added by creator and assignee (there are nearly as
-- many such groups as projects). Instead each project is counted once for every audience that sees it:
--   audience 0: the tenant (admins);
--   audience 1: a user, for projects they created or are assigned (sales, readonly, a report's `user_id`,
--               a manager without a team);
--   audience 2: a team, for projects created by or assigned to any member (a manager with exactly one team:
--               their set is that team's members, the manager among them).
-- A manager of several teams sees their union, which no single audience holds: that case adds up the projects.
-- Date ranges read the projects themselves (a range holds few), on the covering index below.
--
-- A statement trigger on `projects` applies each statement's net change; a change of team membership
-- recomputes the teams it touches. Each statement updates its rows in key order, so two single-statement
-- writers cannot deadlock over them; two writers of the same client wait for each other's commit.
CREATE TABLE client_revenue (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    audience      smallint NOT NULL CHECK (audience IN (0, 1, 2)),
    -- The tenant's own id for the tenant (never NULL: an equality on every key column before total_value lets
    -- the top index hand rows over in report order, which `IS NULL` would not), else the user's or team's.
    audience_id   uuid NOT NULL,
    client_id     uuid NOT NULL,
    -- Live projects that are not cancelled, and their values: all and completed (the rest, total - won, is
    -- the active and pending projects' value).
    projects      integer NOT NULL,
    total_value   numeric NOT NULL,
    won_value     numeric NOT NULL,
    CHECK ((audience = 0) = (audience_id = tenant_id))
);
CREATE UNIQUE INDEX client_revenue_key ON client_revenue (tenant_id, audience, audience_id, client_id);
-- The report's order: the top of an audience's clients by total value, read by index.
CREATE INDEX client_revenue_top_idx ON client_revenue (tenant_id, audience, audience_id, total_value DESC)
    WHERE projects > 0;

ALTER TABLE client_revenue ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON client_revenue USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
REVOKE INSERT, UPDATE, DELETE ON client_revenue FROM crm_app;
GRANT SELECT ON client_revenue TO crm_app;

-- Every (audience, client) a set of projects counts for, with the project's sign, value and status. `projects`
-- must have the columns tenant_id, client_id, created_by, assigned_to_user_id, status, value, deleted_at, sign.
CREATE FUNCTION client_revenue_contributions(projects text) RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT format(
        $sql$
        WITH live AS (SELECT * FROM (%s) p
                      WHERE p.deleted_at IS NULL AND p.status <> 'cancelled' AND p.client_id IS NOT NULL)
        SELECT l.tenant_id, 0::smallint AS audience, l.tenant_id AS audience_id, l.client_id, l.sign, l.value, l.status
        FROM live l
        UNION ALL
        SELECT l.tenant_id, 1::smallint, u.user_id, l.client_id, l.sign, l.value, l.status
        FROM live l
        CROSS JOIN LATERAL (SELECT DISTINCT x FROM unnest(ARRAY[l.created_by, l.assigned_to_user_id]) x
                            WHERE x IS NOT NULL) u (user_id)
        UNION ALL
        SELECT l.tenant_id, 2::smallint, t.team_id, l.client_id, l.sign, l.value, l.status
        FROM live l
        CROSS JOIN LATERAL (SELECT DISTINCT ut.team_id FROM user_teams ut
                            WHERE ut.tenant_id = l.tenant_id
                              AND ut.user_id IN (l.created_by, l.assigned_to_user_id)) t
        $sql$, projects);
$$;

-- The sums of contributions `c`, per key, in key order.
CREATE FUNCTION client_revenue_sums(contributions text) RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT format(
        $sql$
        SELECT c.tenant_id, c.audience, c.audience_id, c.client_id, sum(c.sign)::integer AS projects,
               sum(c.sign * COALESCE(c.value, 0)) AS total_value,
               COALESCE(sum(c.sign * COALESCE(c.value, 0)) FILTER (WHERE c.status = 'completed'), 0) AS won_value
        FROM (%s) c
        GROUP BY 1, 2, 3, 4
        HAVING sum(c.sign) <> 0 OR sum(c.sign * COALESCE(c.value, 0)) <> 0
            OR COALESCE(sum(c.sign * COALESCE(c.value, 0)) FILTER (WHERE c.status = 'completed'), 0) <> 0
        ORDER BY 1, 2, 3, 4
        $sql$, contributions);
$$;

CREATE FUNCTION client_revenue_capture() RETURNS trigger
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
        INSERT INTO client_revenue AS r (tenant_id, audience, audience_id, client_id, projects, total_value,
                                         won_value)
        %s
        ON CONFLICT (tenant_id, audience, audience_id, client_id) DO UPDATE
        SET projects = r.projects + excluded.projects, total_value = r.total_value + excluded.total_value,
            won_value = r.won_value + excluded.won_value
        $sql$, client_revenue_sums(client_revenue_contributions(changes)));
    RETURN NULL;
END
$$;

CREATE TRIGGER projects_client_revenue_insert AFTER INSERT ON projects
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION client_revenue_capture();
CREATE TRIGGER projects_client_revenue_update AFTER UPDATE ON projects
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION client_revenue_capture();
CREATE TRIGGER projects_client_revenue_delete AFTER DELETE ON projects
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION client_revenue_capture();

-- A team's members changed: recount that team's rows from its projects. The table lock makes a concurrent
-- project write either finish first (and be recounted here) or wait, and then see the new members.
CREATE FUNCTION client_revenue_recount_teams() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT tenant_id, team_id FROM new_rows'
        WHEN 'UPDATE' THEN 'SELECT tenant_id, team_id FROM new_rows UNION SELECT tenant_id, team_id FROM old_rows'
        ELSE 'SELECT tenant_id, team_id FROM old_rows'
    END;
BEGIN
    LOCK TABLE client_revenue IN SHARE ROW EXCLUSIVE MODE;
    EXECUTE format(
        $sql$
        DELETE FROM client_revenue r USING (%s) t
        WHERE r.tenant_id = t.tenant_id AND r.audience = 2 AND r.audience_id = t.team_id
        $sql$, changed);
    EXECUTE format(
        $sql$
        INSERT INTO client_revenue (tenant_id, audience, audience_id, client_id, projects, total_value, won_value)
        %s
        $sql$,
        client_revenue_sums(format(
            $sql$
            SELECT p.tenant_id, 2::smallint AS audience, t.team_id AS audience_id, p.client_id, 1 AS sign, p.value,
                   p.status
            FROM (SELECT DISTINCT * FROM (%s) c) t
            JOIN projects p ON p.tenant_id = t.tenant_id
            WHERE p.deleted_at IS NULL AND p.status <> 'cancelled' AND p.client_id IS NOT NULL
              AND EXISTS (SELECT 1 FROM user_teams ut
                          WHERE ut.tenant_id = t.tenant_id AND ut.team_id = t.team_id
                            AND ut.user_id IN (p.created_by, p.assigned_to_user_id))
            $sql$, changed)));
    RETURN NULL;
END
$$;

CREATE TRIGGER user_teams_client_revenue_insert AFTER INSERT ON user_teams
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION client_revenue_recount_teams();
CREATE TRIGGER user_teams_client_revenue_update AFTER UPDATE ON user_teams
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION client_revenue_recount_teams();
CREATE TRIGGER user_teams_client_revenue_delete AFTER DELETE ON user_teams
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION client_revenue_recount_teams();

-- The projects there are already.
DO $$
BEGIN
    EXECUTE 'INSERT INTO client_revenue (tenant_id, audience, audience_id, client_id, projects, total_value, '
        'won_value) '
        || client_revenue_sums(client_revenue_contributions('SELECT p.*, 1 AS sign FROM projects p'));
END
$$;

-- Ranged reads of projects and interactions from the index alone (no heap visit per row, once vacuumed):
-- revenue by client and project performance over a range of created_at, and client retention's
-- interactions in a range of contact dates with the client they were on.
CREATE INDEX projects_live_created_idx ON projects (tenant_id, created_at)
    INCLUDE (client_id, status, value, created_by, assigned_to_user_id, start_date, close_date)
    WHERE deleted_at IS NULL;
CREATE INDEX interactions_client_contact_idx ON interactions (tenant_id, contact_date)
    INCLUDE (client_id, user_id, created_by)
    WHERE deleted_at IS NULL AND client_id IS NOT NULL;
