//! Schedules (contract §10): a cron expression in a time zone, an action (a report of §8 or an export
//! template) and the users it goes to. Admins manage every schedule of the tenant; managers the ones they
//! created. Each recipient gets the action computed with their own visibility; the scheduler fires each time
//! exactly once, and `POST /schedules/{id}/run` fires one now.

use super::exports::{ExportSpec, validate};
use super::{Data, ListResponse, page};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use crm_shared::UserId;
use crm_shared::cron_time::CronSchedule;
use crm_shared::db::export_templates;
use crm_shared::db::schedules::{self as repo, RunRow, ScheduleFields, ScheduleRow, Trigger};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator, parse_time_zone};
use crm_shared::exports::{self, ExportFormat};
use crm_shared::report_run::ReportRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Most recipients one schedule has.
const MAX_RECIPIENTS: usize = 50;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    #[schema(required = true, example = "Weekly pipeline")]
    pub name: Option<String>,
    /// Standard 5-field cron: minute hour day-of-month month day-of-week (0 or 7 is Sunday).
    #[schema(required = true, example = "0 8 * * 1")]
    pub cron: Option<String>,
    /// IANA zone the cron is read in (default: the tenant's). A local time skipped by a DST change fires at
    /// the first minute after it; a repeated one fires once.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: Option<String>,
    /// `{"type": "report", "report": "<name of §8>", "params": {...}, "format": "pdf|xlsx|csv"}` or
    /// `{"type": "export", "template_id": "<uuid>"}`. Report params: `start_date`, `end_date`, or `period`
    /// (today, yesterday, last_7_days, last_30_days, previous_week, previous_month, counted from each run in
    /// the recipient's zone), and the report's own (`limit`, `inactive_days`, `days_ahead`). An export
    /// schedule keeps the template as it was when saved (save the schedule again to take a changed template).
    #[schema(required = true, value_type = Object)]
    pub action: Option<Value>,
    /// User ids of the tenant, 1 to 50.
    #[schema(required = true)]
    pub recipients: Option<Vec<Uuid>>,
    /// Send only to recipients with something to report (not all zeros; an export with rows).
    pub send_if_data: Option<bool>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: Uuid,
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    #[schema(value_type = Object)]
    pub action: Value,
    pub recipients: Vec<Uuid>,
    pub send_if_data: bool,
    pub enabled: bool,
    /// When it fires next (null while disabled).
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored action as callers give it: an export schedule by its template id, not the validated query kept
/// for its runs.
fn action_as_given(action: &Value) -> Value {
    match action.get("type").and_then(Value::as_str) {
        Some("export") => json!({ "type": "export", "template_id": action.get("template_id") }),
        _ => action.clone(),
    }
}

impl From<ScheduleRow> for ScheduleView {
    fn from(row: ScheduleRow) -> Self {
        let action = action_as_given(&row.action);
        ScheduleView {
            id: row.id,
            name: row.name,
            cron: row.cron,
            time_zone: row.time_zone,
            action,
            recipients: row.recipients,
            send_if_data: row.send_if_data,
            enabled: row.enabled,
            next_run_at: row.next_run_at,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: Uuid,
    /// The time fired (for `manual`, when it was asked for).
    pub scheduled_for: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    /// `schedule`, `catch_up` (the latest of times missed while no scheduler ran) or `manual`.
    pub trigger: String,
    pub job_id: Option<Uuid>,
    /// queued, running, succeeded, failed, or skipped (nobody was sent anything; `skipped_reason` says why).
    pub status: String,
    pub emails_sent: i32,
    pub skipped_reason: Option<String>,
    /// Per recipient: `{user_id, outcome: emailed|no_data|skipped|failed|export_queued, detail}`.
    #[schema(value_type = Vec<Object>)]
    pub recipients: Value,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<RunRow> for RunView {
    fn from(row: RunRow) -> Self {
        RunView {
            id: row.id,
            scheduled_for: row.scheduled_for,
            fired_at: row.fired_at,
            trigger: row.trigger,
            job_id: row.job_id,
            status: row.status,
            emails_sent: row.emails_sent,
            skipped_reason: row.skipped_reason,
            recipients: row.recipients,
            finished_at: row.finished_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Admins and managers only; a manager is narrowed to the schedules they created.
fn owner_filter(auth: &AuthCtx) -> Result<Option<UserId>, ApiError> {
    match auth.role {
        Role::Admin => Ok(None),
        Role::Manager => Ok(Some(auth.user_id)),
        other => Err(ApiError::forbidden(format!("the {other} role has no schedules; admins and managers do"))),
    }
}

/// Checks a whole schedule (a PATCH merges first) and works out its next time.
async fn check(
    tx: &mut sqlx::PgConnection,
    auth: &AuthCtx,
    locale: &crm_shared::domain::records::TenantLocale,
    body: ScheduleRequest,
) -> Result<ScheduleFields, ApiError> {
    let mut validator = Validator::new();
    let name = body.name.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if name.is_empty() {
        validator.push("name", ErrorCode::MissingRequired, "is required");
    } else if name.chars().count() > 200 || name.chars().any(char::is_control) {
        validator.push("name", ErrorCode::InvalidValue, "must be 1 to 200 characters with no control characters");
    }
    let time_zone = body.time_zone.clone().unwrap_or_else(|| locale.time_zone.name().to_owned());
    let zone = parse_time_zone(&time_zone);
    if zone.is_none() {
        validator.push("time_zone", ErrorCode::InvalidValue, "must be an IANA time zone such as Europe/Berlin");
    }
    let cron_text = body.cron.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let cron = match (cron_text.is_empty(), zone) {
        (true, _) => {
            validator.push("cron", ErrorCode::MissingRequired, "is required");
            None
        }
        (false, Some(zone)) => CronSchedule::parse(&cron_text, zone)
            .map_err(|problem| validator.push("cron", ErrorCode::InvalidValue, problem))
            .ok(),
        (false, None) => None,
    };
    let recipients = body.recipients.clone().unwrap_or_default();
    let mut distinct = recipients.clone();
    distinct.sort();
    distinct.dedup();
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        validator.push("recipients", ErrorCode::MissingRequired, format!("1 to {MAX_RECIPIENTS} user ids"));
    } else if distinct.len() != recipients.len() {
        validator.push("recipients", ErrorCode::InvalidValue, "names a user twice");
    } else {
        let known = repo::existing_users(tx, auth.tenant_id, &distinct).await?;
        if let Some(unknown) = distinct.iter().find(|id| !known.contains(id)) {
            validator.push("recipients", ErrorCode::UnknownUser, format!("{unknown} is no user of this tenant"));
        }
    }
    let action = check_action(tx, auth, locale, body.action.as_ref(), &mut validator).await?;
    validator.finish()?;
    let enabled = body.enabled.unwrap_or(true);
    let next_run_at = if enabled { cron.and_then(|cron| cron.next_after(Utc::now())) } else { None };
    Ok(ScheduleFields {
        name,
        cron: cron_text,
        time_zone,
        action,
        recipients,
        send_if_data: body.send_if_data.unwrap_or(false),
        enabled,
        next_run_at,
    })
}

async fn check_action(
    tx: &mut sqlx::PgConnection,
    auth: &AuthCtx,
    locale: &crm_shared::domain::records::TenantLocale,
    action: Option<&Value>,
    validator: &mut Validator,
) -> Result<Value, ApiError> {
    let Some(action) = action.and_then(Value::as_object) else {
        validator.push("action", ErrorCode::MissingRequired, "is required: {\"type\": \"report\" | \"export\", ...}");
        return Ok(Value::Null);
    };
    match action.get("type").and_then(Value::as_str) {
        Some("report") => {
            let name = action.get("report").and_then(Value::as_str).unwrap_or_default();
            if let Err(problems) = ReportRequest::parse(name, action.get("params").unwrap_or(&Value::Null)) {
                for (field, message) in problems {
                    validator.push(&field, ErrorCode::InvalidValue, message);
                }
            }
            let format = action.get("format").and_then(Value::as_str).unwrap_or("pdf");
            if ExportFormat::parse(format).is_none() {
                validator.push("action.format", ErrorCode::InvalidEnum, "must be pdf, xlsx or csv");
            }
            if let Some(key) = action.keys().find(|key| !["type", "report", "params", "format"].contains(&key.as_str()))
            {
                validator.push(&format!("action.{key}"), ErrorCode::InvalidValue, "unknown field");
            }
            Ok(json!({ "type": "report", "report": name, "params": action.get("params").cloned().unwrap_or(json!({})),
                       "format": format }))
        }
        Some("export") => {
            let template_id = action.get("template_id").and_then(Value::as_str).and_then(|id| id.parse::<Uuid>().ok());
            let Some(template_id) = template_id else {
                validator.push("action.template_id", ErrorCode::MissingRequired, "an export template's id");
                return Ok(Value::Null);
            };
            let Some(template) = export_templates::get(tx, auth.tenant_id, template_id, auth.user_id).await? else {
                validator.push("action.template_id", ErrorCode::InvalidValue, "no such template that you can use");
                return Ok(Value::Null);
            };
            let (Some(entity), Some(format)) =
                (exports::entity_by_name(&template.entity), ExportFormat::parse(&template.format))
            else {
                validator.push("action.template_id", ErrorCode::InvalidValue, "the template is not valid");
                return Ok(Value::Null);
            };
            let spec = ExportSpec {
                entity,
                format,
                columns: Some(template.columns.clone()),
                filters: template.filters.as_object().cloned().unwrap_or_default(),
                sort: template.sort.clone(),
                file_name: Some(template.name.clone()),
                template_id: Some(template.id),
            };
            let (columns, query) = validate(&spec, locale)?;
            let file_name = super::exports::download_name(Some(&template.name), entity, format);
            Ok(json!({ "type": "export", "template_id": template.id, "entity": template.entity,
                       "format": template.format, "columns": columns, "filters": template.filters,
                       "sort": template.sort, "query": query.to_stored(), "file_name": file_name }))
        }
        _ => {
            validator.push("action.type", ErrorCode::InvalidEnum, "must be report or export");
            Ok(Value::Null)
        }
    }
}

#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = ScheduleRequest,
    responses((status = 201, description = "Saved; `next_run_at` says when it fires", body = Data<ScheduleView>)))]
pub async fn create_schedule(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiJson(body): ApiJson<ScheduleRequest>,
) -> Result<(StatusCode, Json<Data<ScheduleView>>), ApiError> {
    owner_filter(&auth)?;
    let (mut tx, session) = state.begin(&auth).await?;
    let fields = check(&mut tx, &auth, &session.locale, body).await?;
    let row = repo::insert(&mut tx, auth.tenant_id, auth.user_id, &fields).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Data { data: row.into() })))
}

#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", params(PageParams),
    responses((status = 200, description = "Admins: every schedule of the tenant; managers: their own", body = ListResponse<ScheduleView>)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<ScheduleView>>, ApiError> {
    let owner = owner_filter(&auth)?;
    let (limit, offset) = page(params.limit, params.offset)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let (rows, total) = repo::list(&mut tx, auth.tenant_id, owner, limit, offset).await?;
    tx.commit().await?;
    Ok(Json(ListResponse { items: rows.into_iter().map(Into::into).collect(), total: Some(total), limit, offset }))
}

async fn visible(tx: &mut sqlx::PgConnection, auth: &AuthCtx, id: Uuid) -> Result<ScheduleRow, ApiError> {
    let owner = owner_filter(auth)?;
    repo::get(tx, auth.tenant_id, id, owner).await?.ok_or_else(|| ApiError::not_found("schedule"))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The schedule, with `next_run_at`", body = Data<ScheduleView>)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<ScheduleView>>, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    let row = visible(&mut tx, &auth, id).await?;
    tx.commit().await?;
    Ok(Json(Data { data: row.into() }))
}

#[utoipa::path(patch, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = Uuid, Path)),
    request_body = ScheduleRequest,
    responses((status = 200, description = "Changed; `next_run_at` is worked out again", body = Data<ScheduleView>)))]
pub async fn update_schedule(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ScheduleRequest>,
) -> Result<Json<Data<ScheduleView>>, ApiError> {
    let (mut tx, session) = state.begin(&auth).await?;
    let row = visible(&mut tx, &auth, id).await?;
    // An export action is checked again from its template (the stored query is the schedule's own).
    let stored_action = action_as_given(&row.action);
    let merged = ScheduleRequest {
        name: body.name.or(Some(row.name)),
        cron: body.cron.or(Some(row.cron)),
        time_zone: body.time_zone.or(Some(row.time_zone)),
        action: body.action.or(Some(stored_action)),
        recipients: body.recipients.or(Some(row.recipients)),
        send_if_data: body.send_if_data.or(Some(row.send_if_data)),
        enabled: body.enabled.or(Some(row.enabled)),
    };
    let fields = check(&mut tx, &auth, &session.locale, merged).await?;
    let row =
        repo::replace(&mut tx, auth.tenant_id, id, &fields).await?.ok_or_else(|| ApiError::not_found("schedule"))?;
    tx.commit().await?;
    Ok(Json(Data { data: row.into() }))
}

#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted with its runs")))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    visible(&mut tx, &auth, id).await?;
    repo::delete(&mut tx, auth.tenant_id, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/schedules/{id}/run", tag = "schedules", params(("id" = Uuid, Path)),
    responses((status = 202, description = "Fired now (trigger `manual`); poll the job or the runs", body = Data<super::jobs::JobAccepted>,
               headers(("Location" = String, description = "The run's job")))))]
pub async fn run_schedule(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    let row = visible(&mut tx, &auth, id).await?;
    let fired = repo::fire(&mut tx, &row, Utc::now(), Trigger::Manual, None, Some(auth.user_id)).await?;
    let (_, job_id) = fired.ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "conflict", "fired twice at once"))?;
    let job = crm_shared::db::jobs::get(&mut tx, auth.tenant_id, job_id, None)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tx.commit().await?;
    super::jobs::hand_off(&state, &job).await;
    Ok(super::jobs::accepted(job))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}/runs", tag = "schedules", params(("id" = Uuid, Path), PageParams),
    responses((status = 200, description = "The schedule's runs, newest first", body = Data<Vec<RunView>>)))]
pub async fn list_runs(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Data<Vec<RunView>>>, ApiError> {
    let (limit, _) = page(params.limit, params.offset)?;
    let (mut tx, _) = state.begin(&auth).await?;
    visible(&mut tx, &auth, id).await?;
    let runs = repo::runs(&mut tx, auth.tenant_id, id, limit).await?;
    tx.commit().await?;
    Ok(Json(Data { data: runs.into_iter().map(Into::into).collect() }))
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/schedules", get(list_schedules).post(create_schedule))
        .route("/api/v1/schedules/{id}", get(get_schedule).patch(update_schedule).delete(delete_schedule))
        .route("/api/v1/schedules/{id}/run", post(run_schedule))
        .route("/api/v1/schedules/{id}/runs", get(list_runs))
}
