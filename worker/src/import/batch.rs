//! One batch of an import attempt: owners and clients resolved, duplicates found against the tenant's records
//! (within the importer's rights), the valid rows written, and the failed rows, counts and checkpoint recorded,
//! all in one transaction committed under the job's lease.

use super::PreparedRow;
use super::stored_rows::row_error;
use crate::runtime::{JobContext, JobError};
use crm_shared::db;
use crm_shared::db::import_lookups::{self as lookups, ExistingRecord, Importer};
use crm_shared::db::import_writes::{self as import_tables, ImportTable, RowWrite, StagedRow};
use crm_shared::db::imports::{self as repo, BatchCounts, ImportRun, RowError};
use crm_shared::domain::access::{Action, Entity};
use crm_shared::domain::validation::ErrorCode;
use crm_shared::imports::headers::ImportEntity;
use crm_shared::imports::rows::{ErrorType, Problem};
use crm_shared::{DomainError, TenantId};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

struct Candidate {
    row_number: u64,
    line_number: Option<u64>,
    cells: Vec<String>,
    values: Vec<Option<String>>,
    operation: RowWrite,
    id: Uuid,
}

/// Writes batches for one attempt.
pub(super) struct BatchWriter<'a> {
    context: &'a JobContext,
    tenant: TenantId,
    import: &'a ImportRun,
    entity: ImportEntity,
    target: ImportTable,
    /// Active users of the tenant by lowercased email.
    users: HashMap<String, Uuid>,
    /// Who the import runs for: matches they may not change are not changed, clients they cannot see are not
    /// found.
    importer: Importer,
    pub(super) progress_total: i64,
}

impl<'a> BatchWriter<'a> {
    pub(super) async fn new(
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
            target: import_tables::import_table(entity),
            users: users.into_iter().collect(),
            importer,
            progress_total: 0,
        })
    }

    fn position(&self, field: &str) -> Option<usize> {
        self.entity.fields().iter().position(|candidate| *candidate == field)
    }

    /// Resolves, classifies and writes one batch, with its errors, counts and checkpoint, in one transaction.
    pub(super) async fn write(
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
                Err(problems) => errors.push(row_error(header, row.row_number, row.line_number, &row.cells, &problems)),
                Ok(valid) => candidates.push(Candidate {
                    row_number: row.row_number,
                    line_number: row.line_number,
                    cells: row.cells,
                    values: valid.values,
                    operation: RowWrite::Insert,
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
                        candidate.operation = RowWrite::Update(found.id);
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
                    RowWrite::Insert => created += 1,
                    RowWrite::Update(_) => updated += 1,
                }
                succeeded_rows.push(i64::try_from(candidate.row_number).unwrap_or(i64::MAX));
            }
        } else if !keep.is_empty() {
            let staged: Vec<StagedRow<'_>> = keep
                .iter()
                .map(|candidate| StagedRow {
                    row_number: candidate.row_number,
                    id: candidate.id,
                    write: candidate.operation,
                    values: &candidate.values,
                })
                .collect();
            let (inserted, changed) =
                import_tables::write_rows(&mut tx, self.tenant, self.import.created_by, &self.target, &staged).await?;
            for candidate in keep {
                let row = i64::try_from(candidate.row_number).unwrap_or(i64::MAX);
                let done = match candidate.operation {
                    RowWrite::Insert => inserted.contains(&candidate.id),
                    RowWrite::Update(_) => changed.contains(&row),
                };
                if done {
                    match candidate.operation {
                        RowWrite::Insert => created += 1,
                        RowWrite::Update(_) => updated += 1,
                    }
                    succeeded_rows.push(row);
                } else if mode == "skip" && candidate.operation == RowWrite::Insert {
                    skipped += 1;
                    succeeded_rows.push(row);
                } else if mode == "create" && candidate.operation == RowWrite::Insert {
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
            let (row, line) = (candidate.row_number, candidate.line_number);
            errors.push(row_error(header, row, line, &candidate.cells, std::slice::from_ref(&problem)));
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
        if created + updated > 0 {
            self.context.runtime.dashboards_changed(self.tenant).await;
        }
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
}
