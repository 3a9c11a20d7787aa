//! The export job (contract §7). One attempt:
//!
//! 1. loads the export and its requester as they are now (their role decides what they see: the list's own
//!    visibility), and marks the export running;
//! 2. in one read-only snapshot transaction, counts the rows (the progress total) and streams them with the
//!    list's own query (`db::exports::rows_query`), in batches over a channel of two to a blocking thread that
//!    writes the file (CSV, XLSX or PDF) to a local temporary file; progress is committed under the job's
//!    lease every batch, and cancellation and take-over are checked there;
//! 3. stores the finished file under a key of this attempt and, in one fenced transaction, names it on the
//!    export. Until that commit nothing can download it; a worker killed at any point leaves at most an
//!    unnamed file, and the next attempt starts from the first row.

use crate::notify;
use crate::runtime::{JobContext, JobError};
use crm_shared::db::exports::{self as repo, ExportRow, FinishedFile};
use crm_shared::db::records::{self, ListQuery, Viewer};
use crm_shared::domain::access::{self, Action};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::parse_time_zone;
use crm_shared::exports::{self, Cell, ExportFormat, Title, columns};
use crm_shared::{DomainError, TenantId, UserId, db};
use futures::TryStreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Rows per batch: per progress commit and per hand-over to the writer.
const BATCH_ROWS: usize = 5_000;

pub async fn run(context: &JobContext) -> Result<Option<Value>, JobError> {
    let job = &context.job;
    let export_id = context.payload_id("export_id")?;
    let tenant = TenantId(job.tenant_id);
    let pool = &context.runtime.pool;
    let (export, runner) = {
        let mut tx = db::begin_tenant(pool, tenant).await?;
        let export = repo::get(&mut tx, tenant, export_id, None).await?;
        let runner = match &export {
            Some(export) => repo::runner(&mut tx, tenant, export.created_by).await?,
            None => None,
        };
        tx.commit().await.map_err(DomainError::from)?;
        (export.ok_or_else(|| JobError::Permanent("the export no longer exists".into()))?, runner)
    };
    if !matches!(export.status.as_str(), "queued" | "running") {
        // Finished in an earlier run whose job end was not recorded.
        return Ok(Some(json!({ "export_status": export.status })));
    }
    let Some(runner) = runner else {
        return end(context, &export, "failed", "the export's requester was deactivated; ask an admin to run it").await;
    };
    let plan = Plan::of(&export, &runner)?;
    context.checkpoint()?;
    let mut tx = context.begin().await?;
    repo::mark_running(&mut tx, tenant, export.id).await?;
    context.commit(tx, None).await?;

    let directory = std::env::temp_dir().join("crm-exports");
    std::fs::create_dir_all(&directory)
        .map_err(|error| JobError::Transient(format!("temporary directory: {error}")))?;
    let local = directory.join(format!("{}-{}.{}", export.id, job.attempts, plan.format.as_str()));
    let written = write_file(context, &export, &plan, &runner, &local).await;
    let row_count = match written {
        Ok(rows) => rows,
        Err(error) => {
            let _ = std::fs::remove_file(&local);
            return Err(error);
        }
    };
    context.checkpoint()?;
    let key = format!("exports/{}/{}/{}-{}", tenant, export.id, job.attempts, export.file_name);
    let stored = context.runtime.storage.store_file(&key, &local).await;
    let _ = std::fs::remove_file(&local);
    let file_size = stored?;
    let expires_at = chrono::Utc::now()
        + chrono::Duration::from_std(context.runtime.export_ttl).unwrap_or(chrono::Duration::days(7));
    let file_size = i64::try_from(file_size).unwrap_or(i64::MAX);
    let mut tx = context.begin().await?;
    repo::complete(&mut tx, tenant, export.id, FinishedFile { storage_key: &key, row_count, file_size, expires_at })
        .await?;
    // The email commits with the export's end: it exists exactly when the file can be downloaded.
    let scheduled = repo::schedule_run_of(&mut tx, tenant, export.id)
        .await?
        .map(|(run_id, name, send_if_data)| notify::ScheduledExport { run_id, name, send_if_data });
    let link = crm_shared::signed_links::export_download_path(&context.runtime.jwt_secret, export.id, expires_at)
        .unwrap_or_default();
    let mail = notify::ExportMail {
        download_url: format!("{}{link}", context.runtime.public_url),
        storage_key: &key,
        file_size,
        row_count,
        expires_at,
    };
    notify::export_ready(&mut tx, tenant, &export, &mail, scheduled.as_ref()).await?;
    if let Err(error) = context.commit(tx, Some((row_count, Some(row_count)))).await {
        // Another run owns the export now; this file is nobody's.
        let _ = context.runtime.storage.delete(&key).await;
        return Err(error);
    }
    Ok(Some(json!({ "export_id": export.id, "rows": row_count, "bytes": file_size })))
}

/// What the export runs: its columns, its validated list query and its requester's visibility.
struct Plan {
    format: ExportFormat,
    table: &'static records::RecordTable,
    columns: Vec<&'static columns::ExportColumn>,
    query: ListQuery,
    viewer: Viewer,
}

impl Plan {
    fn of(export: &ExportRow, runner: &repo::Runner) -> Result<Plan, JobError> {
        let entity = exports::entity_by_name(&export.entity)
            .ok_or_else(|| JobError::Permanent(format!("unknown entity {}", export.entity)))?;
        let format = ExportFormat::parse(&export.format)
            .ok_or_else(|| JobError::Permanent(format!("unknown format {}", export.format)))?;
        let table = records::table_of(entity);
        let columns = columns::resolve(entity, &export.columns).map_err(JobError::Permanent)?;
        let query = ListQuery::from_stored(table, &export.query).map_err(JobError::Permanent)?;
        let role =
            Role::parse(&runner.role).ok_or_else(|| JobError::Permanent(format!("unknown role {}", runner.role)))?;
        // The requester's rights now, not when they asked: a demoted rep exports what they may see today.
        let scope = access::scope(role, entity, Action::Read).ok_or_else(|| {
            JobError::Permanent(format!("the {role} role may no longer read {}", exports::entity_name(entity)))
        })?;
        let viewer = Viewer { user_id: UserId(export.created_by), scope };
        Ok(Plan { format, table, columns, query, viewer })
    }
}

/// Streams the rows into `path`; returns how many were written.
async fn write_file(
    context: &JobContext,
    export: &ExportRow,
    plan: &Plan,
    runner: &repo::Runner,
    path: &std::path::Path,
) -> Result<i64, JobError> {
    let tenant = TenantId(context.job.tenant_id);
    let zone = parse_time_zone(&runner.time_zone).unwrap_or(chrono_tz::UTC);
    let mut read = db::begin_tenant_snapshot(&context.runtime.pool, tenant).await?;
    let total = records::count_matching(&mut read, tenant, plan.table, &plan.viewer, &plan.query).await?;
    let header: Vec<&'static str> = plan.columns.iter().map(|column| column.name).collect();
    let title = Title {
        heading: format!("{} export", exports::capitalised(&export.entity)),
        filters: describe_filters(export),
        made_for: runner.email.clone(),
        made_at: chrono::Utc::now(),
        row_count: total,
    };
    let (sender, mut receiver) = mpsc::channel::<Vec<Vec<Cell>>>(2);
    let (format, target) = (plan.format, path.to_owned());
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut file = exports::writer(format, &target, &header, zone, title)?;
        while let Some(batch) = receiver.blocking_recv() {
            for row in &batch {
                file.write_row(row)?;
            }
        }
        file.finish()
    });

    let mut query = repo::rows_query(plan.table, tenant, &plan.viewer, &plan.query, &plan.columns);
    let streamed = async {
        let mut rows = query.build().fetch(&mut *read);
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut done = 0i64;
        while let Some(row) = rows.try_next().await.map_err(DomainError::from)? {
            batch.push(repo::decode_row(&row, &plan.columns)?);
            if batch.len() == BATCH_ROWS {
                done += batch.len() as i64;
                if sender.send(std::mem::take(&mut batch)).await.is_err() {
                    break; // the writer stopped; its error is reported below
                }
                batch.reserve(BATCH_ROWS);
                progress(context, done, total).await?;
            }
        }
        if !batch.is_empty() {
            done += batch.len() as i64;
            let _ = sender.send(batch).await;
        }
        Ok::<i64, JobError>(done)
    }
    .await;
    drop(sender);
    let _ = read.rollback().await;
    let written = writer.await.map_err(|error| JobError::Transient(format!("the export writer stopped: {error}")))?;
    let done = streamed?;
    written.map_err(|error| JobError::Transient(format!("the export file could not be written: {error}")))?;
    Ok(done)
}

/// Commits progress under the job's lease and stops the run when it was cancelled or taken over.
async fn progress(context: &JobContext, done: i64, total: i64) -> Result<(), JobError> {
    context.checkpoint()?;
    let tx = context.begin().await?;
    context.commit(tx, Some((done, Some(total)))).await
}

async fn end(context: &JobContext, export: &ExportRow, status: &str, error: &str) -> Result<Option<Value>, JobError> {
    let mut tx = context.begin().await?;
    repo::end_without_file(&mut tx, TenantId(context.job.tenant_id), export.id, status, Some(error)).await?;
    context.commit(tx, None).await?;
    Err(JobError::Permanent(error.to_owned()))
}

/// The filters and sort as the requester gave them, for the PDF's title block.
fn describe_filters(export: &ExportRow) -> String {
    let mut parts: Vec<String> = export
        .filters
        .as_object()
        .map(|filters| {
            filters
                .iter()
                .map(|(name, value)| {
                    format!("{name}: {}", value.as_str().map_or_else(|| value.to_string(), str::to_owned))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(sort) = &export.sort {
        parts.push(format!("sorted by {sort}"));
    }
    if parts.is_empty() { "all records you can see".into() } else { parts.join(" · ") }
}
