//! Exports (contract §7): `POST /api/v1/exports` validates the entity, format, columns, filters and sort with
//! the list's own parsing, and answers 202 with the export; its job streams the rows the requester's own list
//! would return into the file. History, detail, cancel and download (bearer, or a signed expiring link).

use super::{Data, ListResponse, page};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::jobs::{Progress, hand_off};
use crate::routes::record_kinds::{Clients, Interactions, Leads, Projects, Tickets};
use crate::routes::records::{ListParams, RecordResource, list_query};
use crate::signed_links;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use crm_shared::db::audit::{self, AuditEntry};
use crm_shared::db::exports::{self as repo, ExportFilter, ExportRow, NewExport};
use crm_shared::db::jobs::{self, NewJob};
use crm_shared::db::records;
use crm_shared::domain::access::{Action, Entity};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, FieldErrors, Validator};
use crm_shared::exports::{self, ExportFormat, columns};
use crm_shared::ids::new_id;
use crm_shared::jobs::JobKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// `leads`, `clients`, `projects`, `interactions` or `tickets`.
    #[schema(required = true, example = "leads")]
    pub entity: Option<String>,
    /// `csv`, `xlsx` or `pdf`.
    #[schema(required = true, example = "csv")]
    pub format: Option<String>,
    /// Column names, in order; by default the entity's import columns.
    pub columns: Option<Vec<String>>,
    /// The entity's list filters, by their query names: `{"status": "new,contacted", "q": "acme"}`.
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Map<String, Value>>,
    /// As the list's `sort`: a sortable column, `-` first for descending.
    pub sort: Option<String>,
    /// The download's name (without extension); by default `<entity>-<date>`.
    pub file_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    pub id: Uuid,
    pub entity: String,
    pub format: String,
    pub columns: Vec<String>,
    #[schema(value_type = Object)]
    pub filters: Value,
    pub sort: Option<String>,
    /// `queued running completed failed cancelled expired`.
    pub status: String,
    pub progress: Progress,
    pub row_count: Option<i64>,
    pub file_name: String,
    pub file_size: Option<i64>,
    pub template_id: Option<Uuid>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// A link that downloads the file without a token until `expires_at` (completed exports only).
    pub download_url: Option<String>,
    pub error: Option<String>,
    pub job_id: Option<Uuid>,
}

fn view(state: &AppState, row: ExportRow) -> ExportView {
    let mut progress = Progress::new(row.progress_done.unwrap_or(0), row.progress_total);
    if row.status == "completed" {
        progress.percent = Some(100.0);
    }
    let download_url = match (row.status.as_str(), row.expires_at) {
        ("completed", Some(expires_at)) => signed_links::export_download_url(state, row.id, expires_at),
        _ => None,
    };
    ExportView {
        id: row.id,
        entity: row.entity,
        format: row.format,
        columns: row.columns,
        filters: row.filters,
        sort: row.sort,
        status: row.status,
        progress,
        row_count: row.row_count,
        file_name: row.file_name,
        file_size: row.file_size,
        template_id: row.template_id,
        created_by: row.created_by,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        expires_at: row.expires_at,
        download_url,
        error: row.error,
        job_id: row.job_id,
    }
}

/// Readonly may not export, nor see exports or templates (contract §7).
pub(super) fn refuse_readonly(auth: &AuthCtx) -> Result<(), ApiError> {
    if auth.role == Role::Readonly {
        return Err(ApiError::forbidden("the readonly role may not export"));
    }
    Ok(())
}

/// Every role that may read the entity exports it, except readonly.
pub(super) fn may_export(auth: &AuthCtx, entity: Entity) -> Result<(), ApiError> {
    refuse_readonly(auth)?;
    auth.scope(entity, Action::Read).map(|_| ())
}

/// The export's filters as the list reads its query string: every value as text, a list as comma-separated.
fn filter_pairs(filters: &Map<String, Value>, validator: &mut Validator) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (name, value) in filters {
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text.clone(),
            Value::Bool(flag) => flag.to_string(),
            Value::Number(number) => number.to_string(),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).unwrap_or_else(|| item.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            Value::Object(_) => {
                validator.push(
                    &format!("filters.{name}"),
                    ErrorCode::InvalidValue,
                    "must be a value or a list of values",
                );
                continue;
            }
        };
        pairs.push((name.clone(), text));
    }
    pairs
}

/// What a validated request exports.
struct Plan {
    columns: Vec<String>,
    query: records::ListQuery,
}

/// Parses the filters and sort exactly as the entity's list would, with the names the list takes.
fn plan<R: RecordResource>(
    request_columns: Option<Vec<String>>,
    filters: &Map<String, Value>,
    sort: Option<String>,
    locale: &crm_shared::domain::records::TenantLocale,
) -> Result<Plan, FieldErrors> {
    let entity = R::TABLE.entity;
    let mut validator = Validator::new();
    let names: Vec<String> =
        request_columns.unwrap_or_else(|| columns::defaults(entity).iter().map(|name| (*name).to_owned()).collect());
    if let Err(problem) = columns::resolve(entity, &names) {
        validator.push("columns", ErrorCode::InvalidValue, problem);
    }
    let known: Vec<String> = ListParams::into_params(|| None)
        .into_iter()
        .chain(R::Filters::into_params(|| None))
        .map(|parameter| parameter.name)
        .filter(|name| !matches!(name.as_str(), "limit" | "offset" | "include_total" | "sort"))
        .collect();
    let unknown: Vec<&String> = filters.keys().filter(|name| !known.contains(name)).collect();
    if !unknown.is_empty() {
        validator.push(
            "filters",
            ErrorCode::InvalidValue,
            format!(
                "unknown filter {}; the filters are: {}",
                unknown.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", "),
                known.join(", ")
            ),
        );
    }
    let mut pairs = filter_pairs(filters, &mut validator);
    pairs.retain(|(name, _)| known.contains(name));
    if let Some(sort) = sort {
        pairs.push(("sort".into(), sort));
    }
    // Every problem at once: the columns' and filter names' above, and the values' as the list judges them.
    let mut problems = validator.finish().err().map(|errors| errors.0).unwrap_or_default();
    let encoded = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let parsed = serde_urlencoded::from_str::<ListParams>(&encoded)
        .and_then(|params| Ok((params, serde_urlencoded::from_str::<R::Filters>(&encoded)?)));
    let query = match parsed {
        Ok((params, own)) => match list_query::<R>(params, own, locale) {
            Ok(query) => Some(query),
            Err(errors) => {
                problems.extend(errors.0);
                None
            }
        },
        Err(error) => {
            problems.push(crm_shared::domain::validation::FieldError::new(
                "filters",
                ErrorCode::InvalidValue,
                error.to_string(),
            ));
            None
        }
    };
    let (Some(query), true) = (query, problems.is_empty()) else {
        return Err(FieldErrors(problems));
    };
    Ok(Plan { columns: names, query })
}

/// The entity and format a request or template names, or 422 naming what is wrong with them.
pub(super) fn entity_and_format(
    entity: Option<&str>,
    format: Option<&str>,
) -> Result<(Entity, ExportFormat), ApiError> {
    let mut validator = Validator::new();
    let entity = match entity.map(str::trim) {
        None | Some("") => {
            validator.push(
                "entity",
                ErrorCode::MissingRequired,
                "is required: leads, clients, projects, interactions or tickets",
            );
            None
        }
        Some(name) => {
            let entity = exports::entity_by_name(name);
            if entity.is_none() {
                validator.push(
                    "entity",
                    ErrorCode::InvalidEnum,
                    format!("{name:?} is not one of: leads, clients, projects, interactions, tickets"),
                );
            }
            entity
        }
    };
    let format = match format.map(str::trim) {
        None | Some("") => {
            validator.push("format", ErrorCode::MissingRequired, "is required: csv, xlsx or pdf");
            None
        }
        Some(name) => {
            let format = ExportFormat::parse(name);
            if format.is_none() {
                validator.push("format", ErrorCode::InvalidEnum, format!("{name:?} is not one of: csv, xlsx, pdf"));
            }
            format
        }
    };
    validator.finish()?;
    match (entity, format) {
        (Some(entity), Some(format)) => Ok((entity, format)),
        _ => Err(ApiError::internal("validated export fields missing")),
    }
}

/// What to export, from a request or a template.
pub(super) struct ExportSpec {
    pub entity: Entity,
    pub format: ExportFormat,
    pub columns: Option<Vec<String>>,
    pub filters: Map<String, Value>,
    pub sort: Option<String>,
    pub file_name: Option<String>,
    pub template_id: Option<Uuid>,
}

/// Validates the columns, filters and sort of `spec` for `entity` with the list's own parsing.
pub(super) fn validate(
    spec: &ExportSpec,
    locale: &crm_shared::domain::records::TenantLocale,
) -> Result<(Vec<String>, records::ListQuery), FieldErrors> {
    let (columns, filters, sort) = (spec.columns.clone(), &spec.filters, spec.sort.clone());
    let plan = match spec.entity {
        Entity::Lead => plan::<Leads>(columns, filters, sort, locale),
        Entity::Client => plan::<Clients>(columns, filters, sort, locale),
        Entity::Project => plan::<Projects>(columns, filters, sort, locale),
        Entity::Interaction => plan::<Interactions>(columns, filters, sort, locale),
        Entity::Ticket => plan::<Tickets>(columns, filters, sort, locale),
    }?;
    Ok((plan.columns, plan.query))
}

/// Starts an export. `filters` and `sort` take the list's names and values; what is exported is exactly what
/// the caller's own list returns with them, every page of it.
#[utoipa::path(post, path = "/api/v1/exports", tag = "exports", request_body = ExportRequest,
    responses((status = 202, description = "Queued; poll the Location", body = Data<ExportView>,
               headers(("Location" = String, description = "The export to poll")))))]
pub async fn create_export(
    State(state): State<AppState>,
    auth: AuthCtx,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ExportRequest>,
) -> Result<Response, ApiError> {
    let (entity, format) = entity_and_format(body.entity.as_deref(), body.format.as_deref())?;
    let spec = ExportSpec {
        entity,
        format,
        columns: body.columns,
        filters: body.filters.unwrap_or_default(),
        sort: body.sort,
        file_name: body.file_name,
        template_id: None,
    };
    start_export(&state, &auth, &headers, spec).await
}

/// Validates `spec` as the caller, records the export and its job, and answers 202.
pub(super) async fn start_export(
    state: &AppState,
    auth: &AuthCtx,
    headers: &HeaderMap,
    spec: ExportSpec,
) -> Result<Response, ApiError> {
    let (entity, format) = (spec.entity, spec.format);
    may_export(auth, entity)?;
    let viewer = auth.viewer(entity, Action::Read)?;
    let (mut tx, session) = state.begin(auth).await?;
    let (columns, query) = validate(&spec, &session.locale)?;
    let table = records::table_of(entity);
    if format == ExportFormat::Pdf {
        let rows = records::count_matching(&mut tx, auth.tenant_id, table, &viewer, &query).await?;
        let limit = state.settings.pdf_max_rows;
        if rows > limit {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_rows",
                format!(
                    "{rows} rows are more than a PDF may hold ({limit}, PDF_MAX_ROWS); export as CSV or XLSX instead"
                ),
            )
            .with_details(json!({ "rows": rows, "limit": limit, "formats": ["csv", "xlsx"] })));
        }
    }
    let export_id = new_id();
    let file_name = download_name(spec.file_name.as_deref(), entity, format);
    let request_id = headers.get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let job = jobs::insert(
        &mut tx,
        auth.tenant_id,
        &NewJob {
            kind: JobKind::Export,
            payload: json!({ "export_id": export_id }),
            max_attempts: 3,
            resource: Some(("export", export_id)),
            created_by: Some(auth.user_id),
            request_id: request_id.clone(),
        },
    )
    .await?;
    repo::insert(
        &mut tx,
        auth.tenant_id,
        NewExport {
            id: export_id,
            job_id: job.id,
            entity: exports::entity_name(entity),
            format: format.as_str(),
            columns,
            filters: Value::Object(spec.filters),
            sort: spec.sort,
            query: query.to_stored(),
            file_name: &file_name,
            template_id: spec.template_id,
            created_by: auth.user_id,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        Some(auth.tenant_id),
        AuditEntry {
            actor: Some(auth.user_id),
            action: "export_requested",
            target_type: Some("export"),
            target_id: Some(export_id),
            details: json!({ "entity": exports::entity_name(entity), "format": format.as_str(),
                             "template_id": spec.template_id }),
            request_id: request_id.as_deref(),
            ip: None,
        },
    )
    .await?;
    let row =
        repo::get(&mut tx, auth.tenant_id, export_id, None).await?.ok_or_else(|| ApiError::not_found("export"))?;
    tx.commit().await?;
    hand_off(state, &job).await;
    let location = format!("/api/v1/exports/{export_id}");
    let body = json!({ "data": view(state, row) });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A name safe in any file system and header: letters, digits, `-`, `_` and `.`; the format's extension.
pub(super) fn download_name(requested: Option<&str>, entity: Entity, format: ExportFormat) -> String {
    let base: String = requested
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ') { c } else { '_' })
        .take(100)
        .collect();
    let base = base.trim().trim_matches('.').to_owned();
    let base = if base.is_empty() {
        format!("{}-{}", exports::entity_name(entity), Utc::now().format("%Y-%m-%d"))
    } else {
        base
    };
    let extension = format!(".{}", format.as_str());
    if base.to_ascii_lowercase().ends_with(&extension) { base } else { format!("{base}{extension}") }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportListParams {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    pub include_total: Option<bool>,
    /// `queued running completed failed cancelled expired`.
    pub status: Option<String>,
    pub entity: Option<String>,
    /// Admins only: one user's exports.
    pub created_by: Option<Uuid>,
}

/// Export history: admins see the tenant's, everyone else their own; newest first.
#[utoipa::path(get, path = "/api/v1/exports", tag = "exports", params(ExportListParams),
    responses((status = 200, description = "A page of exports", body = ListResponse<ExportView>)))]
pub async fn list_exports(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ExportListParams>,
) -> Result<Json<ListResponse<ExportView>>, ApiError> {
    refuse_readonly(&auth)?;
    let (limit, offset) = page(params.limit, params.offset)?;
    let mut validator = Validator::new();
    if let Some(status) = &params.status
        && !["queued", "running", "completed", "failed", "cancelled", "expired"].contains(&status.as_str())
    {
        validator.push(
            "status",
            ErrorCode::InvalidEnum,
            "must be one of: queued, running, completed, failed, cancelled, expired",
        );
    }
    if let Some(entity) = &params.entity
        && exports::entity_by_name(entity).is_none()
    {
        validator.push(
            "entity",
            ErrorCode::InvalidEnum,
            "must be one of: leads, clients, projects, interactions, tickets",
        );
    }
    validator.finish()?;
    let filter = ExportFilter {
        seen_by: auth.own_work_only(),
        status: params.status,
        entity: params.entity.map(|entity| entity.trim().to_ascii_lowercase()),
        created_by: params.created_by,
    };
    let (mut tx, _) = state.begin(&auth).await?;
    let (rows, total) =
        repo::list(&mut tx, auth.tenant_id, &filter, limit, offset, params.include_total.unwrap_or(false)).await?;
    tx.commit().await?;
    let items = rows.into_iter().map(|row| view(&state, row)).collect();
    Ok(Json(ListResponse { items, total, limit, offset }))
}

pub(super) async fn find_export(tx: &mut sqlx::PgConnection, auth: &AuthCtx, id: Uuid) -> Result<ExportRow, ApiError> {
    refuse_readonly(auth)?;
    repo::get(tx, auth.tenant_id, id, auth.own_work_only()).await?.ok_or_else(|| ApiError::not_found("export"))
}

#[utoipa::path(get, path = "/api/v1/exports/{id}", tag = "exports", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The export and its progress", body = Data<ExportView>)))]
pub async fn get_export(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<ExportView>>, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    let row = find_export(&mut tx, &auth, id).await?;
    tx.commit().await?;
    Ok(Json(Data { data: view(&state, row) }))
}

/// Stops an export that has not ended: a queued one at once, a running one at its next batch.
#[utoipa::path(post, path = "/api/v1/exports/{id}/cancel", tag = "exports", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Cancelled, or cancellation requested", body = Data<ExportView>)))]
pub async fn cancel_export(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<ExportView>>, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    let row = find_export(&mut tx, &auth, id).await?;
    if !matches!(row.status.as_str(), "queued" | "running") {
        return Err(crm_shared::DomainError::Conflict {
            message: format!("the export has already ended ({})", row.status),
            field: None,
        }
        .into());
    }
    if let Some(job_id) = row.job_id {
        let job = jobs::request_cancel(&mut tx, auth.tenant_id, job_id, None).await?;
        if job.is_some_and(|job| job.status == "cancelled") {
            repo::end_without_file(&mut tx, auth.tenant_id, id, "cancelled", None).await?;
        }
    }
    let row = find_export(&mut tx, &auth, id).await?;
    tx.commit().await?;
    Ok(Json(Data { data: view(&state, row) }))
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/exports", get(list_exports).post(create_export))
        .route("/api/v1/exports/{id}", get(get_export))
        .route("/api/v1/exports/{id}/cancel", post(cancel_export))
        .route("/api/v1/exports/{id}/download", get(super::export_download::download_export))
}
