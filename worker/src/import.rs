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

use crate::runtime::{JobContext, JobError};
use crm_shared::db;
use crm_shared::db::import_lookups::{self as lookups, ExistingRecord, Importer};
use crm_shared::db::imports::{self as repo, BatchCounts, ImportRun, RowError};
use crm_shared::domain::access::{Action, Entity};
use crm_shared::domain::records::TenantLocale;
use crm_shared::domain::validation::{ErrorCode, parse_time_zone};
use crm_shared::imports::headers::{ImportEntity, map_columns};
use crm_shared::imports::reader::{self, FileError, FileFormat, Header, SourceRow};
use crm_shared::imports::rows::{DuplicateTracker, ErrorType, Problem, RowValidator, ValidRow};
use crm_shared::{DomainError, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Rows per batch (and per transaction).
pub const BATCH_ROWS: usize = 5_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportPayload {
    pub import_id: Uuid,
    pub attempt: i32,
}

/// How the import job's rows map onto a table.
struct Target {
    table: &'static str,
    /// Per field of `ImportEntity::fields()`, in that order: the column and its SQL type.
    columns: &'static [(&'static str, &'static str)],
    default_status: &'static str,
}

fn target(entity: ImportEntity) -> Target {
    match entity {
        ImportEntity::Leads => Target {
            table: "leads",
            columns: &[
                ("first_name", "text"),
                ("last_name", "text"),
                ("email", "text"),
                ("phone", "text"),
                ("company", "text"),
                ("lead_source", "text"),
                ("status", "text"),
                ("notes", "text"),
                ("assigned_to_user_id", "uuid"),
                ("created_at", "timestamptz"),
                ("converted_at", "timestamptz"),
            ],
            default_status: "new",
        },
        ImportEntity::Clients => Target {
            table: "clients",
            columns: &[
                ("name", "text"),
                ("email", "text"),
                ("phone", "text"),
                ("status", "text"),
                ("industry", "text"),
                ("assigned_to_user_id", "uuid"),
                ("created_at", "timestamptz"),
            ],
            default_status: "new",
        },
        ImportEntity::Projects => Target {
            table: "projects",
            columns: &[
                ("client_id", "uuid"),
                ("name", "text"),
                ("status", "text"),
                ("value", "numeric"),
                ("start_date", "date"),
                ("close_date", "date"),
                ("assigned_to_user_id", "uuid"),
                ("created_at", "timestamptz"),
            ],
            default_status: "active",
        },
    }
}

/// A row on its way to the database.
struct PreparedRow {
    index: u64,
    row_number: u64,
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
            let view = if ended.is_ok() { repo::get(&mut tx, tenant, import.id).await? } else { None };
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
        Some(PreparedRow { index: row.index, row_number: row.row_number, cells: row.cells, verdict })
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

/// A stored row with its corrections applied; corrections may name a file column or a field. Cells beyond the
/// header (kept as "column N" for a malformed row) still make the row malformed unless corrected to blank.
fn merged_row(
    header: &[String],
    data: &Value,
    corrected: Option<&Value>,
    fields: &HashMap<String, usize>,
) -> (Vec<String>, Option<String>) {
    let cells = merged_cells(header, data, corrected, fields);
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    let extra = data.as_object().map_or(0, |object| {
        object
            .keys()
            .filter(|key| !header.contains(key))
            .filter(|key| {
                let correction = corrected.and_then(|c| c.get(key.as_str()));
                let value = if correction.is_some() { text(correction) } else { text(object.get(key.as_str())) };
                !value.is_empty()
            })
            .count()
    });
    let malformed = (extra > 0).then(|| {
        format!(
            "the row has {} fields but the header has {}; correct the extra cells to blank or fix the row",
            header.len() + extra,
            header.len()
        )
    });
    (cells, malformed)
}

/// The header's cells of a stored row, with corrections applied.
fn merged_cells(
    header: &[String],
    data: &Value,
    corrected: Option<&Value>,
    fields: &HashMap<String, usize>,
) -> Vec<String> {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut cells: Vec<String> = header.iter().map(|name| data.get(name).map(text).unwrap_or_default()).collect();
    if let Some(Value::Object(corrections)) = corrected {
        for (key, value) in corrections {
            let column = header.iter().position(|name| name == key).or_else(|| fields.get(key.as_str()).copied());
            if let Some(column) = column {
                cells[column] = text(value);
            }
        }
    }
    cells
}

/// A row as it was, for `import_errors.row_data`: `{"column": "value"}`; cells beyond the cell limit are cut.
fn row_data(header: &[String], cells: &[String]) -> Value {
    let mut object = Map::with_capacity(header.len());
    let extra_names: Vec<String> = (header.len()..cells.len()).map(|column| format!("column {}", column + 1)).collect();
    for (name, cell) in header.iter().chain(extra_names.iter()).zip(cells) {
        let value = if cell.chars().count() > reader::MAX_CELL_CHARS {
            cell.chars().take(reader::MAX_CELL_CHARS).collect()
        } else {
            cell.clone()
        };
        object.insert(name.clone(), Value::String(value));
    }
    Value::Object(object)
}

fn row_error(header: &[String], row_number: u64, cells: &[String], problems: &[Problem]) -> RowError {
    let first = &problems[0];
    let message = if problems.len() == 1 {
        first.message.clone()
    } else {
        problems.iter().map(|problem| problem.message.as_str()).collect::<Vec<_>>().join("; ")
    };
    RowError {
        row_number: i64::try_from(row_number).unwrap_or(i64::MAX),
        error_type: first.error_type.as_str(),
        code: first.code.as_str(),
        field: first.field.clone(),
        message,
        row_data: row_data(header, cells),
    }
}

/// What happens to a valid row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Insert,
    Update(Uuid),
}

struct Candidate {
    row_number: u64,
    cells: Vec<String>,
    values: Vec<Option<String>>,
    operation: Operation,
    id: Uuid,
}

/// Writes batches for one attempt.
struct BatchWriter<'a> {
    context: &'a JobContext,
    tenant: TenantId,
    import: &'a ImportRun,
    entity: ImportEntity,
    target: Target,
    /// Active users of the tenant by lowercased email.
    users: HashMap<String, Uuid>,
    /// Who the import runs for: matches they may not change are not changed, clients they cannot see are not
    /// found.
    importer: Importer,
    progress_total: i64,
}

impl<'a> BatchWriter<'a> {
    async fn new(
        context: &'a JobContext,
        tenant: TenantId,
        import: &'a ImportRun,
        entity: ImportEntity,
    ) -> Result<Self, JobError> {
        let mut tx = db::begin_tenant(&context.runtime.pool, tenant).await?;
        let users = lookups::active_users(&mut tx, tenant).await?;
        let importer = match import.created_by {
            Some(user) => lookups::importer(&mut tx, tenant, user).await?,
            None => None,
        };
        tx.commit().await.map_err(DomainError::from)?;
        let importer = importer.ok_or_else(|| {
            JobError::Permanent("the user who started this import no longer exists or was deactivated".into())
        })?;
        Ok(Self {
            context,
            tenant,
            import,
            entity,
            target: target(entity),
            users: users.into_iter().collect(),
            importer,
            progress_total: 0,
        })
    }

    fn position(&self, field: &str) -> Option<usize> {
        self.entity.fields().iter().position(|candidate| *candidate == field)
    }

    /// Resolves, classifies and writes one batch, with its errors, counts and checkpoint, in one transaction.
    async fn write(
        &mut self,
        header: &[String],
        rows: Vec<PreparedRow>,
        checkpoint: i64,
        progress_done: i64,
    ) -> Result<(), JobError> {
        let retry = self.import.attempt > 1;
        let processed = rows.len() as i64;
        let mut errors: Vec<RowError> = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        for row in rows {
            match row.verdict {
                Err(problems) => errors.push(row_error(header, row.row_number, &row.cells, &problems)),
                Ok(valid) => candidates.push(Candidate {
                    row_number: row.row_number,
                    cells: row.cells,
                    values: valid.values,
                    operation: Operation::Insert,
                    id: crm_shared::ids::new_id(),
                }),
            }
        }
        let mut tx = self.context.begin().await?;

        // References: owners by email (users are few and loaded once), a project's client by email or name.
        let mut failed_here: Vec<(Candidate, Problem)> = Vec::new();
        self.resolve_owners(&mut candidates, &mut failed_here);
        if self.entity == ImportEntity::Projects {
            self.resolve_clients(&mut tx, &mut candidates, &mut failed_here).await?;
        }
        // Duplicates against the tenant's records. Inserting leads and clients needs no lookup: the unique
        // email index refuses a duplicate (ON CONFLICT DO NOTHING), at the cost of the probe the insert makes
        // anyway. Upserts need the matched record, dry runs write nothing, and projects have no unique key.
        let mode = self.import.mode.as_str();
        let lookup = self.import.dry_run || mode == "upsert" || self.entity == ImportEntity::Projects;
        let existing = if lookup { self.existing(&mut tx, &candidates).await? } else { HashMap::new() };
        let mut skipped = 0i64;
        let mut keep = Vec::with_capacity(candidates.len());
        let mut succeeded_rows: Vec<i64> = Vec::new();
        for mut candidate in candidates {
            match existing.get(&self.db_key(&candidate.values)) {
                None => keep.push(candidate),
                Some(found) => match mode {
                    "upsert"
                        if self.importer.may(self.access_entity(), Action::Write, found.created_by, found.owner_id) =>
                    {
                        candidate.operation = Operation::Update(found.id);
                        keep.push(candidate);
                    }
                    // Says nothing of the other record (whose it is, what it holds): only that it is not theirs.
                    "upsert" => failed_here.push((
                        candidate,
                        self.duplicate_existing(
                            "already exists and is not one of the records you may change; it was left as it is",
                        ),
                    )),
                    "skip" => {
                        skipped += 1;
                        succeeded_rows.push(i64::try_from(candidate.row_number).unwrap_or(i64::MAX));
                    }
                    _ => {
                        failed_here.push((candidate, self.duplicate_existing("already exists")));
                    }
                },
            }
        }
        let mut created = 0i64;
        let mut updated = 0i64;
        if self.import.dry_run {
            for candidate in &keep {
                match candidate.operation {
                    Operation::Insert => created += 1,
                    Operation::Update(_) => updated += 1,
                }
                succeeded_rows.push(i64::try_from(candidate.row_number).unwrap_or(i64::MAX));
            }
        } else if !keep.is_empty() {
            let (inserted, changed) = self.copy_and_write(&mut tx, &keep).await?;
            for candidate in keep {
                let row = i64::try_from(candidate.row_number).unwrap_or(i64::MAX);
                let done = match candidate.operation {
                    Operation::Insert => inserted.contains(&candidate.id),
                    Operation::Update(_) => changed.contains(&row),
                };
                if done {
                    match candidate.operation {
                        Operation::Insert => created += 1,
                        Operation::Update(_) => updated += 1,
                    }
                    succeeded_rows.push(row);
                } else if mode == "skip" && candidate.operation == Operation::Insert {
                    skipped += 1;
                    succeeded_rows.push(row);
                } else if mode == "create" && candidate.operation == Operation::Insert {
                    failed_here.push((candidate, self.duplicate_existing("already exists")));
                } else {
                    failed_here.push((
                        candidate,
                        self.duplicate_existing("was created or removed by someone else while this import ran"),
                    ));
                }
            }
        }
        for (candidate, problem) in failed_here {
            errors.push(row_error(header, candidate.row_number, &candidate.cells, std::slice::from_ref(&problem)));
        }
        repo::record_errors(&mut tx, self.tenant, self.import.id, self.import.attempt, &errors).await?;
        let failed = if retry {
            -repo::resolve_rows(&mut tx, self.tenant, self.import.id, &succeeded_rows).await?
        } else {
            errors.len() as i64
        };
        let counts = BatchCounts { processed, created, updated, skipped, failed };
        repo::record_batch(&mut tx, self.tenant, self.import.id, checkpoint, counts, !retry).await?;
        self.context.commit(tx, Some((progress_done, Some(self.progress_total)))).await?;
        metrics::counter!("import_rows_total", "entity" => self.import.entity.clone()).increment(processed as u64);
        Ok(())
    }

    /// `duplicate_existing` for this entity's key: "a lead with this email {what}".
    fn duplicate_existing(&self, what: &str) -> Problem {
        Problem::new(
            ErrorType::Duplicate,
            ErrorCode::DuplicateExisting,
            Some(self.duplicate_field()),
            format!("a {} {what}", self.duplicate_description()),
        )
    }

    fn duplicate_field(&self) -> &'static str {
        match self.entity {
            ImportEntity::Projects => "name",
            _ => "email",
        }
    }

    fn duplicate_description(&self) -> &'static str {
        match self.entity {
            ImportEntity::Leads => "lead with this email",
            ImportEntity::Clients => "client with this email",
            ImportEntity::Projects => "project with this name for this client",
        }
    }

    /// The key duplicates are found by in the database: email, or client id and name (lowercased).
    fn db_key(&self, values: &[Option<String>]) -> String {
        let get = |field: &str| self.position(field).and_then(|i| values[i].clone()).unwrap_or_default().to_lowercase();
        match self.entity {
            ImportEntity::Projects => format!("{}\u{1f}{}", get("client"), get("name")),
            _ => get("email"),
        }
    }

    /// Records a row's key matches: leads and clients by email, projects by client and name.
    async fn existing(
        &self,
        tx: &mut sqlx::PgConnection,
        candidates: &[Candidate],
    ) -> Result<HashMap<String, ExistingRecord>, JobError> {
        let keys: Vec<String> = candidates
            .iter()
            .map(|candidate| self.db_key(&candidate.values))
            .filter(|key| !key.is_empty() && !key.ends_with('\u{1f}'))
            .collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let found = match self.entity {
            ImportEntity::Projects => {
                let (clients, names): (Vec<Uuid>, Vec<String>) = keys
                    .iter()
                    .filter_map(|key| key.split_once('\u{1f}'))
                    .filter_map(|(client, name)| Some((client.parse::<Uuid>().ok()?, name.to_owned())))
                    .unzip();
                lookups::existing_projects(tx, &clients, &names).await?
            }
            _ => lookups::existing_by_email(tx, self.access_entity(), &keys).await?,
        };
        Ok(found.into_iter().map(|record| (record.key.clone(), record)).collect())
    }

    fn access_entity(&self) -> Entity {
        match self.entity {
            ImportEntity::Leads => Entity::Lead,
            ImportEntity::Clients => Entity::Client,
            ImportEntity::Projects => Entity::Project,
        }
    }

    /// `assigned_to` (a lowercased email) becomes the user's id; an unknown or inactive user fails the row.
    fn resolve_owners(&self, candidates: &mut Vec<Candidate>, failed: &mut Vec<(Candidate, Problem)>) {
        let Some(position) = self.position("assigned_to") else { return };
        let mut kept = Vec::with_capacity(candidates.len());
        for mut candidate in candidates.drain(..) {
            let Some(email) = candidate.values[position].clone() else {
                kept.push(candidate);
                continue;
            };
            match self.users.get(&email) {
                Some(id) => {
                    candidate.values[position] = Some(id.to_string());
                    kept.push(candidate);
                }
                None => failed.push((
                    candidate,
                    Problem::new(
                        ErrorType::ReferenceNotFound,
                        ErrorCode::UnknownUser,
                        Some("assigned_to"),
                        format!("assigned_to: no active user with the email {email:?} in this tenant"),
                    ),
                )),
            }
        }
        *candidates = kept;
    }

    /// A project's `client` (lowercased name or email) becomes the client's id; an email match wins, a name
    /// shared by several clients is ambiguous.
    async fn resolve_clients(
        &self,
        tx: &mut sqlx::PgConnection,
        candidates: &mut Vec<Candidate>,
        failed: &mut Vec<(Candidate, Problem)>,
    ) -> Result<(), JobError> {
        let Some(position) = self.position("client") else { return Ok(()) };
        let keys: Vec<String> =
            candidates.iter().filter_map(|c| c.values[position].clone()).collect::<HashSet<_>>().into_iter().collect();
        // Only clients the importer can see count: one they cannot is "not found", as in the API.
        let found = lookups::clients_named(tx, &keys).await?;
        let mut by_email: HashMap<String, Uuid> = HashMap::new();
        let mut by_name: HashMap<String, Vec<Uuid>> = HashMap::new();
        for client in found {
            if !self.importer.may(Entity::Client, Action::Read, client.created_by, client.owner_id) {
                continue;
            }
            if let Some(email) = client.email_key {
                by_email.insert(email, client.id);
            }
            by_name.entry(client.name_key).or_default().push(client.id);
        }
        let mut kept = Vec::with_capacity(candidates.len());
        for mut candidate in candidates.drain(..) {
            let Some(key) = candidate.values[position].clone() else {
                kept.push(candidate);
                continue;
            };
            let resolved = by_email.get(&key).copied().map(Ok).or_else(|| match by_name.get(&key).map(Vec::as_slice) {
                Some([id]) => Some(Ok(*id)),
                Some(several) => Some(Err(several.len())),
                None => None,
            });
            match resolved {
                Some(Ok(id)) => {
                    candidate.values[position] = Some(id.to_string());
                    kept.push(candidate);
                }
                Some(Err(count)) => failed.push((
                    candidate,
                    Problem::new(
                        ErrorType::ReferenceNotFound,
                        ErrorCode::UnknownClient,
                        Some("client"),
                        format!("client: {count} clients are named {key:?}; give the client's email instead"),
                    ),
                )),
                None => failed.push((
                    candidate,
                    Problem::new(
                        ErrorType::ReferenceNotFound,
                        ErrorCode::UnknownClient,
                        Some("client"),
                        format!("client: no client you can see is named {key:?} or has that email"),
                    ),
                )),
            }
        }
        *candidates = kept;
        Ok(())
    }

    /// COPY into a staging table, then one INSERT and one UPDATE. Returns the ids inserted and the rows updated.
    async fn copy_and_write(
        &self,
        tx: &mut sqlx::PgConnection,
        rows: &[Candidate],
    ) -> Result<(HashSet<Uuid>, HashSet<i64>), JobError> {
        let columns = self.target.columns;
        let stage_columns: Vec<String> = (0..columns.len()).map(|i| format!("c{i} text")).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE import_stage (row_number bigint, op text, id uuid, target_id uuid, {}) ON COMMIT DROP",
            stage_columns.join(", ")
        )))
        .execute(&mut *tx)
        .await
        .map_err(DomainError::from)?;
        let mut buffer = Vec::with_capacity(rows.len() * 160);
        for row in rows {
            let (op, target) = match row.operation {
                Operation::Insert => ("insert", None),
                Operation::Update(id) => ("update", Some(id)),
            };
            buffer.extend_from_slice(row.row_number.to_string().as_bytes());
            buffer.push(b'\t');
            buffer.extend_from_slice(op.as_bytes());
            buffer.push(b'\t');
            buffer.extend_from_slice(row.id.to_string().as_bytes());
            buffer.push(b'\t');
            copy_field(&mut buffer, target.map(|id| id.to_string()).as_deref());
            for value in &row.values {
                buffer.push(b'\t');
                copy_field(&mut buffer, value.as_deref());
            }
            buffer.push(b'\n');
        }
        let mut copy = tx.copy_in_raw("COPY import_stage FROM STDIN").await.map_err(DomainError::from)?;
        copy.send(buffer).await.map_err(DomainError::from)?;
        copy.finish().await.map_err(DomainError::from)?;

        let table = self.target.table;
        let mut insert_columns = vec!["id", "tenant_id", "created_by", "updated_at"];
        let mut insert_values = vec!["s.id".to_owned(), "$1".into(), "$2".into(), "now()".into()];
        let mut assignments = vec!["updated_at = now()".to_owned()];
        for (i, (column, kind)) in columns.iter().enumerate() {
            let value = if *kind == "text" { format!("s.c{i}") } else { format!("s.c{i}::{kind}") };
            insert_columns.push(column);
            insert_values.push(match *column {
                "status" => format!("COALESCE({value}, '{}')", self.target.default_status),
                "created_at" => format!("COALESCE({value}, now())"),
                _ => value.clone(),
            });
            if *column != "created_at" {
                assignments.push(format!("{column} = COALESCE({value}, t.{column})"));
            }
        }
        let insert = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM import_stage s WHERE s.op = 'insert' ORDER BY s.row_number \
             ON CONFLICT DO NOTHING RETURNING id",
            insert_columns.join(", "),
            insert_values.join(", ")
        );
        let inserted: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(insert))
            .bind(self.tenant)
            .bind(self.import.created_by)
            .fetch_all(&mut *tx)
            .await
            .map_err(DomainError::from)?;
        let updated: Vec<i64> = if rows.iter().any(|row| matches!(row.operation, Operation::Update(_))) {
            let update = format!(
                "UPDATE {table} t SET {} FROM import_stage s \
                 WHERE s.op = 'update' AND t.tenant_id = $1 AND t.id = s.target_id AND t.deleted_at IS NULL \
                 RETURNING s.row_number",
                assignments.join(", ")
            );
            sqlx::query_scalar(sqlx::AssertSqlSafe(update))
                .bind(self.tenant)
                .fetch_all(&mut *tx)
                .await
                .map_err(DomainError::from)?
        } else {
            Vec::new()
        };
        Ok((inserted.into_iter().collect(), updated.into_iter().collect()))
    }
}

/// A value in COPY's text format.
fn copy_field(buffer: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        buffer.extend_from_slice(b"\\N");
        return;
    };
    for byte in value.bytes() {
        match byte {
            b'\\' => buffer.extend_from_slice(b"\\\\"),
            b'\t' => buffer.extend_from_slice(b"\\t"),
            b'\n' => buffer.extend_from_slice(b"\\n"),
            b'\r' => buffer.extend_from_slice(b"\\r"),
            other => buffer.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_what_copy_text_format_reserves() {
        let mut buffer = Vec::new();
        copy_field(&mut buffer, Some("a\tb\nc\\d\re"));
        buffer.push(b'|');
        copy_field(&mut buffer, None);
        assert_eq!(String::from_utf8_lossy(&buffer), "a\\tb\\nc\\\\d\\re|\\N");
    }

    #[test]
    fn corrections_name_a_column_or_a_field() {
        let header = vec!["E-mail".to_owned(), "First".to_owned()];
        let fields = HashMap::from([("email".to_owned(), 0usize), ("first_name".to_owned(), 1usize)]);
        let data = json!({"E-mail": "bad", "First": "Ann"});
        let by_field = merged_cells(&header, &data, Some(&json!({"email": "ann@example.com"})), &fields);
        assert_eq!(by_field, ["ann@example.com", "Ann"]);
        let by_column = merged_cells(&header, &data, Some(&json!({"First": "Annie"})), &fields);
        assert_eq!(by_column, ["bad", "Annie"]);
    }
}
