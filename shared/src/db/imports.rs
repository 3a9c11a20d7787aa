//! The `imports` and `import_errors` tables: what the API shows, and the import job's bookkeeping. An import's
//! shown status also reflects its job: an import whose job died or was cancelled before it ran shows that,
//! even though no worker was there to write it.

use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ImportView {
    pub id: Uuid,
    /// `leads`, `clients` or `projects`.
    pub entity: String,
    /// The name cleaned for display: no path, control or direction-override characters, no markup.
    pub file_name: String,
    /// The name as uploaded, with anything a display could misread escaped as `\u{…}`; null when it was clean.
    pub original_file_name: Option<String>,
    pub file_size: i64,
    /// `csv` or `xlsx`.
    pub file_format: String,
    /// `create`, `upsert` or `skip`.
    pub mode: String,
    pub dry_run: bool,
    /// `queued running completed completed_with_errors failed cancelled`.
    pub status: String,
    /// Data rows in the file (known once the file has been read).
    pub total_rows: Option<i64>,
    pub processed_rows: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    /// Rows that failed and are not yet resolved.
    pub failed: i64,
    /// 1 for the first run; each retry of the failed rows is the next attempt.
    pub attempt: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the import failed as a whole (the file could not be read, no column for a required field ...).
    pub error: Option<String>,
    /// The job running the current attempt (`GET /api/v1/jobs/{id}` shows its progress and attempts).
    pub job_id: Option<Uuid>,
    /// The file's columns, in order, as stored in each error's `row_data`.
    #[schema(value_type = Option<Vec<String>>)]
    pub header: Option<Value>,
    /// Columns no field reads.
    #[schema(value_type = Option<Vec<String>>)]
    pub unmapped_columns: Option<Value>,
    /// What was detected while reading: encoding and delimiter.
    #[schema(value_type = Option<Object>)]
    pub detected: Option<Value>,
}

const VIEW_COLUMNS: &str = "i.id, i.entity, i.file_name, i.original_file_name, i.file_size, i.file_format, i.mode, i.dry_run, \
    CASE WHEN i.status IN ('queued', 'running') AND j.status IN ('failed', 'dead') THEN 'failed' \
         WHEN i.status IN ('queued', 'running') AND j.status = 'cancelled' THEN 'cancelled' \
         ELSE i.status END AS status, \
    i.total_rows, i.processed_rows, i.created, i.updated, i.skipped, i.failed, i.attempt, i.created_by, i.created_at, \
    i.started_at, CASE WHEN i.status IN ('queued', 'running') THEN j.finished_at ELSE i.finished_at END AS finished_at, \
    CASE WHEN i.status IN ('queued', 'running') AND j.status IN ('failed', 'dead') THEN j.error ELSE i.error END AS error, \
    i.job_id, i.header, i.unmapped_columns, i.detected";

pub struct NewImport<'a> {
    pub id: Uuid,
    pub job_id: Uuid,
    pub entity: &'a str,
    pub file_name: &'a str,
    pub original_file_name: Option<&'a str>,
    pub file_size: i64,
    pub file_format: &'a str,
    pub storage_key: &'a str,
    pub mode: &'a str,
    pub dry_run: bool,
    pub mapping: Option<Value>,
    pub created_by: UserId,
}

pub async fn insert(conn: &mut PgConnection, tenant: TenantId, import: &NewImport<'_>) -> Result<(), DomainError> {
    sqlx::query(
        "INSERT INTO imports (id, tenant_id, job_id, entity, file_name, file_size, file_format, storage_key, mode, \
             dry_run, mapping, created_by, original_file_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(import.id)
    .bind(tenant)
    .bind(import.job_id)
    .bind(import.entity)
    .bind(import.file_name)
    .bind(import.file_size)
    .bind(import.file_format)
    .bind(import.storage_key)
    .bind(import.mode)
    .bind(import.dry_run)
    .bind(&import.mapping)
    .bind(import.created_by)
    .bind(import.original_file_name)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<Option<ImportView>, DomainError> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM imports i LEFT JOIN jobs j ON j.tenant_id = i.tenant_id AND j.id = i.job_id \
         WHERE i.tenant_id = $1 AND i.id = $2"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(conn).await?)
}

/// The tenant's imports (or only those `created_by` started), newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    created_by: Option<Uuid>,
    limit: i64,
    offset: i64,
    include_total: bool,
) -> Result<(Vec<ImportView>, Option<i64>), DomainError> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM imports i LEFT JOIN jobs j ON j.tenant_id = i.tenant_id AND j.id = i.job_id \
         WHERE i.tenant_id = $1 AND ($4::uuid IS NULL OR i.created_by = $4) \
         ORDER BY i.created_at DESC, i.id DESC LIMIT $2 OFFSET $3"
    );
    let items = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(limit)
        .bind(offset)
        .bind(created_by)
        .fetch_all(&mut *conn)
        .await?;
    let total = if include_total {
        Some(
            sqlx::query_scalar(
                "SELECT count(*) FROM imports WHERE tenant_id = $1 AND ($2::uuid IS NULL OR created_by = $2)",
            )
            .bind(tenant)
            .bind(created_by)
            .fetch_one(conn)
            .await?,
        )
    } else {
        None
    };
    Ok((items, total))
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ImportErrorView {
    pub id: Uuid,
    pub import_id: Uuid,
    /// The row as a spreadsheet program shows the file: the header is row 1 and each record one row, however
    /// many line breaks its quoted cells hold (blank lines are rows too), so the same data as CSV or XLSX gives
    /// the same row numbers.
    pub row_number: i64,
    /// The line of a CSV file on which the record starts, for text editors; `null` for XLSX.
    pub line_number: Option<i64>,
    /// `validation duplicate reference_not_found database_error`.
    pub error_type: String,
    pub code: String,
    pub field: Option<String>,
    pub message: String,
    /// The row as it was in the file: `{"column": "value"}`.
    #[schema(value_type = Object)]
    pub row_data: Value,
    /// Corrections to apply on retry: `{"column or field": "value"}`.
    #[schema(value_type = Option<Object>)]
    pub corrected_data: Option<Value>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The attempt that last tried this row.
    pub attempt: i32,
}

const ERROR_COLUMNS: &str = "id, import_id, row_number, line_number, error_type, code, field, message, row_data, \
    corrected_data, resolved_at, attempt";

#[derive(Debug, Clone, Default)]
pub struct ErrorFilter {
    /// Only rows after this row number (keyset paging of errors.csv); 0 for all.
    pub after_row: i64,
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub resolved: Option<bool>,
}

pub async fn list_errors(
    conn: &mut PgConnection,
    tenant: TenantId,
    import_id: Uuid,
    filter: &ErrorFilter,
    limit: i64,
    offset: i64,
    include_total: bool,
) -> Result<(Vec<ImportErrorView>, Option<i64>), DomainError> {
    let condition = "tenant_id = $1 AND import_id = $2 AND ($3::text IS NULL OR error_type = $3) \
        AND ($4::text IS NULL OR code = $4) AND ($5::boolean IS NULL OR (resolved_at IS NOT NULL) = $5)";
    let sql = format!(
        "SELECT {ERROR_COLUMNS} FROM import_errors WHERE {condition} AND row_number > $6 \
         ORDER BY row_number LIMIT $7 OFFSET $8"
    );
    let items = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(import_id)
        .bind(&filter.error_type)
        .bind(&filter.code)
        .bind(filter.resolved)
        .bind(filter.after_row)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let total = if include_total {
        let sql = format!("SELECT count(*) FROM import_errors WHERE {condition}");
        Some(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(import_id)
                .bind(&filter.error_type)
                .bind(&filter.code)
                .bind(filter.resolved)
                .fetch_one(conn)
                .await?,
        )
    } else {
        None
    };
    Ok((items, total))
}

pub async fn get_error(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<ImportErrorView>, DomainError> {
    let sql = format!("SELECT {ERROR_COLUMNS} FROM import_errors WHERE tenant_id = $1 AND id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(conn).await?)
}

/// Sets an error's corrections and/or marks it resolved by hand (`resolved: false` reopens it). The import's
/// `failed` count follows.
pub async fn update_error(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    corrected_data: Option<&Value>,
    resolved: Option<bool>,
) -> Result<Option<ImportErrorView>, DomainError> {
    let sql = format!(
        "WITH before AS (SELECT id, resolved_at IS NOT NULL AS was_resolved FROM import_errors \
                         WHERE tenant_id = $1 AND id = $2 FOR UPDATE), \
              changed AS (UPDATE import_errors e SET corrected_data = COALESCE($3, e.corrected_data), \
                             resolved_at = CASE WHEN $4::boolean IS NULL THEN e.resolved_at \
                                                WHEN $4 THEN COALESCE(e.resolved_at, now()) ELSE NULL END, \
                             updated_at = now() \
                          FROM before WHERE e.id = before.id \
                          RETURNING e.*, before.was_resolved), \
              counted AS (UPDATE imports i SET failed = i.failed + \
                             CASE WHEN c.was_resolved AND c.resolved_at IS NULL THEN 1 \
                                  WHEN NOT c.was_resolved AND c.resolved_at IS NOT NULL THEN -1 ELSE 0 END, \
                             updated_at = now() \
                          FROM changed c WHERE i.tenant_id = $1 AND i.id = c.import_id) \
         SELECT {ERROR_COLUMNS} FROM changed"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(corrected_data)
        .bind(resolved)
        .fetch_optional(conn)
        .await?)
}

/// Queues the next attempt of an import: only its unresolved failed rows run again.
pub async fn start_retry(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    job_id: Uuid,
) -> Result<Option<i32>, DomainError> {
    Ok(sqlx::query_scalar(
        "UPDATE imports SET attempt = attempt + 1, job_id = $3, status = 'queued', checkpoint_row = 0, \
             finished_at = NULL, error = NULL, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING attempt",
    )
    .bind(tenant)
    .bind(id)
    .bind(job_id)
    .fetch_optional(conn)
    .await?)
}

/// Unresolved errors (what a retry would run).
pub async fn unresolved_count(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<i64, DomainError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM import_errors WHERE tenant_id = $1 AND import_id = $2 AND resolved_at IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(conn)
    .await?)
}

/// Marks a queued or running import cancelled (its job was cancelled).
pub async fn mark_cancelled(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE imports SET status = 'cancelled', finished_at = now(), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'running')",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

// ------------------------------------------------------------------ the import job's side

/// What the job needs to run an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRun {
    pub id: Uuid,
    pub entity: String,
    pub file_format: String,
    pub storage_key: String,
    pub mode: String,
    pub dry_run: bool,
    pub mapping: Option<Value>,
    pub status: String,
    pub attempt: i32,
    pub checkpoint_row: i64,
    pub total_rows: Option<i64>,
    pub header: Option<Value>,
    pub created_by: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub default_region: String,
    pub time_zone: String,
}

pub async fn load_run(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<Option<ImportRun>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT i.id, i.entity, i.file_format, i.storage_key, i.mode, i.dry_run, i.mapping, i.status, i.attempt, \
                i.checkpoint_row, i.total_rows, i.header, i.created_by, i.job_id, t.default_region, t.time_zone \
         FROM imports i JOIN tenants t ON t.id = i.tenant_id WHERE i.tenant_id = $1 AND i.id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

pub async fn mark_running(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE imports SET status = 'running', started_at = COALESCE(started_at, now()), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what reading the file found before any row is written.
pub async fn record_shape(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    total_rows: i64,
    header: &Value,
    unmapped: &Value,
    detected: &Value,
) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE imports SET total_rows = $3, header = $4, unmapped_columns = $5, detected = $6, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(total_rows)
    .bind(header)
    .bind(unmapped)
    .bind(detected)
    .execute(conn)
    .await?;
    Ok(())
}

/// A batch's effect on the import's counts; written in the batch's own transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    /// Change of the unresolved failures: new failures minus rows a retry resolved.
    pub failed: i64,
}

pub async fn record_batch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    checkpoint_row: i64,
    counts: BatchCounts,
    counts_file_rows: bool,
) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE imports SET checkpoint_row = $3, processed_rows = processed_rows + $4, created = created + $5, \
             updated = updated + $6, skipped = skipped + $7, failed = failed + $8, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(checkpoint_row)
    .bind(if counts_file_rows { counts.processed } else { 0 })
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.skipped)
    .bind(counts.failed)
    .execute(conn)
    .await?;
    Ok(())
}

/// One failed row, as `import_errors` keeps it.
#[derive(Debug, Clone)]
pub struct RowError {
    pub row_number: i64,
    /// `None` for XLSX rows, and for rows a retry runs again (the stored error keeps its line).
    pub line_number: Option<i64>,
    pub error_type: &'static str,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
    pub row_data: Value,
}

/// Records failed rows. A row that failed before (a retry) keeps its error row, its data, line and corrections;
/// only the verdict and attempt change.
pub async fn record_errors(
    conn: &mut PgConnection,
    tenant: TenantId,
    import_id: Uuid,
    attempt: i32,
    errors: &[RowError],
) -> Result<(), DomainError> {
    if errors.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = errors.iter().map(|_| new_id()).collect();
    let rows: Vec<i64> = errors.iter().map(|e| e.row_number).collect();
    let lines: Vec<Option<i64>> = errors.iter().map(|e| e.line_number).collect();
    let types: Vec<&str> = errors.iter().map(|e| e.error_type).collect();
    let codes: Vec<&str> = errors.iter().map(|e| e.code).collect();
    let fields: Vec<Option<String>> = errors.iter().map(|e| e.field.clone()).collect();
    let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
    let data: Vec<Value> = errors.iter().map(|e| e.row_data.clone()).collect();
    sqlx::query(
        "INSERT INTO import_errors (id, tenant_id, import_id, attempt, row_number, line_number, error_type, code, field, \
             message, row_data) \
         SELECT id, $1, $2, $3, row_number, line_number, error_type, code, field, message, row_data \
         FROM UNNEST($4::uuid[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[]) \
              AS e(id, row_number, line_number, error_type, code, field, message, row_data) \
         ON CONFLICT (import_id, row_number) DO UPDATE SET attempt = EXCLUDED.attempt, error_type = EXCLUDED.error_type, \
             code = EXCLUDED.code, field = EXCLUDED.field, message = EXCLUDED.message, resolved_at = NULL, updated_at = now()",
    )
    .bind(tenant)
    .bind(import_id)
    .bind(attempt)
    .bind(&ids)
    .bind(&rows)
    .bind(&lines)
    .bind(&types)
    .bind(&codes)
    .bind(&fields)
    .bind(&messages)
    .bind(&data)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the errors of rows a retry got through as resolved; returns how many.
pub async fn resolve_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    import_id: Uuid,
    rows: &[i64],
) -> Result<i64, DomainError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE import_errors SET resolved_at = now(), updated_at = now() \
         WHERE tenant_id = $1 AND import_id = $2 AND row_number = ANY($3) AND resolved_at IS NULL",
    )
    .bind(tenant)
    .bind(import_id)
    .bind(rows)
    .execute(conn)
    .await?;
    Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
}

/// A retry's rows: unresolved errors after `after_row`, in file order.
pub async fn retry_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    import_id: Uuid,
    after_row: i64,
    limit: i64,
) -> Result<Vec<(i64, Value, Option<Value>)>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT row_number, row_data, corrected_data FROM import_errors \
         WHERE tenant_id = $1 AND import_id = $2 AND resolved_at IS NULL AND row_number > $3 \
         ORDER BY row_number LIMIT $4",
    )
    .bind(tenant)
    .bind(import_id)
    .bind(after_row)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Ends an attempt: `completed`, `completed_with_errors`, `failed` (with the reason) or `cancelled`.
pub async fn finish(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    status: &str,
    error: Option<&str>,
) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE imports SET status = CASE WHEN $3 = 'completed' AND failed > 0 THEN 'completed_with_errors' ELSE $3 END, \
             error = $4, finished_at = now(), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Import uploads whose import ended more than `days` ago and whose file is still kept: id, file.
pub async fn stale_import_files(
    pool: &sqlx::PgPool,
    days: i64,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT id, storage_key FROM imports WHERE finished_at < now() - make_interval(days => $1::int) \
         AND file_deleted_at IS NULL ORDER BY finished_at LIMIT $2",
    )
    .bind(days)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn mark_import_file_deleted(pool: &sqlx::PgPool, id: Uuid) -> Result<(), DomainError> {
    sqlx::query("UPDATE imports SET file_deleted_at = now() WHERE id = $1").bind(id).execute(pool).await?;
    Ok(())
}
