//! Export templates (contract §7): `{name, entity, format, columns, filters, sort, shared}`, validated when
//! saved with the same parsing an export gets, private to their creator unless shared with the tenant. Running
//! one exports with the runner's own visibility. The creator and admins may change or delete a template.

use super::Data;
use super::exports::{ExportSpec, entity_and_format, may_export, refuse_readonly, start_export, validate};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use crm_shared::db::export_templates::{self as repo, TemplateFields, TemplateRow};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator};
use crm_shared::exports;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    #[schema(required = true, example = "Qualified leads, weekly")]
    pub name: Option<String>,
    #[schema(required = true, example = "leads")]
    pub entity: Option<String>,
    #[schema(required = true, example = "xlsx")]
    pub format: Option<String>,
    pub columns: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Map<String, Value>>,
    pub sort: Option<String>,
    /// Every user of the tenant sees and runs a shared template (default: only its creator).
    pub shared: Option<bool>,
}

/// A template's fields, validated as an export of them would be.
struct Checked {
    name: String,
    spec: ExportSpec,
    columns: Vec<String>,
    shared: bool,
}

fn check(
    auth: &AuthCtx,
    locale: &crm_shared::domain::records::TenantLocale,
    body: TemplateRequest,
) -> Result<Checked, ApiError> {
    let mut validator = Validator::new();
    let name = body.name.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if name.is_empty() {
        validator.push("name", ErrorCode::MissingRequired, "is required");
    } else if name.chars().count() > 200 || name.chars().any(char::is_control) {
        validator.push("name", ErrorCode::InvalidValue, "must be 1 to 200 characters with no control characters");
    }
    validator.finish()?;
    let (entity, format) = entity_and_format(body.entity.as_deref(), body.format.as_deref())?;
    may_export(auth, entity)?;
    let spec = ExportSpec {
        entity,
        format,
        columns: body.columns,
        filters: body.filters.unwrap_or_default(),
        sort: body.sort,
        file_name: None,
        template_id: None,
    };
    let (columns, _) = validate(&spec, locale)?;
    Ok(Checked { name, spec, columns, shared: body.shared.unwrap_or(false) })
}

fn fields<'a>(checked: &'a Checked, filters: &'a Value) -> TemplateFields<'a> {
    TemplateFields {
        name: &checked.name,
        entity: exports::entity_name(checked.spec.entity),
        format: checked.spec.format.as_str(),
        columns: &checked.columns,
        filters,
        sort: checked.spec.sort.as_deref(),
        shared: checked.shared,
    }
}

#[utoipa::path(get, path = "/api/v1/export-templates", tag = "exports",
    responses((status = 200, description = "The caller's templates and the tenant's shared ones", body = Data<Vec<TemplateRow>>)))]
pub async fn list_templates(
    State(state): State<AppState>,
    auth: AuthCtx,
) -> Result<Json<Data<Vec<TemplateRow>>>, ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let templates = repo::list(&mut tx, auth.tenant_id, auth.user_id).await?;
    tx.commit().await?;
    Ok(Json(Data { data: templates }))
}

#[utoipa::path(post, path = "/api/v1/export-templates", tag = "exports", request_body = TemplateRequest,
    responses((status = 201, description = "Saved", body = Data<TemplateRow>)))]
pub async fn create_template(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiJson(body): ApiJson<TemplateRequest>,
) -> Result<(StatusCode, Json<Data<TemplateRow>>), ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, session) = state.begin(&auth).await?;
    let checked = check(&auth, &session.locale, body)?;
    let filters = Value::Object(checked.spec.filters.clone());
    let row = repo::insert(&mut tx, auth.tenant_id, auth.user_id, &fields(&checked, &filters)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Data { data: row })))
}

#[utoipa::path(get, path = "/api/v1/export-templates/{id}", tag = "exports", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The template", body = Data<TemplateRow>)))]
pub async fn get_template(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<TemplateRow>>, ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let row = repo::get(&mut tx, auth.tenant_id, id, auth.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("export template"))?;
    tx.commit().await?;
    Ok(Json(Data { data: row }))
}

/// The template, if the caller may change it: its creator, or an admin (a shared template is others' to run,
/// not to change).
async fn changeable(tx: &mut sqlx::PgConnection, auth: &AuthCtx, id: Uuid) -> Result<TemplateRow, ApiError> {
    let row =
        repo::get(tx, auth.tenant_id, id, auth.user_id).await?.ok_or_else(|| ApiError::not_found("export template"))?;
    if row.created_by != auth.user_id.as_uuid() && auth.role != Role::Admin {
        return Err(ApiError::forbidden("only the template's creator or an admin may change it"));
    }
    Ok(row)
}

/// Replaces the template's fields (send them all, as when creating it).
#[utoipa::path(patch, path = "/api/v1/export-templates/{id}", tag = "exports", params(("id" = Uuid, Path)),
    request_body = TemplateRequest, responses((status = 200, description = "Saved", body = Data<TemplateRow>)))]
pub async fn update_template(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<TemplateRequest>,
) -> Result<Json<Data<TemplateRow>>, ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, session) = state.begin(&auth).await?;
    let checked = check(&auth, &session.locale, body)?;
    let filters = Value::Object(checked.spec.filters.clone());
    changeable(&mut tx, &auth, id).await?;
    let row = repo::update(&mut tx, auth.tenant_id, id, &fields(&checked, &filters))
        .await?
        .ok_or_else(|| ApiError::not_found("export template"))?;
    tx.commit().await?;
    Ok(Json(Data { data: row }))
}

#[utoipa::path(delete, path = "/api/v1/export-templates/{id}", tag = "exports", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted; exports made from it keep their files")))]
pub async fn delete_template(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    changeable(&mut tx, &auth, id).await?;
    repo::delete(&mut tx, auth.tenant_id, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exports what the template names, with the runner's own visibility (a rep running a shared template gets
/// their own records). 202 as `POST /api/v1/exports`.
#[utoipa::path(post, path = "/api/v1/export-templates/{id}/run", tag = "exports", params(("id" = Uuid, Path)),
    responses((status = 202, description = "Queued; poll the Location", body = Data<super::exports::ExportView>,
               headers(("Location" = String, description = "The export to poll")))))]
pub async fn run_template(
    State(state): State<AppState>,
    auth: AuthCtx,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let row = repo::get(&mut tx, auth.tenant_id, id, auth.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("export template"))?;
    tx.commit().await?;
    let (entity, format) = entity_and_format(Some(&row.entity), Some(&row.format))?;
    let spec = ExportSpec {
        entity,
        format,
        columns: Some(row.columns),
        filters: row.filters.as_object().cloned().unwrap_or_default(),
        sort: row.sort,
        file_name: Some(row.name),
        template_id: Some(row.id),
    };
    start_export(&state, &auth, &headers, spec).await
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/export-templates", get(list_templates).post(create_template))
        .route("/api/v1/export-templates/{id}", get(get_template).patch(update_template).delete(delete_template))
        .route("/api/v1/export-templates/{id}/run", post(run_template))
}
