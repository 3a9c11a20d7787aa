//! Imports (contract §6): the upload streams to storage while its size and type are checked, then the import
//! and its job are committed together and the job is handed to the workers: `202` with the import to poll.
//! History, detail, the failed rows (as JSON or as a CSV ready to fix and upload again), corrections, retry of
//! the unresolved rows as the next attempt, and cancel. Admins, managers and sales import; other roles get 403.

use super::{Data, ListResponse, page};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::jobs::hand_off;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use crm_shared::csv_safety::SafeCsvWriter;
use crm_shared::db::audit::{self, AuditEntry};
use crm_shared::db::imports::{self as repo, ErrorFilter, ImportErrorView, ImportView, NewImport};
use crm_shared::db::jobs::{self, NewJob};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator};
use crm_shared::ids::new_id;
use crm_shared::imports::file_name;
use crm_shared::imports::headers::ImportEntity;
use crm_shared::imports::reader::FileFormat;
use crm_shared::imports::rows::ErrorType;
use crm_shared::jobs::JobKind;
use crm_shared::storage::FileWriter;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        // The upload has its own limit (IMPORT_MAX_BYTES), counted as it streams.
        .route("/api/v1/imports", get(list_imports).post(create_import).layer(DefaultBodyLimit::disable()))
        .route("/api/v1/imports/{id}", get(get_import))
        .route("/api/v1/imports/{id}/errors", get(list_errors))
        .route("/api/v1/imports/{id}/errors.csv", get(errors_csv))
        .route("/api/v1/imports/{id}/retry", post(retry_import))
        .route("/api/v1/imports/{id}/cancel", post(cancel_import))
        .route("/api/v1/import-errors/{id}", patch(update_error))
}

/// Who may import: every role that may create records (admins, managers, sales). What an import writes stays
/// within the importer's rights (the job checks each match), and each sees only their own imports, admins all.
fn may_import(auth: &AuthCtx) -> Result<(), ApiError> {
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
async fn find_import(tx: &mut sqlx::PgConnection, auth: &AuthCtx, id: Uuid) -> Result<ImportView, ApiError> {
    repo::get(tx, auth.tenant_id, id)
        .await?
        .filter(|view| auth.own_work_only().is_none_or(|user| view.created_by == Some(user)))
        .ok_or_else(|| ApiError::not_found("import"))
}

fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the file is larger than the import limit of {limit} bytes"),
    )
    .with_details(json!({ "max_bytes": limit }))
}

/// The format a file name and its first bytes say, or 415.
fn file_format(file_name: &str, first_bytes: &[u8]) -> Result<FileFormat, ApiError> {
    let extension = file_name.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()).unwrap_or_default();
    let zip = first_bytes.starts_with(b"PK\x03\x04");
    let ole = first_bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
    match extension.as_str() {
        "csv" if zip || ole => Err(unsupported(
            "the file is named .csv but is a spreadsheet workbook; save it as CSV or upload it as .xlsx",
        )),
        "csv" => Ok(FileFormat::Csv),
        "xlsx" if zip => Ok(FileFormat::Xlsx),
        "xlsx" => {
            Err(unsupported("the file is named .xlsx but is not an Excel workbook (.xlsx files are zip archives)"))
        }
        "xls" | "xlsb" | "xlsm" | "ods" | "numbers" => Err(unsupported(format!(
            ".{extension} files are not imported; save the sheet as .xlsx or CSV (UTF-8) and upload that"
        ))),
        _ => Err(unsupported("only .csv and .xlsx files can be imported")),
    }
}

struct StoredUpload {
    key: String,
    file_name: String,
    original_file_name: Option<String>,
    size: u64,
    format: FileFormat,
}

/// Streams the `file` field to storage: type checked on the first bytes, size counted on every chunk. Nothing
/// is kept when either check fails.
async fn store_file(
    state: &AppState,
    field: &mut axum::extract::multipart::Field<'_>,
    key_base: &str,
) -> Result<StoredUpload, ApiError> {
    let limit = state.settings.import_max_bytes;
    let sent_name = field.file_name().unwrap_or("upload").to_owned();
    let file_name = file_name::clean(&sent_name);
    let original_file_name = file_name::escaped_original(&sent_name);
    let mut head: Vec<u8> = Vec::new();
    let mut writer: Option<(FileWriter, FileFormat, String)> = None;
    let mut size = 0u64;
    let result = async {
        while let Some(chunk) = field.chunk().await.map_err(|error| bad_upload(&error))? {
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large(limit));
            }
            if let Some((writer, _, _)) = writer.as_mut() {
                writer.write(chunk).await?;
                continue;
            }
            head.extend_from_slice(&chunk);
            if head.len() >= 8 {
                writer = Some(start_stored_file(state, &file_name, key_base, std::mem::take(&mut head)).await?);
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        if let Some((writer, _, _)) = writer {
            writer.abort().await;
        }
        return Err(error);
    }
    let (writer, format, key) = match writer {
        Some(started) => started,
        // A file shorter than 8 bytes.
        None => start_stored_file(state, &file_name, key_base, head).await?,
    };
    writer.finish().await?;
    Ok(StoredUpload { key, file_name, original_file_name, size, format })
}

/// Decides the format from the name and first bytes (or 415), then starts the stored file with those bytes.
async fn start_stored_file(
    state: &AppState,
    file_name: &str,
    key_base: &str,
    head: Vec<u8>,
) -> Result<(FileWriter, FileFormat, String), ApiError> {
    let format = file_format(file_name, &head)?;
    let key = format!("{key_base}.{}", format.as_str());
    let mut writer = state.storage.writer(&key).await?;
    writer.write(head.into()).await?;
    Ok((writer, format, key))
}

/// The most a form field other than `file` may hold (a mapping of many columns fits easily).
const MAX_FORM_FIELD_BYTES: usize = 64 * 1024;

/// Reads a form field other than the file, refusing it as soon as it passes `MAX_FORM_FIELD_BYTES` or holds a
/// control character.
async fn read_form_field(field: &mut axum::extract::multipart::Field<'_>, name: &str) -> Result<String, ApiError> {
    let shown = if name.is_empty() || name.chars().any(char::is_control) { "(unnamed field)" } else { name };
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|error| bad_upload(&error))? {
        if bytes.len() + chunk.len() > MAX_FORM_FIELD_BYTES {
            return Err(ApiError::field(shown, format!("is longer than {} KiB", MAX_FORM_FIELD_BYTES / 1024)));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes).map_err(|_| ApiError::field(shown, "is not valid UTF-8 text"))?;
    if let Some(bad) = text.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ApiError::field(shown, format!("holds the control character U+{:04X}", u32::from(bad))));
    }
    Ok(text)
}

fn bad_upload(error: &axum::extract::multipart::MultipartError) -> ApiError {
    let status = error.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(status, "payload_too_large", error.body_text());
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_multipart",
        format!("the upload could not be read: {}", error.body_text()),
    )
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
    let read = async {
        while let Some(mut field) = multipart.next_field().await.map_err(|error| bad_upload(&error))? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                if stored.is_some() {
                    return Err(ApiError::field("file", "send one file per import"));
                }
                stored = Some(store_file(&state, &mut field, &key_base).await?);
            } else {
                // Every other field is read piece by piece and refused past its limit, never buffered whole
                // (issue 9: a 1 GiB `entity` sent chunked took the API to 2,100 MiB before its 422).
                let text = read_form_field(&mut field, &name).await?;
                if matches!(name.as_str(), "entity" | "mapping" | "mode" | "dry_run") {
                    fields.insert(name, text);
                }
            }
        }
        Ok(())
    }
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorListParams {
    /// `validation`, `duplicate`, `reference_not_found` or `database_error`.
    pub error_type: Option<String>,
    /// An error code, e.g. `invalid_email`.
    pub code: Option<String>,
    /// `true`: only resolved errors; `false`: only unresolved ones. errors.csv defaults to `false`.
    pub resolved: Option<bool>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub include_total: Option<bool>,
}

fn error_filter(params: &ErrorListParams) -> Result<ErrorFilter, ApiError> {
    let mut validator = Validator::new();
    if let Some(kind) = &params.error_type
        && ErrorType::parse(kind).is_none()
    {
        validator.push(
            "error_type",
            ErrorCode::InvalidEnum,
            format!("{kind:?} is not one of: validation, duplicate, reference_not_found, database_error"),
        );
    }
    validator.finish()?;
    Ok(ErrorFilter {
        after_row: 0,
        error_type: params.error_type.clone(),
        code: params.code.clone(),
        resolved: params.resolved,
    })
}

/// The rows that failed, in file order, with why.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors", tag = "imports", params(("id" = Uuid, Path), ErrorListParams),
    responses((status = 200, description = "A page of failed rows", body = ListResponse<ImportErrorView>)))]
pub async fn list_errors(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ErrorListParams>,
) -> Result<Json<ListResponse<ImportErrorView>>, ApiError> {
    may_import(&auth)?;
    let (limit, offset) = page(params.limit, params.offset)?;
    let filter = error_filter(&params)?;
    let (mut tx, _) = state.begin(&auth).await?;
    find_import(&mut tx, &auth, id).await?;
    let (items, total) =
        repo::list_errors(&mut tx, auth.tenant_id, id, &filter, limit, offset, params.include_total.unwrap_or(false))
            .await?;
    tx.commit().await?;
    Ok(Json(ListResponse { items, total, limit, offset }))
}

/// The failed rows as they were in the file, each with `row_number, error_type, code, field, message` in front:
/// fix them in a spreadsheet and upload the file again. Unresolved rows by default (`resolved` filters). A cell
/// a spreadsheet would run as a formula comes with a leading `'` (§6), which the import takes off again.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.csv", tag = "imports", params(("id" = Uuid, Path), ErrorListParams),
    responses((status = 200, description = "text/csv, UTF-8", content_type = "text/csv", body = String)))]
pub async fn errors_csv(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ErrorListParams>,
) -> Result<Response, ApiError> {
    may_import(&auth)?;
    let mut filter = error_filter(&params)?;
    filter.resolved = Some(filter.resolved.unwrap_or(false));
    let (mut tx, _) = state.begin(&auth).await?;
    let view = find_import(&mut tx, &auth, id).await?;
    tx.commit().await?;
    let header: Vec<String> =
        view.header.as_ref().and_then(|header| serde_json::from_value(header.clone()).ok()).unwrap_or_default();
    let pool = state.db.clone();
    let tenant = auth.tenant_id;
    let first_line = csv_lines([["row_number", "error_type", "code", "field", "message"]
        .into_iter()
        .map(str::to_owned)
        .chain(header.iter().cloned())
        .collect()])
    .map_err(ApiError::internal)?;
    // Pages of rows stream out: a million failed rows never sit in memory at once.
    let pages = futures::stream::unfold(Some(0i64), move |after| {
        let (pool, mut filter, header) = (pool.clone(), filter.clone(), header.clone());
        async move {
            filter.after_row = after?;
            let page = async {
                let mut tx = crm_shared::db::begin_tenant(&pool, tenant).await?;
                let (rows, _) = repo::list_errors(&mut tx, tenant, id, &filter, 2_000, 0, false).await?;
                tx.commit().await?;
                Ok::<_, crm_shared::DomainError>(rows)
            }
            .await;
            match page {
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|row| row.row_number);
                    let lines = rows.into_iter().map(|row| {
                        [
                            row.row_number.to_string(),
                            row.error_type,
                            row.code,
                            row.field.unwrap_or_default(),
                            row.message,
                        ]
                        .into_iter()
                        .chain(header.iter().map(|name| match row.row_data.get(name) {
                            Some(Value::String(text)) => text.clone(),
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        }))
                        .collect::<Vec<String>>()
                    });
                    Some((csv_lines(lines).map(bytes::Bytes::from), next))
                }
            }
        }
    });
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(first_line)) }),
        pages,
    );
    let file_name = format!("import-{id}-errors.csv");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// CSV records through the product's one CSV writer: CRLF line ends, and cells a spreadsheet would run as a
/// formula guarded with `'` (§6), header names included.
fn csv_lines(records: impl IntoIterator<Item = Vec<String>>) -> std::io::Result<Vec<u8>> {
    let mut writer = SafeCsvWriter::new(Vec::new());
    for record in records {
        writer.write_record(&record)?;
    }
    Ok(writer.into_inner()?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportErrorUpdate {
    /// Values to use on retry, by file column or field name: `{"email": "ann@example.com"}`. Merged over the
    /// stored row; earlier corrections of other columns stay.
    #[schema(value_type = Option<Object>)]
    pub corrected_data: Option<HashMap<String, Option<String>>>,
    /// `true` marks the row resolved by hand (a retry leaves it alone); `false` reopens it.
    pub resolved: Option<bool>,
}

/// Corrects a failed row (used by the next retry) or marks it resolved.
#[utoipa::path(patch, path = "/api/v1/import-errors/{id}", tag = "imports", params(("id" = Uuid, Path)),
    request_body = ImportErrorUpdate,
    responses((status = 200, description = "The error with its corrections", body = Data<ImportErrorView>)))]
pub async fn update_error(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ImportErrorUpdate>,
) -> Result<Json<Data<ImportErrorView>>, ApiError> {
    may_import(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let error =
        repo::get_error(&mut tx, auth.tenant_id, id).await?.ok_or_else(|| ApiError::not_found("import error"))?;
    let import = find_import(&mut tx, &auth, error.import_id).await.map_err(|_| ApiError::not_found("import error"))?;
    let corrected = match body.corrected_data {
        None => None,
        Some(corrections) => {
            let header: Vec<String> = import
                .header
                .as_ref()
                .and_then(|header| serde_json::from_value(header.clone()).ok())
                .unwrap_or_default();
            let entity = ImportEntity::parse(&import.entity).ok_or_else(|| ApiError::not_found("import"))?;
            let mut validator = Validator::new();
            for key in corrections.keys() {
                if !header.contains(key) && !entity.fields().contains(&key.as_str()) {
                    validator.push(
                        "corrected_data",
                        ErrorCode::InvalidValue,
                        format!(
                            "{key:?} is neither a column of the file nor a field it fills; the columns are: {}",
                            header.join(", ")
                        ),
                    );
                }
            }
            validator.finish()?;
            let mut merged = match error.corrected_data.clone() {
                Some(Value::Object(existing)) => existing,
                _ => serde_json::Map::new(),
            };
            for (key, value) in corrections {
                merged.insert(key, value.map_or(Value::String(String::new()), Value::String));
            }
            Some(Value::Object(merged))
        }
    };
    let updated = repo::update_error(&mut tx, auth.tenant_id, id, corrected.as_ref(), body.resolved)
        .await?
        .ok_or_else(|| ApiError::not_found("import error"))?;
    tx.commit().await?;
    Ok(Json(Data { data: updated }))
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
