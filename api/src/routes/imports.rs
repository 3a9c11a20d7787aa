//! Imports (contract §6): the upload streams to storage while its size and type are checked, then the import
//! and its job are committed together and the job is handed to the workers: `202` with the import to poll.
//! History, detail, the failed rows (as JSON or as a CSV ready to fix and upload again), corrections, retry of
//! the unresolved rows as the next attempt, and cancel. Admins, managers and sales import; other roles get 403.

use super::import_upload::{StoredUpload, read_upload_form, too_large, unsupported};
use super::{Data, ListResponse, page};
use super::{import_errors, import_preview};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::jobs::hand_off;
use crate::state::AppState;
use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use crm_shared::db::audit::{self, AuditEntry};
use crm_shared::db::imports::{self as repo, ImportView, NewImport};
use crm_shared::db::jobs::{self, NewJob};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator};
use crm_shared::ids::new_id;
use crm_shared::imports::headers::ImportEntity;
use crm_shared::jobs::JobKind;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        // The upload has its own limit (IMPORT_MAX_BYTES), counted as it streams.
        .route("/api/v1/imports", get(list_imports).post(create_import).layer(DefaultBodyLimit::disable()))
        .route("/api/v1/imports/preview", post(import_preview::preview_import).layer(DefaultBodyLimit::disable()))
        .route("/api/v1/imports/{id}", get(get_import))
        .route("/api/v1/imports/{id}/errors", get(import_errors::list_errors))
        .route("/api/v1/imports/{id}/errors.csv", get(import_errors::errors_csv))
        .route("/api/v1/imports/{id}/retry", post(retry_import))
        .route("/api/v1/imports/{id}/cancel", post(cancel_import))
        .route("/api/v1/import-errors/{id}", patch(import_errors::update_error))
}

/// Who may import: every role that may create records (admins, managers, sales). What an import writes stays
/// within the importer's rights (the job checks each match), and each sees only their own imports, admins all.
pub(super) fn may_import(auth: &AuthCtx) -> Result<(), ApiError> {
    match auth.role {
        Role::Admin | Role::Manager | Role::Sales => Ok(()),
        _ => Err(ApiError::forbidden("only admins, managers and sales may import or see imports")),
    }
}

/// The multipart form of an upload (documentation only: the handler reads the stream itself).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ImportUpload {
    /// The spreadsheet: `.csv` (UTF-8 with or without BOM, UTF-16, Windows-1252; `,` `;` tab or `|`) or `.xlsx`
    /// (first sheet). At most `IMPORT_MAX_BYTES` (413); other types 415.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `leads`, `clients` or `projects`.
    entity: String,
    /// JSON `{"file column": "field"}`; by default headers are matched to fields ignoring case, spaces and
    /// underscores.
    mapping: Option<String>,
    /// `create` (default; a duplicate is an error), `upsert` (a lead or client matched by email, a project by
    /// client and name, is updated; blank cells keep the stored value) or `skip` (duplicates are skipped).
    mode: Option<String>,
    /// `true`: validate everything, duplicates against the database included, and write no records.
    dry_run: Option<bool>,
}

/// What `POST /api/v1/imports` answers.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ImportAccepted {
    pub id: Uuid,
    pub job_id: Uuid,
    pub status: String,
    pub import: ImportView,
}

fn conflict(message: impl Into<String>) -> ApiError {
    crm_shared::DomainError::Conflict { message: message.into(), field: None }.into()
}

/// The caller's import, or 404 (also for another tenant's).
pub(super) async fn find_import(tx: &mut sqlx::PgConnection, auth: &AuthCtx, id: Uuid) -> Result<ImportView, ApiError> {
    repo::get(tx, auth.tenant_id, id)
        .await?
        .filter(|view| auth.own_work_only().is_none_or(|user| view.created_by == Some(user)))
        .ok_or_else(|| ApiError::not_found("import"))
}

/// Upload a file to import. `multipart/form-data` with `file`, `entity`, and optionally `mapping`, `mode`,
/// `dry_run`. Answers 202 with the import; poll `GET /api/v1/imports/{id}` (or the job) for progress.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports",
    request_body(content = ImportUpload, content_type = "multipart/form-data"),
    responses((status = 202, description = "Stored and queued; poll the Location", body = Data<ImportAccepted>),
              (status = 413, description = "Larger than IMPORT_MAX_BYTES", body = crate::error::ErrorBody),
              (status = 415, description = "Not a .csv or .xlsx file", body = crate::error::ErrorBody)))]
pub async fn create_import(
    State(state): State<AppState>,
    auth: AuthCtx,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    may_import(&auth)?;
    let limit = state.settings.import_max_bytes;
    // A declared length far over the limit is refused before a byte is read (the form's own fields get room).
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit.saturating_add(64 * 1024)) {
        return Err(too_large(limit));
    }
    let mut multipart =
        multipart.map_err(|_| unsupported("send the file as multipart/form-data with the fields file and entity"))?;
    let import_id = new_id();
    let key_base = format!("imports/{}/{import_id}", auth.tenant_id);
    let mut stored: Option<StoredUpload> = None;
    let mut fields: HashMap<String, String> = HashMap::new();
    let read = read_upload_form(
        &state,
        &mut multipart,
        &key_base,
        &["entity", "mapping", "mode", "dry_run"],
        &mut stored,
        &mut fields,
    )
    .await;
    let accepted = match read {
        Ok(()) => accept_upload(&state, &auth, &headers, import_id, stored.as_ref(), &fields).await,
        Err(error) => Err(error),
    };
    if accepted.is_err()
        && let Some(stored) = &stored
    {
        let _ = state.storage.delete(&stored.key).await;
    }
    accepted
}

async fn accept_upload(
    state: &AppState,
    auth: &AuthCtx,
    headers: &HeaderMap,
    import_id: Uuid,
    stored: Option<&StoredUpload>,
    fields: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let mut validator = Validator::new();
    if stored.is_none() {
        validator.push("file", ErrorCode::MissingRequired, "is required: the .csv or .xlsx file to import");
    }
    let entity = match fields.get("entity").map(|text| text.trim()) {
        None | Some("") => {
            validator.push("entity", ErrorCode::MissingRequired, "is required: leads, clients or projects");
            None
        }
        Some(text) => {
            let entity = ImportEntity::parse(text);
            if entity.is_none() {
                validator.push(
                    "entity",
                    ErrorCode::InvalidEnum,
                    format!("{text:?} is not one of: leads, clients, projects"),
                );
            }
            entity
        }
    };
    let mode = fields.get("mode").map(|text| text.trim().to_lowercase()).filter(|text| !text.is_empty());
    let mode = mode.unwrap_or_else(|| "create".into());
    if !matches!(mode.as_str(), "create" | "upsert" | "skip") {
        validator.push("mode", ErrorCode::InvalidEnum, format!("{mode:?} is not one of: create, upsert, skip"));
    }
    let dry_run = match fields.get("dry_run").map(|text| text.trim().to_lowercase()).as_deref() {
        None | Some("" | "false" | "0" | "no") => false,
        Some("true" | "1" | "yes") => true,
        Some(other) => {
            validator.push("dry_run", ErrorCode::InvalidValue, format!("{other:?} is not true or false"));
            false
        }
    };
    let mapping: Option<HashMap<String, String>> = match fields.get("mapping").map(|text| text.trim()) {
        None | Some("") => None,
        Some(text) => match serde_json::from_str::<HashMap<String, String>>(text) {
            Ok(mapping) => Some(mapping),
            Err(_) => {
                validator.push(
                    "mapping",
                    ErrorCode::InvalidValue,
                    "must be a JSON object of {\"file column\": \"field\"}",
                );
                None
            }
        },
    };
    if let (Some(entity), Some(mapping)) = (entity, &mapping) {
        for field in mapping.values() {
            if !entity.fields().contains(&field.trim()) {
                validator.push(
                    "mapping",
                    ErrorCode::InvalidValue,
                    format!(
                        "{field:?} is not a field of {}; the fields are: {}",
                        entity.as_str(),
                        entity.fields().join(", ")
                    ),
                );
            }
        }
    }
    validator.finish()?;
    let (Some(stored), Some(entity)) = (stored, entity) else {
        return Err(ApiError::bad_request("the upload is incomplete"));
    };
    let request_id = headers.get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let (mut tx, _) = state.begin(auth).await?;
    let job = jobs::insert(
        &mut tx,
        auth.tenant_id,
        &NewJob {
            kind: JobKind::Import,
            payload: json!({ "import_id": import_id, "attempt": 1 }),
            max_attempts: 5,
            resource: Some(("import", import_id)),
            created_by: Some(auth.user_id),
            request_id: request_id.clone(),
        },
    )
    .await?;
    let mapping_value = mapping.as_ref().map(|mapping| json!(mapping));
    repo::insert(
        &mut tx,
        auth.tenant_id,
        &NewImport {
            id: import_id,
            job_id: job.id,
            entity: entity.as_str(),
            file_name: &stored.file_name,
            original_file_name: stored.original_file_name.as_deref(),
            file_size: i64::try_from(stored.size).unwrap_or(i64::MAX),
            file_format: stored.format.as_str(),
            storage_key: &stored.key,
            mode: &mode,
            dry_run,
            mapping: mapping_value,
            created_by: auth.user_id,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        Some(auth.tenant_id),
        AuditEntry {
            actor: Some(auth.user_id),
            action: "import_started",
            target_type: Some("import"),
            target_id: Some(import_id),
            details: json!({ "entity": entity.as_str(), "file_name": stored.file_name, "file_size": stored.size,
                             "mode": mode, "dry_run": dry_run }),
            request_id: request_id.as_deref(),
            ip: None,
        },
    )
    .await?;
    let view = repo::get(&mut tx, auth.tenant_id, import_id).await?.ok_or_else(|| ApiError::not_found("import"))?;
    tx.commit().await?;
    hand_off(state, &job).await;
    metrics::counter!("imports_started_total", "entity" => entity.as_str()).increment(1);
    Ok(accepted_import(view, job.id))
}

fn accepted_import(view: ImportView, job_id: Uuid) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(location) = format!("/api/v1/imports/{}", view.id).parse() {
        headers.insert(header::LOCATION, location);
    }
    let body = ImportAccepted { id: view.id, job_id, status: view.status.clone(), import: view };
    (StatusCode::ACCEPTED, headers, Json(Data { data: body })).into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportListParams {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub include_total: Option<bool>,
}

/// The tenant's imports, newest first: who, when, which file, counts and status.
#[utoipa::path(get, path = "/api/v1/imports", tag = "imports", params(ImportListParams),
    responses((status = 200, description = "A page of imports", body = ListResponse<ImportView>)))]
pub async fn list_imports(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ImportListParams>,
) -> Result<Json<ListResponse<ImportView>>, ApiError> {
    may_import(&auth)?;
    let (limit, offset) = page(params.limit, params.offset)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let (items, total) =
        repo::list(&mut tx, auth.tenant_id, auth.own_work_only(), limit, offset, params.include_total.unwrap_or(false))
            .await?;
    tx.commit().await?;
    Ok(Json(ListResponse { items, total, limit, offset }))
}

#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The import, with its counts and status", body = Data<ImportView>)))]
pub async fn get_import(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<ImportView>>, ApiError> {
    may_import(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let view = find_import(&mut tx, &auth, id).await?;
    tx.commit().await?;
    Ok(Json(Data { data: view }))
}

/// Runs the unresolved failed rows again, with their corrections, as the next attempt of the same import.
#[utoipa::path(post, path = "/api/v1/imports/{id}/retry", tag = "imports", params(("id" = Uuid, Path)),
    responses((status = 202, description = "The next attempt is queued", body = Data<ImportAccepted>)))]
pub async fn retry_import(
    State(state): State<AppState>,
    auth: AuthCtx,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    may_import(&auth)?;
    let request_id = headers.get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let (mut tx, _) = state.begin(&auth).await?;
    let view = find_import(&mut tx, &auth, id).await?;
    if view.status != "completed_with_errors" {
        return Err(conflict(format!(
            "only an import that completed with errors can be retried; this one is {}{}",
            view.status,
            if view.status == "failed" { " (fix the file and upload it again)" } else { "" }
        )));
    }
    let unresolved = repo::unresolved_count(&mut tx, auth.tenant_id, id).await?;
    if unresolved == 0 {
        return Err(conflict("every failed row is resolved; there is nothing to retry"));
    }
    let attempt = view.attempt + 1;
    let job = jobs::insert(
        &mut tx,
        auth.tenant_id,
        &NewJob {
            kind: JobKind::Import,
            payload: json!({ "import_id": id, "attempt": attempt }),
            max_attempts: 5,
            resource: Some(("import", id)),
            created_by: Some(auth.user_id),
            request_id: request_id.clone(),
        },
    )
    .await?;
    repo::start_retry(&mut tx, auth.tenant_id, id, job.id).await?;
    audit::record(
        &mut tx,
        Some(auth.tenant_id),
        AuditEntry {
            actor: Some(auth.user_id),
            action: "import_retried",
            target_type: Some("import"),
            target_id: Some(id),
            details: json!({ "attempt": attempt, "rows": unresolved }),
            request_id: request_id.as_deref(),
            ip: None,
        },
    )
    .await?;
    let view = find_import(&mut tx, &auth, id).await?;
    tx.commit().await?;
    hand_off(&state, &job).await;
    Ok(accepted_import(view, job.id))
}

/// A queued import is cancelled at once; a running one stops before its next batch (batches already written
/// stay written).
#[utoipa::path(post, path = "/api/v1/imports/{id}/cancel", tag = "imports", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Cancelled, or cancellation requested", body = Data<ImportView>)))]
pub async fn cancel_import(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<ImportView>>, ApiError> {
    may_import(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let view = find_import(&mut tx, &auth, id).await?;
    if !matches!(view.status.as_str(), "queued" | "running") {
        return Err(conflict(format!("the import has already ended ({})", view.status)));
    }
    if let Some(job_id) = view.job_id {
        let job = jobs::request_cancel(&mut tx, auth.tenant_id, job_id, None).await?;
        if job.is_some_and(|job| job.status == "cancelled") {
            repo::mark_cancelled(&mut tx, auth.tenant_id, id).await?;
        }
    }
    audit::record(
        &mut tx,
        Some(auth.tenant_id),
        AuditEntry {
            actor: Some(auth.user_id),
            action: "import_cancelled",
            target_type: Some("import"),
            target_id: Some(id),
            details: json!({}),
            request_id: None,
            ip: None,
        },
    )
    .await?;
    let view = find_import(&mut tx, &auth, id).await?;
    tx.commit().await?;
    Ok(Json(Data { data: view }))
}
