//! Schedules and their runs (contract §10). The API keeps schedules in the caller's tenant; schedulers find
//! due ones across tenants (owner connection, `FOR UPDATE SKIP LOCKED`) and fire each time by inserting its
//! run row, which `(schedule_id, scheduled_for)` keeps unique, in the same transaction as the run's job.

use super::jobs::{self, NewJob};
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use crate::jobs::JobKind;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ScheduleRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub action: Value,
    pub recipients: Vec<Uuid>,
    pub send_if_data: bool,
    pub enabled: bool,
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SCHEDULE_COLUMNS: &str = "id, tenant_id, name, cron, time_zone, action, recipients, send_if_data, enabled, \
    next_run_at, created_by, created_at, updated_at";

/// A schedule as validated by the API.
#[derive(Debug, Clone)]
pub struct ScheduleFields {
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub action: Value,
    pub recipients: Vec<Uuid>,
    pub send_if_data: bool,
    pub enabled: bool,
    pub next_run_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    created_by: UserId,
    fields: &ScheduleFields,
) -> Result<ScheduleRow, DomainError> {
    let sql = format!(
        "INSERT INTO schedules (id, tenant_id, name, cron, time_zone, action, recipients, send_if_data, enabled, \
                                next_run_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {SCHEDULE_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(&fields.name)
        .bind(&fields.cron)
        .bind(&fields.time_zone)
        .bind(&fields.action)
        .bind(&fields.recipients)
        .bind(fields.send_if_data)
        .bind(fields.enabled)
        .bind(fields.next_run_at)
        .bind(created_by)
        .fetch_one(conn)
        .await?)
}

pub async fn replace(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    fields: &ScheduleFields,
) -> Result<Option<ScheduleRow>, DomainError> {
    let sql = format!(
        "UPDATE schedules SET name = $3, cron = $4, time_zone = $5, action = $6, recipients = $7, send_if_data = $8, \
                enabled = $9, next_run_at = $10, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING {SCHEDULE_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&fields.name)
        .bind(&fields.cron)
        .bind(&fields.time_zone)
        .bind(&fields.action)
        .bind(&fields.recipients)
        .bind(fields.send_if_data)
        .bind(fields.enabled)
        .bind(fields.next_run_at)
        .fetch_optional(conn)
        .await?)
}

/// One schedule; `owner` narrows to schedules that user created (a manager sees only their own).
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    owner: Option<UserId>,
) -> Result<Option<ScheduleRow>, DomainError> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = $1 AND id = $2 \
         AND ($3::uuid IS NULL OR created_by = $3)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).bind(owner).fetch_optional(conn).await?)
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    owner: Option<UserId>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ScheduleRow>, i64), DomainError> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = $1 AND ($2::uuid IS NULL OR created_by = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(owner)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let total = sqlx::query_scalar(
        "SELECT count(*) FROM schedules WHERE tenant_id = $1 AND ($2::uuid IS NULL OR created_by = $2)",
    )
    .bind(tenant)
    .bind(owner)
    .fetch_one(conn)
    .await?;
    Ok((rows, total))
}

pub async fn delete(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<bool, DomainError> {
    let done = sqlx::query("DELETE FROM schedules WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Which users of `ids` exist in the tenant (recipients are checked against it).
pub async fn existing_users(conn: &mut PgConnection, tenant: TenantId, ids: &[Uuid]) -> Result<Vec<Uuid>, DomainError> {
    Ok(sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .fetch_all(conn)
        .await?)
}

/// Locks up to `limit` enabled schedules, of every tenant, whose next time has come. Schedulers running at
/// once skip each other's locked rows.
pub async fn lock_due(conn: &mut PgConnection, limit: i64) -> Result<Vec<ScheduleRow>, DomainError> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE enabled AND next_run_at <= now() \
         ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(conn).await?)
}

pub async fn set_next_run(
    conn: &mut PgConnection,
    id: Uuid,
    next_run_at: Option<DateTime<Utc>>,
) -> Result<(), DomainError> {
    sqlx::query("UPDATE schedules SET next_run_at = $2 WHERE id = $1").bind(id).bind(next_run_at).execute(conn).await?;
    Ok(())
}

/// How a run came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    CatchUp,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Manual => "manual",
        }
    }
}

/// Fires one time of a schedule: the run row and its `report` job, or nothing when that time already fired.
/// Returns the run's id and its job's id.
pub async fn fire(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
    scheduled_for: DateTime<Utc>,
    trigger: Trigger,
    note: Option<&str>,
    requested_by: Option<UserId>,
) -> Result<Option<(Uuid, Uuid)>, DomainError> {
    let tenant = TenantId(schedule.tenant_id);
    let run_id = new_id();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO schedule_runs (id, tenant_id, schedule_id, scheduled_for, trigger, skipped_reason) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING id",
    )
    .bind(run_id)
    .bind(tenant)
    .bind(schedule.id)
    .bind(scheduled_for)
    .bind(trigger.as_str())
    .bind(note)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run_id) = inserted else { return Ok(None) };
    let job = jobs::insert(
        &mut *conn,
        tenant,
        &NewJob {
            kind: JobKind::Report,
            payload: json!({ "schedule_run_id": run_id }),
            max_attempts: 3,
            resource: Some(("schedule_run", run_id)),
            created_by: requested_by,
            request_id: None,
        },
    )
    .await?;
    sqlx::query("UPDATE schedule_runs SET job_id = $2 WHERE id = $1").bind(run_id).bind(job.id).execute(conn).await?;
    Ok(Some((run_id, job.id)))
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub scheduled_for: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub trigger: String,
    pub job_id: Option<Uuid>,
    pub status: String,
    pub emails_sent: i32,
    pub skipped_reason: Option<String>,
    pub recipients: Value,
    pub finished_at: Option<DateTime<Utc>>,
}

const RUN_COLUMNS: &str = "id, schedule_id, scheduled_for, fired_at, trigger, job_id, status, emails_sent, \
    skipped_reason, recipients, finished_at";

pub async fn runs(
    conn: &mut PgConnection,
    tenant: TenantId,
    schedule_id: Uuid,
    limit: i64,
) -> Result<Vec<RunRow>, DomainError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE tenant_id = $1 AND schedule_id = $2 \
         ORDER BY scheduled_for DESC, fired_at DESC LIMIT $3"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(schedule_id).bind(limit).fetch_all(conn).await?)
}

/// A run and its schedule, for the job that carries it out.
pub async fn run_with_schedule(
    conn: &mut PgConnection,
    tenant: TenantId,
    run_id: Uuid,
) -> Result<Option<(RunRow, ScheduleRow)>, DomainError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM schedule_runs WHERE tenant_id = $1 AND id = $2");
    let run: Option<RunRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(run_id).fetch_optional(&mut *conn).await?;
    let Some(run) = run else { return Ok(None) };
    let schedule = get(conn, tenant, run.schedule_id, None).await?;
    Ok(schedule.map(|schedule| (run, schedule)))
}

/// Records how a run ended: its status, the emails it queued, why nothing went out (if so) and what happened
/// per recipient.
pub async fn finish_run(
    conn: &mut PgConnection,
    tenant: TenantId,
    run_id: Uuid,
    status: &str,
    emails_sent: i32,
    skipped_reason: Option<&str>,
    recipients: &Value,
) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE schedule_runs SET status = $3, emails_sent = $4, \
                skipped_reason = CASE WHEN $5::text IS NULL THEN skipped_reason \
                                      WHEN skipped_reason IS NULL THEN $5 ELSE skipped_reason || '; ' || $5 END, \
                recipients = $6, finished_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(run_id)
    .bind(status)
    .bind(emails_sent)
    .bind(skipped_reason)
    .bind(recipients)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts an email a scheduled export queued for its run (the export's end writes it).
pub async fn count_email(conn: &mut PgConnection, tenant: TenantId, run_id: Uuid) -> Result<(), DomainError> {
    sqlx::query("UPDATE schedule_runs SET emails_sent = emails_sent + 1 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(())
}
