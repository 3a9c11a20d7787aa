//! The admin outbox (`GET /api/v1/emails`) and the built-in schedules (`/api/v1/admin/system-schedules`),
//! contract §10.

use super::Data;
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use crm_shared::cron_time::CronSchedule;
use crm_shared::db::emails::{self, EmailRow};
use crm_shared::db::jobs::{self, NewJob};
use crm_shared::db::maintenance;
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator};
use crm_shared::email::EmailKind;
use crm_shared::jobs::JobKind;
use crm_shared::maintenance::SYSTEM_SCHEDULES;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

fn admin_only(auth: &AuthCtx) -> Result<(), ApiError> {
    if auth.role == Role::Admin { Ok(()) } else { Err(ApiError::forbidden("only admins may do this")) }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailView {
    pub id: Uuid,
    pub to: String,
    pub to_user_id: Option<Uuid>,
    pub subject: String,
    #[schema(value_type = EmailKind)]
    pub kind: String,
    /// queued, sent, failed, or held (no SMTP_URL; sent once a worker has it).
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    /// `[{file_name, content_type, size}]`
    #[schema(value_type = Vec<Object>)]
    pub attachments: serde_json::Value,
    pub schedule_run_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<EmailRow> for EmailView {
    fn from(row: EmailRow) -> Self {
        let attachments = row
            .attachments
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|file| {
                        json!({ "file_name": file.get("file_name"), "content_type": file.get("content_type"),
                                        "size": file.get("size") })
                    })
                    .collect()
            })
            .unwrap_or_default();
        EmailView {
            id: row.id,
            to: row.to_address,
            to_user_id: row.to_user_id,
            subject: row.subject,
            kind: row.kind,
            status: row.status,
            attempts: row.attempts,
            error: row.error,
            attachments,
            schedule_run_id: row.schedule_run_id,
            created_at: row.created_at,
            sent_at: row.sent_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxParams {
    /// queued, sent, failed or held.
    pub status: Option<String>,
    /// An email kind (import_ended, export_ready, ticket_created, …).
    pub kind: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/emails", tag = "emails", params(OutboxParams),
    responses((status = 200, description = "The tenant's outbox, newest first (admins)", body = Data<Vec<EmailView>>)))]
pub async fn list_emails(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<OutboxParams>,
) -> Result<Json<Data<Vec<EmailView>>>, ApiError> {
    admin_only(&auth)?;
    let mut validator = Validator::new();
    let status = params.status.as_deref().map(str::trim);
    if status.is_some_and(|status| !["queued", "sent", "failed", "held"].contains(&status)) {
        validator.push("status", ErrorCode::InvalidEnum, "must be queued, sent, failed or held");
    }
    let kind = params.kind.as_deref().map(str::trim);
    if kind.is_some_and(|kind| EmailKind::parse(kind).is_none()) {
        let kinds: Vec<&str> = EmailKind::ALL.iter().map(|kind| kind.as_str()).collect();
        validator.push("kind", ErrorCode::InvalidEnum, format!("must be one of {}", kinds.join(", ")));
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        validator.push("limit", ErrorCode::InvalidNumber, "must be between 1 and 200");
    }
    validator.finish()?;
    let (mut tx, _) = state.begin(&auth).await?;
    let rows = emails::list(&mut tx, auth.tenant_id, status, kind, limit).await?;
    tx.commit().await?;
    Ok(Json(Data { data: rows.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemScheduleView {
    pub name: String,
    /// Standard cron, in UTC.
    pub cron: String,
    pub description: String,
    /// Whether running it now for a tenant touches only that tenant (the others are tenant-free passes).
    pub per_tenant: bool,
    pub next_run_at: Option<DateTime<Utc>>,
    /// The latest time it fired (any scheduler), when it finished, and its error if it failed.
    pub last_scheduled_for: Option<DateTime<Utc>>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/admin/system-schedules", tag = "emails",
    responses((status = 200, description = "The built-in schedules, always on (admins)", body = Data<Vec<SystemScheduleView>>)))]
pub async fn list_system_schedules(
    State(state): State<AppState>,
    auth: AuthCtx,
) -> Result<Json<Data<Vec<SystemScheduleView>>>, ApiError> {
    admin_only(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let runs = maintenance::latest_system_runs(&mut tx).await?;
    tx.commit().await?;
    let now = Utc::now();
    let views = SYSTEM_SCHEDULES
        .iter()
        .map(|schedule| {
            let last = runs.iter().find(|run| run.name == schedule.name);
            SystemScheduleView {
                name: schedule.name.into(),
                cron: schedule.cron.into(),
                description: schedule.description.into(),
                per_tenant: schedule.per_tenant,
                next_run_at: CronSchedule::parse(schedule.cron, chrono_tz::UTC)
                    .ok()
                    .and_then(|cron| cron.next_after(now)),
                last_scheduled_for: last.map(|run| run.scheduled_for),
                last_finished_at: last.and_then(|run| run.finished_at),
                last_error: last.and_then(|run| run.error.clone()),
            }
        })
        .collect();
    Ok(Json(Data { data: views }))
}

#[utoipa::path(post, path = "/api/v1/admin/system-schedules/{name}/run", tag = "emails",
    params(("name" = String, Path, description = "rollups, metric-refresh, ticket-cleanup, file-expiry or job-pruning")),
    responses((status = 202, description = "Runs now, for the caller's tenant where it is per tenant", body = Data<super::jobs::JobAccepted>,
               headers(("Location" = String, description = "The job")))))]
pub async fn run_system_schedule(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    admin_only(&auth)?;
    let schedule = crm_shared::maintenance::by_name(&name).ok_or_else(|| ApiError::not_found("built-in schedule"))?;
    let (mut tx, _) = state.begin(&auth).await?;
    let job = jobs::insert(
        &mut tx,
        auth.tenant_id,
        &NewJob {
            kind: JobKind::Maintenance,
            payload: json!({ "name": schedule.name }),
            max_attempts: 3,
            resource: None,
            created_by: Some(auth.user_id),
            request_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    super::jobs::hand_off(&state, &job).await;
    Ok(super::jobs::accepted(job))
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/emails", get(list_emails))
        .route("/api/v1/admin/system-schedules", get(list_system_schedules))
        .route("/api/v1/admin/system-schedules/{name}/run", post(run_system_schedule))
}
