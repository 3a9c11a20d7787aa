//! The import job (contract §6). One attempt of an import runs as:
//!
//! 1. a blocking thread reads the file (CSV or XLSX, `crm_shared::imports::reader`), validates each row with the
//!    shared normalisers, marks repeats of a key within the file, and sends batches of `BATCH_ROWS` over a
//!    channel of two, so reading, validating and writing overlap and memory stays bounded;
//! 2. for each batch the job resolves owners and clients, finds duplicates against the tenant's records, and in
//!    ONE transaction copies the rows to write into a staging table, inserts (or updates) them with one
//!    statement each, records the failed rows in `import_errors`, and moves the import's checkpoint and counts.
//!
//! A batch and its checkpoint commit together, so a worker killed at any moment leaves the import at a batch
//! boundary: the next run skips the rows up to the checkpoint (replaying only their duplicate keys) and no row
//! is written twice or lost. A retry (attempt 2+) runs the same steps over the unresolved error rows, with
//! their corrections, instead of the file.

mod batch;
mod stored_rows;

use crate::runtime::{JobContext, JobError};
use batch::BatchWriter;
use crm_shared::db;
use crm_shared::db::imports::{self as repo, ImportRun};
use crm_shared::domain::records::TenantLocale;
use crm_shared::domain::validation::{ErrorCode, parse_time_zone};
use crm_shared::imports::headers::{ImportEntity, map_columns};
use crm_shared::imports::reader::{self, FileError, FileFormat, Header, SourceRow};
use crm_shared::imports::rows::{DuplicateTracker, ErrorType, Problem, RowValidator, ValidRow};
use crm_shared::{DomainError, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::ops::ControlFlow;
use stored_rows::merged_row;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Rows per batch (and per transaction).
pub const BATCH_ROWS: usize = 5_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportPayload {
    pub import_id: Uuid,
    pub attempt: i32,
}

/// A row on its way to the database.
struct PreparedRow {
    index: u64,
    row_number: u64,
    line_number: Option<u64>,
    cells: Vec<String>,
    verdict: Result<ValidRow, Vec<Problem>>,
}

enum Message {
    Shape { header: Header, total_rows: u64, unmapped: Vec<String>, detected: Value },
    Batch(Vec<PreparedRow>),
}

pub async fn run(context: &JobContext) -> Result<Option<Value>, JobError> {
    let job = &context.job;
    let payload: ImportPayload = serde_json::from_value(job.payload.clone())
        .map_err(|error| JobError::Permanent(format!("bad import payload: {error}")))?;
    let tenant = TenantId(job.tenant_id);
    let pool = &context.runtime.pool;
    let import = {
        let mut tx = db::begin_tenant(pool, tenant).await?;
        let import = repo::load_run(&mut tx, tenant, payload.import_id).await?;
        tx.commit().await.map_err(DomainError::from)?;
        import.ok_or_else(|| JobError::Permanent("the import no longer exists".into()))?
    };
    if import.attempt != payload.attempt || import.job_id != Some(job.id) {
        return Ok(Some(json!({ "skipped": "a later attempt of this import replaced this job" })));
    }
    if !matches!(import.status.as_str(), "queued" | "running") {
        // Finished in an earlier run whose job end was not recorded.
        return Ok(Some(json!({ "import_status": import.status })));
    }
    // Waits for a slot; a cancellation asked for meanwhile is honoured before any work.
    let _slot = context
        .runtime
        .import_slots
        .acquire()
        .await
        .map_err(|_| JobError::Transient("the worker is stopping".into()))?;
    match context.checkpoint() {
        Err(JobError::Cancelled) => {
            let mut tx = context.begin().await?;
            repo::mark_cancelled(&mut tx, tenant, import.id).await?;
            context.commit(tx, None).await?;
            return Err(JobError::Cancelled);
        }
        Err(other) => return Err(other),
        Ok(()) => {}
    }
    let mut tx = context.begin().await?;
    repo::mark_running(&mut tx, tenant, import.id).await?;
    context.commit(tx, None).await?;

    let outcome = if import.attempt == 1 {
        run_file(context, tenant, &import).await
    } else {
        run_retry(context, tenant, &import).await
    };
    // The import's end commits only while this run still holds the job: a run that lost it ends silently.
    let view = match &outcome {
        // Left running: the job is retried and resumes at the checkpoint. A fenced run writes nothing more.
        Err(JobError::Transient(_) | JobError::Fenced) => None,
        ended => {
            let mut tx = context.begin().await?;
            match ended {
                Ok(()) => repo::finish(&mut tx, tenant, import.id, "completed", None).await?,
                Err(JobError::Permanent(reason)) => {
                    repo::finish(&mut tx, tenant, import.id, "failed", Some(reason)).await?
                }
                _ => repo::mark_cancelled(&mut tx, tenant, import.id).await?,
            }
            let ended_view = repo::get(&mut tx, tenant, import.id).await?;
            if let Some(view) = &ended_view {
                // In the import's own closing transaction: the email exists exactly when the end does.
                crate::notify::import_ended(&mut tx, tenant, view, &context.runtime.public_url).await?;
            }
            let view = if ended.is_ok() { ended_view } else { None };
            context.commit(tx, None).await?;
            view
        }
    };
    outcome?;
    Ok(view.map(|view| {
        json!({ "import_id": view.id, "status": view.status, "created": view.created, "updated": view.updated,
                "skipped": view.skipped, "failed": view.failed })
    }))
}

fn locale_of(import: &ImportRun) -> TenantLocale {
    TenantLocale {
        default_region: import.default_region.clone(),
        time_zone: parse_time_zone(&import.time_zone).unwrap_or(chrono_tz::UTC),
    }
}

fn entity_of(import: &ImportRun) -> Result<ImportEntity, JobError> {
    ImportEntity::parse(&import.entity).ok_or_else(|| JobError::Permanent(format!("unknown entity {}", import.entity)))
}

fn mapping_of(import: &ImportRun) -> Option<HashMap<String, String>> {
    import.mapping.as_ref().and_then(|mapping| serde_json::from_value(mapping.clone()).ok())
}

/// Validates rows and marks in-file repeats; rows up to `skip_through` were written by an earlier run and only
/// replay their keys.
struct Preparer {
    validator: RowValidator,
    tracker: DuplicateTracker,
    skip_through: u64,
}

impl Preparer {
    fn prepare(&mut self, row: SourceRow) -> Option<PreparedRow> {
        let key = self.validator.duplicate_key(&row);
        let first = key.as_deref().and_then(|key| self.tracker.claim(key, row.row_number));
        if row.index <= self.skip_through {
            return None;
        }
        let mut verdict = self.validator.validate(&row);
        if let Some(first) = first {
            let field = match self.validator.entity() {
                ImportEntity::Projects => "name",
                _ => "email",
            };
            let problem = Problem::new(
                ErrorType::Duplicate,
                ErrorCode::DuplicateInFile,
                Some(field),
                format!(
                    "the same {} is already in row {first} of this file",
                    if field == "name" { "client and project name" } else { "email" }
                ),
            );
            match &mut verdict {
                Ok(_) => verdict = Err(vec![problem]),
                Err(problems) => problems.push(problem),
            }
        }
        Some(PreparedRow {
            index: row.index,
            row_number: row.row_number,
            line_number: row.line_number,
            cells: row.cells,
            verdict,
        })
    }
}

async fn run_file(context: &JobContext, tenant: TenantId, import: &ImportRun) -> Result<(), JobError> {
    let entity = entity_of(import)?;
    let format = FileFormat::parse(&import.file_format)
        .ok_or_else(|| JobError::Permanent(format!("unknown file format {}", import.file_format)))?;
    let file = match context.runtime.storage.local_copy(&import.storage_key).await {
        Ok(file) => file,
        Err(DomainError::NotFound(_)) => {
            return Err(JobError::Permanent("the uploaded file is no longer in storage; upload it again".into()));
        }
        Err(other) => return Err(other.into()),
    };
    let path = file.path.clone();
    let mapping = mapping_of(import);
    let locale = locale_of(import);
    let skip_through = u64::try_from(import.checkpoint_row).unwrap_or(0);
    let (sender, mut receiver) = mpsc::channel::<Message>(2);
    let reading = tokio::task::spawn_blocking(move || -> Result<(), FileError> {
        // The counting pass checks every limit and gives the progress total before a row is written.
        let (header, summary) = reader::count_rows(&path, format)?;
        let columns = map_columns(entity, &header.names, mapping.as_ref()).map_err(FileError)?;
        let detected = match (summary.encoding, summary.delimiter) {
            (Some(encoding), Some(delimiter)) => json!({ "format": format.as_str(), "encoding": encoding.name(),
                                                         "delimiter": (delimiter as char).to_string() }),
            _ => json!({ "format": format.as_str() }),
        };
        let shape = Message::Shape {
            header: header.clone(),
            total_rows: summary.data_rows,
            unmapped: columns.unmapped.clone(),
            detected,
        };
        if sender.blocking_send(shape).is_err() {
            return Ok(());
        }
        let mut preparer = Preparer {
            validator: RowValidator::new(entity, columns, header.names, locale),
            tracker: DuplicateTracker::default(),
            skip_through,
        };
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut consumer_gone = false;
        reader::read_file(
            &path,
            format,
            |_| Ok(()),
            |row| {
                if let Some(prepared) = preparer.prepare(row) {
                    batch.push(prepared);
                }
                if batch.len() >= BATCH_ROWS
                    && sender.blocking_send(Message::Batch(std::mem::take(&mut batch))).is_err()
                {
                    consumer_gone = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )?;
        if !batch.is_empty() && !consumer_gone {
            let _ = sender.blocking_send(Message::Batch(batch));
        }
        Ok(())
    });

    let mut writer = BatchWriter::new(context, tenant, import, entity).await?;
    let mut header_names: Vec<String> = Vec::new();
    let written = async {
        while let Some(message) = receiver.recv().await {
            match message {
                Message::Shape { header, total_rows, unmapped, detected } => {
                    let total = i64::try_from(total_rows).unwrap_or(i64::MAX);
                    writer.progress_total = total;
                    let mut tx = context.begin().await?;
                    repo::record_shape(
                        &mut tx,
                        tenant,
                        import.id,
                        total,
                        &json!(header.names),
                        &json!(unmapped),
                        &detected,
                    )
                    .await?;
                    context.commit(tx, Some((import.checkpoint_row, Some(total)))).await?;
                    header_names = header.names;
                }
                Message::Batch(rows) => {
                    context.checkpoint()?;
                    let last = rows.last().map(|row| row.index).unwrap_or_default();
                    let checkpoint = i64::try_from(last).unwrap_or(i64::MAX);
                    writer.write(&header_names, rows, checkpoint, checkpoint).await?;
                }
            }
        }
        Ok::<(), JobError>(())
    }
    .await;
    // Stops the reader if the writer gave up (its sends fail once the receiver is gone).
    drop(receiver);
    let read = reading.await;
    written?;
    match read {
        Ok(Ok(())) => Ok(()),
        Ok(Err(FileError(reason))) => Err(JobError::Permanent(reason)),
        Err(panic) => {
            tracing::error!(error = %panic, "the file reader failed");
            Err(JobError::Permanent("the file could not be read: the reader failed on its contents".into()))
        }
    }
}

/// Attempt 2+: the unresolved failed rows, with their corrections, in file order.
async fn run_retry(context: &JobContext, tenant: TenantId, import: &ImportRun) -> Result<(), JobError> {
    let entity = entity_of(import)?;
    let header: Vec<String> =
        import.header.as_ref().and_then(|header| serde_json::from_value(header.clone()).ok()).ok_or_else(|| {
            JobError::Permanent("the import never read its file's header; upload the file again".into())
        })?;
    let columns = map_columns(entity, &header, mapping_of(import).as_ref()).map_err(JobError::Permanent)?;
    // Corrections may name a field instead of a column.
    let field_columns: HashMap<String, usize> =
        columns.fields.iter().map(|(field, column)| ((*field).to_owned(), *column)).collect();
    let validator = RowValidator::new(entity, columns, header.clone(), locale_of(import));
    let mut preparer = Some(Preparer { validator, tracker: DuplicateTracker::default(), skip_through: 0 });
    let mut writer = BatchWriter::new(context, tenant, import, entity).await?;
    let pool = &context.runtime.pool;
    {
        let mut tx = db::begin_tenant(pool, tenant).await?;
        writer.progress_total = repo::unresolved_count(&mut tx, tenant, import.id).await?;
        tx.commit().await.map_err(DomainError::from)?;
    }
    let mut after_row = import.checkpoint_row;
    let mut done = 0i64;
    loop {
        context.checkpoint()?;
        let mut tx = db::begin_tenant(pool, tenant).await?;
        let rows = repo::retry_rows(&mut tx, tenant, import.id, after_row, BATCH_ROWS as i64).await?;
        tx.commit().await.map_err(DomainError::from)?;
        let Some(last) = rows.last().map(|row| row.0) else { break };
        let source: Vec<SourceRow> = rows
            .into_iter()
            .enumerate()
            .map(|(offset, (row_number, data, corrected))| {
                let (cells, malformed) = merged_row(&header, &data, corrected.as_ref(), &field_columns);
                SourceRow {
                    index: u64::try_from(done).unwrap_or(0) + offset as u64 + 1,
                    row_number: u64::try_from(row_number).unwrap_or(0),
                    // The stored error keeps its line: record_errors leaves it alone on conflict.
                    line_number: None,
                    cells,
                    malformed,
                }
            })
            .collect();
        let mut taken = preparer.take().ok_or_else(|| JobError::Permanent("retry state lost".into()))?;
        let (returned, prepared) = tokio::task::spawn_blocking(move || {
            let prepared: Vec<PreparedRow> = source.into_iter().filter_map(|row| taken.prepare(row)).collect();
            (taken, prepared)
        })
        .await
        .map_err(|error| JobError::Permanent(format!("validating the rows failed: {error}")))?;
        preparer = Some(returned);
        done += prepared.len() as i64;
        writer.write(&header, prepared, last, done).await?;
        after_row = last;
    }
    Ok(())
}
