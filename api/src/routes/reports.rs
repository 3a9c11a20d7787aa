//! Reports (contract §8): `GET /api/v1/reports/{name}`, ten of them, each computed in one read-only snapshot
//! over exactly what the caller's lists show. Support has no reports (403); `user_id` narrows a report to
//! what one user sees as a sales rep, for admins (any user) and managers (their teams' members).

use super::Data;
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use chrono::{Duration, NaiveDate};
use crm_shared::db::reports::activity::{
    self, ClientRetentionReport, FollowUpsReport, UpcomingTasksReport, UserActivityReport,
};
use crm_shared::db::reports::leads::{self, ConversionReport, LeadPerson, LeadSourceReport, StatusCount};
use crm_shared::db::reports::projects::{
    self, ProjectPerformanceReport, ProjectStatusFigures, RevenueByClientReport, RevenueForecastReport,
};
use crm_shared::db::reports::{self, DayRange, FIRST_DAY, LAST_DAY, ReportScope};
use crm_shared::db::visibility::Viewer;
use crm_shared::db::{Session, Tx};
use crm_shared::domain::access::{self, Action, Entity};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use crm_shared::report_run::REPORT_NAMES;

/// The parameters every dated report takes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// First day counted (`YYYY-MM-DD`, a day in the tenant's time zone, inclusive).
    #[param(format = Date)]
    pub start_date: Option<String>,
    /// Last day counted (`YYYY-MM-DD`, inclusive).
    #[param(format = Date)]
    pub end_date: Option<String>,
    /// Count only what this user sees as a sales rep (records they created or own). Admins: any user of the
    /// tenant; managers: themselves or a member of their teams; other roles 403.
    pub user_id: Option<Uuid>,
}

/// The parameter of the reports without a date range.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserParam {
    /// Count only what this user sees as a sales rep (admins: any user; managers: their teams' members).
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevenueParams {
    /// Clients listed, 1 to 100 (default 25).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowUpParams {
    /// A client or lead is inactive after this many days without an interaction, 1 to 3650 (default 30).
    #[param(minimum = 1, maximum = 3650)]
    pub inactive_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpcomingParams {
    /// Days ahead to look, 1 to 90 (default 7).
    #[param(minimum = 1, maximum = 90)]
    pub days_ahead: Option<i64>,
}

/// A report's scope: who counts as the viewer, and in which time zone.
struct Prepared {
    tx: Tx,
    scope: ReportScope,
}

/// Checks the caller may run reports, resolves `user_id`, and opens the report's snapshot.
async fn prepare(state: &AppState, auth: &AuthCtx, user_id: Option<Uuid>) -> Result<Prepared, ApiError> {
    if auth.role == Role::Support {
        return Err(ApiError::forbidden("the support role has no reports; its figures are on the dashboard"));
    }
    let scope = access::scope(auth.role, Entity::Lead, Action::Read)
        .ok_or_else(|| ApiError::forbidden(format!("the {} role has no reports", auth.role)))?;
    let caller = Viewer { user_id: auth.user_id, scope };
    if user_id.is_some() && !matches!(auth.role, Role::Admin | Role::Manager) {
        return Err(ApiError::forbidden("only admins and managers may report on a user (user_id)"));
    }
    let (mut tx, session): (Tx, Session) = state.begin_snapshot(auth).await?;
    let viewer = match user_id {
        None => caller,
        Some(user) => {
            if !reports::may_report_on(&mut tx, auth.tenant_id, &caller, user).await? {
                return Err(if auth.role == Role::Admin {
                    ApiError::field("user_id", "no such user in this tenant")
                } else {
                    ApiError::forbidden("a manager may report only on themselves and the members of their teams")
                });
            }
            Viewer::as_sales_rep(crm_shared::UserId(user))
        }
    };
    Ok(Prepared { tx, scope: ReportScope { tenant: auth.tenant_id, viewer, time_zone: session.locale.time_zone } })
}

/// `start_date` and `end_date`, each a `YYYY-MM-DD` day, the end not before the start.
fn day_range(params: &ReportParams) -> Result<DayRange, ApiError> {
    let mut validator = Validator::new();
    let mut day = |field: &str, value: &Option<String>| -> Option<NaiveDate> {
        let text = value.as_deref()?.trim();
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) if (FIRST_DAY..=LAST_DAY).contains(&day) => Some(day),
            _ => {
                validator.push(field, ErrorCode::InvalidDate, format!("{text:?} is not a day (use YYYY-MM-DD)"));
                None
            }
        }
    };
    let range = DayRange { start: day("start_date", &params.start_date), end: day("end_date", &params.end_date) };
    if let (Some(start), Some(end)) = (range.start, range.end)
        && end < start
    {
        validator.push("end_date", ErrorCode::InvalidDate, "must not be before start_date");
    }
    validator.finish()?;
    Ok(range)
}

fn bounded(validator: &mut Validator, field: &str, value: Option<i64>, default: i64, max: i64) -> i64 {
    let value = value.unwrap_or(default);
    if !(1..=max).contains(&value) {
        validator.push(field, ErrorCode::InvalidNumber, format!("must be between 1 and {max}"));
    }
    value
}

async fn finish<T>(prepared: Prepared, report: T) -> Result<Json<Data<T>>, ApiError> {
    prepared.tx.commit().await?;
    Ok(Json(Data { data: report }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineReport {
    /// Leads per status, all five in contract order, zeros included.
    pub leads: Vec<StatusCount>,
    /// Projects per status, all four in contract order.
    pub projects: Vec<ProjectStatusFigures>,
}

#[utoipa::path(get, path = "/api/v1/reports/pipeline", tag = "reports", operation_id = "report_pipeline",
    params(ReportParams),
    responses((status = 200, description = "Leads and projects created in the range, by status", body = Data<PipelineReport>)))]
pub async fn pipeline(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<Data<PipelineReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let range = day_range(&params)?;
    let groups = leads::lead_groups(&mut prepared.tx, &prepared.scope, range, LeadPerson::Nobody).await?;
    let projects = projects::by_status(&mut prepared.tx, &prepared.scope, range).await?;
    finish(prepared, PipelineReport { leads: leads::by_status(&groups), projects }).await
}

#[utoipa::path(get, path = "/api/v1/reports/lead-source", tag = "reports", operation_id = "report_lead_source",
    params(ReportParams),
    responses((status = 200, description = "Leads created in the range, per source", body = Data<LeadSourceReport>)))]
pub async fn lead_source(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<Data<LeadSourceReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let range = day_range(&params)?;
    let groups = leads::lead_groups(&mut prepared.tx, &prepared.scope, range, LeadPerson::Nobody).await?;
    finish(prepared, leads::lead_sources(&groups)).await
}

#[utoipa::path(get, path = "/api/v1/reports/conversion-rate", tag = "reports", operation_id = "report_conversion_rate",
    params(ReportParams),
    responses((status = 200, description = "Conversion of leads created in the range, overall and per owner", body = Data<ConversionReport>)))]
pub async fn conversion_rate(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<Data<ConversionReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let range = day_range(&params)?;
    let groups = leads::lead_groups(&mut prepared.tx, &prepared.scope, range, LeadPerson::Owner).await?;
    let emails = reports::user_emails(&mut prepared.tx, auth.tenant_id).await?;
    finish(prepared, leads::conversion(&groups, &emails)).await
}

#[utoipa::path(get, path = "/api/v1/reports/revenue-by-client", tag = "reports", operation_id = "report_revenue_by_client",
    params(ReportParams, RevenueParams),
    responses((status = 200, description = "Non-cancelled projects created in the range, per client", body = Data<RevenueByClientReport>)))]
pub async fn revenue_by_client(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
    ApiQuery(extra): ApiQuery<RevenueParams>,
) -> Result<Json<Data<RevenueByClientReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let range = day_range(&params)?;
    let mut validator = Validator::new();
    let limit = bounded(&mut validator, "limit", extra.limit, 25, 100);
    validator.finish()?;
    let report = projects::revenue_by_client(&mut prepared.tx, &prepared.scope, range, limit).await?;
    finish(prepared, report).await
}

#[utoipa::path(get, path = "/api/v1/reports/user-activity", tag = "reports", operation_id = "report_user_activity",
    params(ReportParams),
    responses((status = 200, description = "Per active user in scope (admin: the tenant; manager: their teams; with user_id: that user), by email", body = Data<UserActivityReport>)))]
pub async fn user_activity(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<Data<UserActivityReport>>, ApiError> {
    if !matches!(auth.role, Role::Admin | Role::Manager) {
        return Err(ApiError::forbidden("only admins and managers see user activity"));
    }
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let range = day_range(&params)?;
    let report = activity::user_activity(&mut prepared.tx, &prepared.scope, range).await?;
    finish(prepared, report).await
}

#[utoipa::path(get, path = "/api/v1/reports/follow-ups", tag = "reports", operation_id = "report_follow_ups",
    params(UserParam, FollowUpParams),
    responses((status = 200, description = "Overdue follow-ups, and clients and leads gone quiet (never contacted first, oldest record first; then the longest silent); at most 100 each", body = Data<FollowUpsReport>)))]
pub async fn follow_ups(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiQuery(extra): ApiQuery<FollowUpParams>,
) -> Result<Json<Data<FollowUpsReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let mut validator = Validator::new();
    let inactive_days = bounded(&mut validator, "inactive_days", extra.inactive_days, 30, 3650);
    validator.finish()?;
    let report = activity::follow_ups(&mut prepared.tx, &prepared.scope, inactive_days as i32).await?;
    finish(prepared, report).await
}

#[utoipa::path(get, path = "/api/v1/reports/client-retention", tag = "reports", operation_id = "report_client_retention",
    params(ReportParams),
    responses((status = 200, description = "Clients by status now, with their interactions by contact date in the range (default: the last 30 days, today included)", body = Data<ClientRetentionReport>)))]
pub async fn client_retention(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<Data<ClientRetentionReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let mut range = day_range(&params)?;
    if range.is_all_time() {
        let today = prepared.scope.today();
        range = DayRange { start: Some(today - Duration::days(29)), end: Some(today) };
    }
    let report = activity::client_retention(&mut prepared.tx, &prepared.scope, range).await?;
    finish(prepared, report).await
}

#[utoipa::path(get, path = "/api/v1/reports/project-performance", tag = "reports", operation_id = "report_project_performance",
    params(ReportParams),
    responses((status = 200, description = "Projects created in the range: won, lost, pending, rates and averages", body = Data<ProjectPerformanceReport>)))]
pub async fn project_performance(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<Data<ProjectPerformanceReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let range = day_range(&params)?;
    let report = projects::performance(&mut prepared.tx, &prepared.scope, range).await?;
    finish(prepared, report).await
}

#[utoipa::path(get, path = "/api/v1/reports/upcoming-tasks", tag = "reports", operation_id = "report_upcoming_tasks",
    params(UserParam, UpcomingParams),
    responses((status = 200, description = "Open interactions due (contact date or follow-up) between now and days_ahead, earliest first, at most 100", body = Data<UpcomingTasksReport>)))]
pub async fn upcoming_tasks(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiQuery(extra): ApiQuery<UpcomingParams>,
) -> Result<Json<Data<UpcomingTasksReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let mut validator = Validator::new();
    let days_ahead = bounded(&mut validator, "days_ahead", extra.days_ahead, 7, 90);
    validator.finish()?;
    let report = activity::upcoming_tasks(&mut prepared.tx, &prepared.scope, days_ahead as i32).await?;
    finish(prepared, report).await
}

#[utoipa::path(get, path = "/api/v1/reports/revenue-forecast", tag = "reports", operation_id = "report_revenue_forecast",
    params(ReportParams),
    responses((status = 200, description = "Non-cancelled projects closing in the range, weighted by status, and per close month", body = Data<RevenueForecastReport>)))]
pub async fn revenue_forecast(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<Data<RevenueForecastReport>>, ApiError> {
    let mut prepared = prepare(&state, &auth, params.user_id).await?;
    let range = day_range(&params)?;
    let report = projects::revenue_forecast(&mut prepared.tx, &prepared.scope, range).await?;
    finish(prepared, report).await
}

/// A report name that is not one of the ten.
async fn unknown_report() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no such report; the reports are: {}", REPORT_NAMES.join(", ")),
    )
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/reports/pipeline", get(pipeline))
        .route("/api/v1/reports/lead-source", get(lead_source))
        .route("/api/v1/reports/conversion-rate", get(conversion_rate))
        .route("/api/v1/reports/revenue-by-client", get(revenue_by_client))
        .route("/api/v1/reports/user-activity", get(user_activity))
        .route("/api/v1/reports/follow-ups", get(follow_ups))
        .route("/api/v1/reports/client-retention", get(client_retention))
        .route("/api/v1/reports/project-performance", get(project_performance))
        .route("/api/v1/reports/upcoming-tasks", get(upcoming_tasks))
        .route("/api/v1/reports/revenue-forecast", get(revenue_forecast))
        .route("/api/v1/reports/{name}", get(unknown_report))
}
