//! Exports (contract §7): the export rows, what their jobs write back, and the query that streams an export's
//! records (the list's own query, from `records::export_query`, with the export's columns selected).

use crate::db::records::{self, ListQuery, RecordTable, Viewer};
use crate::error::DomainError;
use crate::exports::Cell;
use crate::exports::columns::{ColumnKind, ExportColumn};
use crate::ids::{TenantId, UserId};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub job_id: Option<Uuid>,
    pub entity: String,
    pub format: String,
    pub columns: Vec<String>,
    pub filters: Value,
    pub sort: Option<String>,
    pub query: Value,
    pub file_name: String,
    pub template_id: Option<Uuid>,
    pub status: String,
    pub row_count: Option<i64>,
    pub file_size: Option<i64>,
    pub storage_key: Option<String>,
    pub error: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub progress_done: Option<i64>,
    pub progress_total: Option<i64>,
}

/// The export as its reader sees it: a job that failed or died (or was cancelled) before the export's own row
/// said so shows through, as for imports.
const COLUMNS: &str = "e.id, e.tenant_id, e.job_id, e.entity, e.format, e.columns, e.filters, e.sort, e.query, \
    e.file_name, e.template_id, \
    CASE WHEN e.status IN ('queued', 'running') AND j.status IN ('failed', 'dead') THEN 'failed' \
         WHEN e.status IN ('queued', 'running') AND j.status = 'cancelled' THEN 'cancelled' \
         ELSE e.status END AS status, \
    e.row_count, e.file_size, e.storage_key, \
    CASE WHEN e.status IN ('queued', 'running') AND j.status IN ('failed', 'dead') THEN j.error ELSE e.error END AS error, \
    e.created_by, e.created_at, e.started_at, \
    CASE WHEN e.status IN ('queued', 'running') THEN j.finished_at ELSE e.finished_at END AS finished_at, \
    e.expires_at, j.progress_done, j.progress_total";

const FROM: &str = "FROM exports e LEFT JOIN jobs j ON j.tenant_id = e.tenant_id AND j.id = e.job_id";

pub struct NewExport<'a> {
    pub id: Uuid,
    pub job_id: Uuid,
    pub entity: &'a str,
    pub format: &'a str,
    pub columns: Vec<String>,
    pub filters: Value,
    pub sort: Option<String>,
    pub query: Value,
    pub file_name: &'a str,
    pub template_id: Option<Uuid>,
    pub created_by: UserId,
}

pub async fn insert(conn: &mut PgConnection, tenant: TenantId, export: NewExport<'_>) -> Result<(), DomainError> {
    sqlx::query(
        "INSERT INTO exports (id, tenant_id, job_id, entity, format, columns, filters, sort, query, file_name, \
             template_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(export.id)
    .bind(tenant)
    .bind(export.job_id)
    .bind(export.entity)
    .bind(export.format)
    .bind(&export.columns)
    .bind(&export.filters)
    .bind(&export.sort)
    .bind(&export.query)
    .bind(export.file_name)
    .bind(export.template_id)
    .bind(export.created_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// One export, if it is the tenant's and (when `seen_by` is given) that user's own.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    seen_by: Option<Uuid>,
) -> Result<Option<ExportRow>, DomainError> {
    let sql = format!(
        "SELECT {COLUMNS} {FROM} WHERE e.tenant_id = $1 AND e.id = $2 AND ($3::uuid IS NULL OR e.created_by = $3)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).bind(seen_by).fetch_optional(conn).await?)
}

/// An export by id alone, on the owner connection: a signed link carries no tenant, and its signature (checked
/// before this runs) is what grants access.
pub async fn find_for_link(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<ExportRow>, DomainError> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE e.id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
}

/// Whom an export runs as: its requester as they are now (role, email) and the tenant's time zone; `None` once
/// the requester was deactivated or removed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Runner {
    pub role: String,
    pub email: String,
    pub time_zone: String,
}

pub async fn runner(conn: &mut PgConnection, tenant: TenantId, user: Uuid) -> Result<Option<Runner>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT u.role, u.email, t.time_zone FROM users u JOIN tenants t ON t.id = u.tenant_id \
         WHERE u.tenant_id = $1 AND u.id = $2 AND u.is_active",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(conn)
    .await?)
}

#[derive(Debug, Default)]
pub struct ExportFilter {
    pub seen_by: Option<Uuid>,
    pub status: Option<String>,
    pub entity: Option<String>,
    pub created_by: Option<Uuid>,
}

/// The tenant's exports (only `seen_by`'s own when given), newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &ExportFilter,
    limit: i64,
    offset: i64,
    include_total: bool,
) -> Result<(Vec<ExportRow>, Option<i64>), DomainError> {
    let condition = "e.tenant_id = $1 AND ($2::uuid IS NULL OR e.created_by = $2) \
        AND ($3::text IS NULL OR e.entity = $3) AND ($4::uuid IS NULL OR e.created_by = $4)";
    let sql = format!(
        "SELECT * FROM (SELECT {COLUMNS} {FROM} WHERE {condition}) listed \
         WHERE ($5::text IS NULL OR listed.status = $5) ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
    );
    let items = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(filter.seen_by)
        .bind(&filter.entity)
        .bind(filter.created_by)
        .bind(&filter.status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let total = if include_total {
        let sql = format!(
            "SELECT count(*) FROM (SELECT {COLUMNS} {FROM} WHERE {condition}) listed \
             WHERE ($5::text IS NULL OR listed.status = $5)"
        );
        Some(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(filter.seen_by)
                .bind(&filter.entity)
                .bind(filter.created_by)
                .bind(&filter.status)
                .fetch_one(conn)
                .await?,
        )
    } else {
        None
    };
    Ok((items, total))
}

/// The job has started the export (each attempt starts it again, from the first row).
pub async fn mark_running(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE exports SET status = 'running', started_at = COALESCE(started_at, now()), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'running')",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct FinishedFile<'a> {
    pub storage_key: &'a str,
    pub row_count: i64,
    pub file_size: i64,
    pub expires_at: DateTime<Utc>,
}

/// Names the finished file: from this commit on the export can be downloaded.
pub async fn complete(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    file: FinishedFile<'_>,
) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE exports SET status = 'completed', storage_key = $3, row_count = $4, file_size = $5, expires_at = $6, \
             error = NULL, finished_at = now(), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(file.storage_key)
    .bind(file.row_count)
    .bind(file.file_size)
    .bind(file.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the export without a file (`failed` or `cancelled`).
pub async fn end_without_file(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    status: &str,
    error: Option<&str>,
) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE exports SET status = $3, error = $4, finished_at = now(), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'running')",
    )
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Completed exports past their expiry, all tenants (the sweep runs as the owner): id and file.
pub async fn expired(pool: &sqlx::PgPool, limit: i64) -> Result<Vec<(Uuid, Option<String>)>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT id, storage_key FROM exports WHERE status = 'completed' AND expires_at < now() \
         ORDER BY expires_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn mark_expired(pool: &sqlx::PgPool, id: Uuid) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE exports SET status = 'expired', storage_key = NULL, updated_at = now() \
         WHERE id = $1 AND status = 'completed'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The statement that streams an export: the list's query with `columns` selected (and the joins they need).
pub fn rows_query(
    table: &RecordTable,
    tenant: TenantId,
    viewer: &Viewer,
    query: &ListQuery,
    columns: &[&ExportColumn],
) -> QueryBuilder<Postgres> {
    let select = columns.iter().map(|column| column.sql).collect::<Vec<_>>().join(", ");
    let mut joins: Vec<&str> = Vec::new();
    for join in columns.iter().filter_map(|column| column.join) {
        if !joins.contains(&join.0) {
            joins.push(join.0);
        }
    }
    records::export_query(table, tenant, viewer, query, &select, &joins)
}

/// One streamed row as cells, by the columns' kinds.
pub fn decode_row(row: &PgRow, columns: &[&ExportColumn]) -> Result<Vec<Cell>, DomainError> {
    let mut cells = Vec::with_capacity(columns.len());
    for (index, column) in columns.iter().enumerate() {
        let cell = match column.kind {
            ColumnKind::Text => row.try_get::<Option<String>, _>(index)?.map(Cell::Text),
            ColumnKind::Timestamp => row.try_get::<Option<DateTime<Utc>>, _>(index)?.map(Cell::Timestamp),
            ColumnKind::Date => row.try_get::<Option<NaiveDate>, _>(index)?.map(Cell::Date),
            ColumnKind::Money => row.try_get::<Option<Decimal>, _>(index)?.map(Cell::Money),
        };
        cells.push(cell.unwrap_or(Cell::Empty));
    }
    Ok(cells)
}

/// Marks an export as made for a schedule run (its end emails the recipient instead of the usual notice).
pub async fn link_schedule_run(
    conn: &mut PgConnection,
    tenant: TenantId,
    export_id: Uuid,
    run_id: Uuid,
) -> Result<(), DomainError> {
    sqlx::query("UPDATE exports SET schedule_run_id = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(export_id)
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The schedule run an export was made for: the run's id, the schedule's name and its `send_if_data`.
pub async fn schedule_run_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    export_id: Uuid,
) -> Result<Option<(Uuid, String, bool)>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT r.id, s.name, s.send_if_data FROM exports e \
         JOIN schedule_runs r ON r.tenant_id = e.tenant_id AND r.id = e.schedule_run_id \
         JOIN schedules s ON s.tenant_id = r.tenant_id AND s.id = r.schedule_id \
         WHERE e.tenant_id = $1 AND e.id = $2",
    )
    .bind(tenant)
    .bind(export_id)
    .fetch_optional(conn)
    .await?)
}

/// Whether a schedule run already made its export for `recipient` (a retried run makes none twice).
pub async fn exists_for_run(
    conn: &mut PgConnection,
    tenant: TenantId,
    run_id: Uuid,
    recipient: UserId,
) -> Result<bool, DomainError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM exports WHERE tenant_id = $1 AND schedule_run_id = $2 AND created_by = $3)",
    )
    .bind(tenant)
    .bind(run_id)
    .bind(recipient)
    .fetch_one(conn)
    .await?)
}
