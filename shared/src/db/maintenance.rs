//! The built-in schedules' work (contract §10): ticket clean-up, job pruning and their run records. These run
//! across tenants on the owner connection (the scheduler), or for one tenant (an admin's "run now").

use crate::error::DomainError;
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

/// Rows deleted per statement, so a large backlog never holds long locks.
const BATCH: i64 = 5_000;

/// Deletes tickets closed more than `days` ago, with their replies (the foreign key cascades), and writes an
/// audit entry per tenant with the count. Returns how many were deleted.
pub async fn delete_closed_tickets(pool: &PgPool, days: i32, tenant: Option<TenantId>) -> Result<i64, DomainError> {
    let mut total = 0;
    loop {
        let deleted: Option<i64> = sqlx::query_scalar(
            "WITH doomed AS ( \
                 SELECT id FROM tickets WHERE status = 'closed' AND closed_at < now() - make_interval(days => $1) \
                 AND ($2::uuid IS NULL OR tenant_id = $2) LIMIT $3), \
             gone AS (DELETE FROM tickets t USING doomed d WHERE t.id = d.id RETURNING t.tenant_id), \
             counted AS (SELECT tenant_id, count(*) AS n FROM gone GROUP BY tenant_id), \
             audited AS ( \
                 INSERT INTO audit_log (id, tenant_id, action, target_type, details) \
                 SELECT gen_random_uuid(), tenant_id, 'tickets.cleaned_up', 'ticket', \
                        jsonb_build_object('deleted', n, 'retention_days', $1) FROM counted RETURNING 1) \
             SELECT sum(n)::bigint FROM counted",
        )
        .bind(days)
        .bind(tenant)
        .bind(BATCH)
        .fetch_one(pool)
        .await?;
        let deleted = deleted.unwrap_or(0);
        total += deleted;
        if deleted < BATCH {
            return Ok(total);
        }
    }
}

/// Deletes jobs that finished more than `days` ago (imports and exports keep their own rows; their `job_id`
/// is cleared). Returns how many were deleted.
pub async fn prune_jobs(pool: &PgPool, days: i32, tenant: Option<TenantId>) -> Result<i64, DomainError> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs WHERE finished_at < now() - make_interval(days => $1) \
                 AND status IN ('succeeded', 'failed', 'cancelled', 'dead') \
                 AND ($2::uuid IS NULL OR tenant_id = $2) LIMIT $3)",
        )
        .bind(days)
        .bind(tenant)
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected() as i64;
        total += deleted;
        if deleted < BATCH {
            return Ok(total);
        }
    }
}

/// Refreshes the planner's statistics of the report tables (they grow by the minute; stale statistics
/// gave the reports slow plans in the benchmark).
pub async fn analyze_report_tables(pool: &PgPool) -> Result<(), DomainError> {
    sqlx::query("ANALYZE lead_rollup, project_rollup, activity_rollup, client_revenue").execute(pool).await?;
    Ok(())
}

/// Claims one time of a built-in schedule; false when another scheduler already did.
pub async fn claim_system_run(pool: &PgPool, name: &str, scheduled_for: DateTime<Utc>) -> Result<bool, DomainError> {
    let done =
        sqlx::query("INSERT INTO system_schedule_runs (name, scheduled_for) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(scheduled_for)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn finish_system_run(
    pool: &PgPool,
    name: &str,
    scheduled_for: DateTime<Utc>,
    outcome: Option<&Value>,
    error: Option<&str>,
) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE system_schedule_runs SET finished_at = now(), outcome = $3, error = $4 \
         WHERE name = $1 AND scheduled_for = $2",
    )
    .bind(name)
    .bind(scheduled_for)
    .bind(outcome)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest time each built-in schedule fired (for the scheduler and the API's listing).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SystemRun {
    pub name: String,
    pub scheduled_for: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

pub async fn latest_system_runs(conn: &mut PgConnection) -> Result<Vec<SystemRun>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (name) name, scheduled_for, fired_at, finished_at, error FROM system_schedule_runs \
         ORDER BY name, scheduled_for DESC",
    )
    .fetch_all(conn)
    .await?)
}

/// Keeps a week of built-in runs (a minutely schedule writes 1,440 a day).
pub async fn prune_system_runs(pool: &PgPool) -> Result<u64, DomainError> {
    Ok(sqlx::query("DELETE FROM system_schedule_runs WHERE scheduled_for < now() - interval '7 days'")
        .execute(pool)
        .await?
        .rows_affected())
}
