//! The report rollups' upkeep: folding the deltas the `leads` and `projects` triggers append into
//! `lead_rollup` and `project_rollup`, and checking each rollup (and `client_revenue`, which its triggers keep
//! exact without deltas) against a recount (see the reports and report speed migrations for why).

use crate::error::DomainError;
use crate::ids::TenantId;
use sqlx::{PgConnection, PgPool};

/// One folder at a time; a second finds the lock taken and leaves the work to the first.
const FOLD_LOCK: i64 = 0x726f_6c6c_7570;
/// Deltas moved per transaction, so a backlog (a million-row import) folds in bounded steps.
const FOLD_BATCH: i64 = 50_000;

/// Lead deltas into `lead_rollup`, at most `$1` delta rows per statement.
const FOLD_LEADS: &str = "WITH moved AS (DELETE FROM lead_rollup_deltas WHERE ctid = ANY(ARRAY( \
         SELECT ctid FROM lead_rollup_deltas LIMIT $1)) RETURNING *) \
     INSERT INTO lead_rollup AS r (tenant_id, grain, bucket, created_by, assigned_to_user_id, status, \
         lead_source, leads, timed_conversions, conversion_seconds) \
     SELECT tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source, sum(leads), \
         sum(timed_conversions), sum(conversion_seconds) \
     FROM moved GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7 \
     ON CONFLICT (tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source) \
     DO UPDATE SET leads = r.leads + excluded.leads, \
         timed_conversions = r.timed_conversions + excluded.timed_conversions, \
         conversion_seconds = r.conversion_seconds + excluded.conversion_seconds";

/// Project deltas into `project_rollup`.
const FOLD_PROJECTS: &str = "WITH moved AS (DELETE FROM project_rollup_deltas WHERE ctid = ANY(ARRAY( \
         SELECT ctid FROM project_rollup_deltas LIMIT $1)) RETURNING *) \
     INSERT INTO project_rollup AS r (tenant_id, created_by, assigned_to_user_id, status, close_month, projects, \
         valued, value_sum, timed, duration_days) \
     SELECT tenant_id, created_by, assigned_to_user_id, status, close_month, sum(projects), sum(valued), \
         sum(value_sum), sum(timed), sum(duration_days) \
     FROM moved GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 \
     ON CONFLICT (tenant_id, created_by, assigned_to_user_id, status, close_month) \
     DO UPDATE SET projects = r.projects + excluded.projects, valued = r.valued + excluded.valued, \
         value_sum = r.value_sum + excluded.value_sum, timed = r.timed + excluded.timed, \
         duration_days = r.duration_days + excluded.duration_days";

/// Activity deltas into `activity_rollup`.
const FOLD_ACTIVITY: &str = "WITH moved AS (DELETE FROM activity_rollup_deltas WHERE ctid = ANY(ARRAY( \
         SELECT ctid FROM activity_rollup_deltas LIMIT $1)) RETURNING *) \
     INSERT INTO activity_rollup AS r (tenant_id, metric, grain, bucket, user_id, records) \
     SELECT tenant_id, metric, grain, bucket, user_id, sum(records) \
     FROM moved GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 \
     ON CONFLICT (tenant_id, metric, grain, bucket, user_id) DO UPDATE SET records = r.records + excluded.records";

/// Moves pending deltas into the rollups, in batches, until none are left or another folder holds the lock.
/// Returns the delta rows folded.
#[tracing::instrument(skip_all)]
pub async fn fold_deltas(pool: &PgPool) -> Result<u64, DomainError> {
    let mut folded = 0;
    for fold in [FOLD_LEADS, FOLD_PROJECTS, FOLD_ACTIVITY] {
        loop {
            let mut tx = pool.begin().await?;
            if !super::try_transaction_lock(&mut tx, FOLD_LOCK).await? {
                return Ok(folded);
            }
            // Rows are upserted in key order; with one folder at a time nothing else locks rollup rows.
            let moved = sqlx::query(fold).bind(FOLD_BATCH).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            folded += moved;
            if moved == 0 {
                break;
            }
        }
    }
    Ok(folded)
}

/// Every bucket where the rollup (with its pending deltas) differs from a recount of the tenant's live leads,
/// described in a line each; empty when they agree.
pub async fn lead_differences_from_recount(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<String>, DomainError> {
    Ok(sqlx::query_scalar(
        "WITH recount AS ( \
             SELECT b.grain, b.bucket, COALESCE(l.created_by, '00000000-0000-0000-0000-000000000000') AS created_by, \
                 COALESCE(l.assigned_to_user_id, '00000000-0000-0000-0000-000000000000') AS assigned, l.status, \
                 COALESCE(l.lead_source, '') AS source, count(*) AS leads, count(l.converted_at) AS timed, \
                 COALESCE(sum(extract(epoch FROM l.converted_at - l.created_at)), 0) AS seconds \
             FROM leads l JOIN tenants t ON t.id = l.tenant_id \
             CROSS JOIN LATERAL (SELECT (l.created_at AT TIME ZONE t.time_zone)::date AS day) d \
             CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'), (1::smallint, date_trunc('month', d.day)::date), \
                 (2::smallint, d.day), \
                 (3::smallint, date_trunc('week', d.day)::date)) b (grain, bucket) \
             WHERE l.tenant_id = $1 AND l.deleted_at IS NULL GROUP BY 1, 2, 3, 4, 5, 6), \
         kept AS ( \
             SELECT grain, bucket, COALESCE(created_by, '00000000-0000-0000-0000-000000000000') AS created_by, \
                 COALESCE(assigned_to_user_id, '00000000-0000-0000-0000-000000000000') AS assigned, status, \
                 COALESCE(lead_source, '') AS source, sum(leads) AS leads, sum(timed_conversions) AS timed, \
                 sum(conversion_seconds) AS seconds \
             FROM (SELECT * FROM lead_rollup WHERE tenant_id = $1 UNION ALL \
                   SELECT * FROM lead_rollup_deltas WHERE tenant_id = $1) x \
             GROUP BY 1, 2, 3, 4, 5, 6 \
             HAVING sum(leads) <> 0 OR sum(timed_conversions) <> 0 OR sum(conversion_seconds) <> 0) \
         SELECT format('grain %s bucket %s creator %s assignee %s status %s source %s: recount %s/%s/%s, rollup %s/%s/%s', \
             COALESCE(r.grain, k.grain), COALESCE(r.bucket, k.bucket), COALESCE(r.created_by, k.created_by), \
             COALESCE(r.assigned, k.assigned), COALESCE(r.status, k.status), COALESCE(r.source, k.source), \
             r.leads, r.timed, r.seconds, k.leads, k.timed, k.seconds) \
         FROM recount r FULL JOIN kept k ON r.grain = k.grain AND r.bucket = k.bucket AND r.created_by = k.created_by \
             AND r.assigned = k.assigned AND r.status = k.status AND r.source = k.source \
         WHERE r.leads IS DISTINCT FROM k.leads OR r.timed IS DISTINCT FROM k.timed \
             OR r.seconds IS DISTINCT FROM k.seconds \
         ORDER BY 1 LIMIT 50",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?)
}

/// Every (creator, assignee, status, close month) where the project rollup (with its pending deltas) differs
/// from a recount of the tenant's live projects, in a line each; empty when they agree.
pub async fn project_differences_from_recount(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<String>, DomainError> {
    Ok(sqlx::query_scalar(
        "WITH recount AS ( \
             SELECT created_by, assigned_to_user_id, status, date_trunc('month', close_date)::date AS close_month, \
                 count(*) AS projects, count(value) AS valued, COALESCE(sum(value), 0) AS value_sum, \
                 count(*) FILTER (WHERE status = 'completed' AND start_date IS NOT NULL AND close_date IS NOT NULL) \
                     AS timed, \
                 COALESCE(sum(close_date - start_date) FILTER (WHERE status = 'completed'), 0) AS duration_days \
             FROM projects WHERE tenant_id = $1 AND deleted_at IS NULL GROUP BY 1, 2, 3, 4), \
         kept AS ( \
             SELECT created_by, assigned_to_user_id, status, close_month, sum(projects) AS projects, \
                 sum(valued) AS valued, sum(value_sum) AS value_sum, sum(timed) AS timed, \
                 sum(duration_days) AS duration_days \
             FROM (SELECT * FROM project_rollup WHERE tenant_id = $1 UNION ALL \
                   SELECT * FROM project_rollup_deltas WHERE tenant_id = $1) x \
             GROUP BY 1, 2, 3, 4 \
             HAVING sum(projects) <> 0 OR sum(valued) <> 0 OR sum(value_sum) <> 0 OR sum(timed) <> 0 \
                 OR sum(duration_days) <> 0) \
         SELECT format('creator %s assignee %s status %s close month %s: recount %s/%s/%s/%s/%s, rollup %s/%s/%s/%s/%s', \
             COALESCE(r.created_by, k.created_by), COALESCE(r.assigned_to_user_id, k.assigned_to_user_id), \
             COALESCE(r.status, k.status), COALESCE(r.close_month, k.close_month), r.projects, r.valued, \
             r.value_sum, r.timed, r.duration_days, k.projects, k.valued, k.value_sum, k.timed, k.duration_days) \
         FROM recount r FULL JOIN kept k ON r.created_by IS NOT DISTINCT FROM k.created_by \
             AND r.assigned_to_user_id IS NOT DISTINCT FROM k.assigned_to_user_id AND r.status = k.status \
             AND r.close_month IS NOT DISTINCT FROM k.close_month \
         WHERE r.projects IS DISTINCT FROM k.projects OR r.valued IS DISTINCT FROM k.valued \
             OR r.value_sum IS DISTINCT FROM k.value_sum OR r.timed IS DISTINCT FROM k.timed \
             OR r.duration_days IS DISTINCT FROM k.duration_days \
         ORDER BY 1 LIMIT 50",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?)
}

/// Every (metric, grain, bucket, user) where the activity rollup (with its pending deltas) differs from a
/// recount of the tenant's live records, in a line each; empty when they agree.
pub async fn activity_differences_from_recount(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<String>, DomainError> {
    Ok(sqlx::query_scalar(
        "WITH recount AS ( \
             SELECT x.metric::smallint AS metric, b.grain, b.bucket, x.user_id, count(*) AS records \
             FROM (SELECT tenant_id, 1 AS metric, assigned_to_user_id AS user_id, created_at AS dated FROM leads \
                       WHERE tenant_id = $1 AND deleted_at IS NULL \
                   UNION ALL SELECT tenant_id, 2, assigned_to_user_id, created_at FROM clients \
                       WHERE tenant_id = $1 AND deleted_at IS NULL \
                   UNION ALL SELECT tenant_id, 3, user_id, contact_date FROM interactions \
                       WHERE tenant_id = $1 AND deleted_at IS NULL \
                   UNION ALL SELECT tenant_id, 4, created_by, created_at FROM projects \
                       WHERE tenant_id = $1 AND deleted_at IS NULL) x \
             JOIN tenants t ON t.id = x.tenant_id \
             CROSS JOIN LATERAL (SELECT (x.dated AT TIME ZONE t.time_zone)::date AS day) d \
             CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'), \
                 (1::smallint, date_trunc('month', d.day)::date), (2::smallint, d.day), \
                 (3::smallint, date_trunc('week', d.day)::date)) b (grain, bucket) \
             WHERE x.user_id IS NOT NULL GROUP BY 1, 2, 3, 4), \
         kept AS ( \
             SELECT metric, grain, bucket, user_id, sum(records) AS records \
             FROM (SELECT * FROM activity_rollup WHERE tenant_id = $1 UNION ALL \
                   SELECT * FROM activity_rollup_deltas WHERE tenant_id = $1) x \
             GROUP BY 1, 2, 3, 4 HAVING sum(records) <> 0) \
         SELECT format('metric %s grain %s bucket %s user %s: recount %s, rollup %s', \
             COALESCE(r.metric, k.metric), COALESCE(r.grain, k.grain), COALESCE(r.bucket, k.bucket), \
             COALESCE(r.user_id, k.user_id), r.records, k.records) \
         FROM recount r FULL JOIN kept k ON r.metric = k.metric AND r.grain = k.grain AND r.bucket = k.bucket \
             AND r.user_id = k.user_id \
         WHERE r.records IS DISTINCT FROM k.records \
         ORDER BY 1 LIMIT 50",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?)
}

/// Delta rows not yet folded (all tenants, every rollup).
pub async fn pending_deltas(pool: &PgPool) -> Result<i64, DomainError> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM lead_rollup_deltas) + (SELECT count(*) FROM project_rollup_deltas) \
         + (SELECT count(*) FROM activity_rollup_deltas)",
    )
    .fetch_one(pool)
    .await?)
}

/// Every (audience, client) where `client_revenue` differs from a recount of the tenant's live, non-cancelled
/// projects by who sees them (the tenant; each user who created or is assigned one; each team with such a
/// member), in a line each; empty when they agree. Written apart from the trigger's own SQL on purpose.
pub async fn client_revenue_differences_from_recount(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<String>, DomainError> {
    Ok(sqlx::query_scalar(
        "WITH live AS ( \
             SELECT * FROM projects \
             WHERE tenant_id = $1 AND deleted_at IS NULL AND status <> 'cancelled' AND client_id IS NOT NULL), \
         seen AS ( \
             SELECT 0::smallint AS audience, l.tenant_id AS audience_id, l.client_id, l.value, l.status FROM live l \
             UNION ALL \
             SELECT 1, u.id, l.client_id, l.value, l.status FROM live l \
             JOIN users u ON u.tenant_id = l.tenant_id AND (u.id = l.created_by OR u.id = l.assigned_to_user_id) \
             UNION ALL \
             SELECT 2, t.id, l.client_id, l.value, l.status FROM live l JOIN teams t ON t.tenant_id = l.tenant_id \
             WHERE EXISTS (SELECT 1 FROM user_teams ut WHERE ut.tenant_id = t.tenant_id AND ut.team_id = t.id \
                 AND (ut.user_id = l.created_by OR ut.user_id = l.assigned_to_user_id))), \
         recount AS ( \
             SELECT audience, audience_id, client_id, count(*)::integer AS projects, \
                 COALESCE(sum(value), 0) AS total_value, \
                 COALESCE(sum(value) FILTER (WHERE status = 'completed'), 0) AS won_value, \
                 COALESCE(sum(value) FILTER (WHERE status IN ('active', 'pending')), 0) AS pending_value \
             FROM seen GROUP BY 1, 2, 3), \
         kept AS ( \
             SELECT audience, audience_id, client_id, projects, total_value, won_value, \
                 total_value - won_value AS pending_value \
             FROM client_revenue WHERE tenant_id = $1 AND (projects <> 0 OR total_value <> 0 OR won_value <> 0)) \
         SELECT format('audience %s %s client %s: recount %s/%s/%s/%s, kept %s/%s/%s/%s', \
             COALESCE(r.audience, k.audience), COALESCE(r.audience_id, k.audience_id), \
             COALESCE(r.client_id, k.client_id), r.projects, r.total_value, r.won_value, r.pending_value, \
             k.projects, k.total_value, k.won_value, k.pending_value) \
         FROM recount r FULL JOIN kept k ON r.audience = k.audience \
             AND r.audience_id = k.audience_id AND r.client_id = k.client_id \
         WHERE r.projects IS DISTINCT FROM k.projects OR r.total_value IS DISTINCT FROM k.total_value \
             OR r.won_value IS DISTINCT FROM k.won_value OR r.pending_value IS DISTINCT FROM k.pending_value \
         ORDER BY 1 LIMIT 50",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?)
}
