//! `GET /api/v1/dashboard/metrics` (contract §8, "Reporting per role"): the pipeline dashboard for admin,
//! manager, sales and readonly over what each sees, the ticket dashboard for support. Answers are cached in
//! Redis per tenant and scope (`X-Cache: hit|miss`); every write they count drops the tenant's entries.

use super::Data;
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crm_shared::dashboard_cache::Lookup;
use crm_shared::db::reports::ReportScope;
use crm_shared::db::reports::dashboard::{self, PipelineDashboard, SupportDashboard};
use crm_shared::domain::access::{Action, Entity};
use crm_shared::domain::enums::Role;
use serde::Serialize;
use utoipa::ToSchema;

/// The dashboard of the caller's role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DashboardMetrics {
    /// admin, manager, sales and readonly.
    Pipeline(PipelineDashboard),
    /// support.
    Support(SupportDashboard),
}

/// Whose answer this is: callers with the same key see the same figures, so they may share a cache entry.
fn cache_scope(auth: &AuthCtx) -> String {
    match auth.role {
        Role::Admin => "tenant".to_owned(),
        // Managers see their own teams; sales and readonly their own records; support's `my_assigned` is theirs.
        Role::Manager => format!("teams:{}", auth.user_id),
        Role::Sales | Role::Readonly => format!("own:{}", auth.user_id),
        Role::Support => format!("support:{}", auth.user_id),
    }
}

#[utoipa::path(get, path = "/api/v1/dashboard/metrics", tag = "dashboard", operation_id = "dashboard_metrics",
    responses(
        (status = 200, description = "The caller's dashboard: the pipeline view (admin, manager, sales, readonly; `per_user` only for admin and manager) or the ticket view (support). Cached up to 60 s per tenant and scope, dropped by any write it counts",
            body = Data<DashboardMetrics>,
            headers(
                ("Cache-Control" = String, description = "`private, max-age=60` (the cache's lifetime)"),
                ("X-Cache" = String, description = "`hit` when served from the cache, else `miss`"),
            )),
    ))]
pub async fn metrics(State(state): State<AppState>, auth: AuthCtx) -> Result<Response, ApiError> {
    // The snapshot is opened first even for a cached answer: it is where a revoked token is refused.
    let (mut tx, session) = state.begin_snapshot(&auth).await?;
    let scope_key = cache_scope(&auth);
    let cache = &state.dashboard_cache;
    let generation = match cache.get(auth.tenant_id, &scope_key).await {
        Lookup::Hit(body) => {
            tx.rollback().await?;
            return Ok(respond(body, "hit", cache.max_age().as_secs()));
        }
        Lookup::Miss { generation } => generation,
    };
    let metrics = if auth.role == Role::Support {
        let viewer = auth.viewer(Entity::Ticket, Action::Read)?;
        let scope = ReportScope { tenant: auth.tenant_id, viewer, time_zone: session.locale.time_zone };
        DashboardMetrics::Support(dashboard::support(&mut tx, &scope).await?)
    } else {
        let viewer = auth.viewer(Entity::Lead, Action::Read)?;
        let scope = ReportScope { tenant: auth.tenant_id, viewer, time_zone: session.locale.time_zone };
        let with_per_user = matches!(auth.role, Role::Admin | Role::Manager);
        DashboardMetrics::Pipeline(dashboard::pipeline(&mut tx, &scope, with_per_user).await?)
    };
    tx.commit().await?;
    let body = serde_json::to_string(&Data { data: metrics }).map_err(ApiError::internal)?;
    if let Some(generation) = generation {
        cache.put(auth.tenant_id, &scope_key, generation, &body).await;
    }
    Ok(respond(body, "miss", cache.max_age().as_secs()))
}

fn respond(body: String, cache_outcome: &'static str, max_age: u64) -> Response {
    let mut response = ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("private, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.insert("x-cache", HeaderValue::from_static(cache_outcome));
    response
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/api/v1/dashboard/metrics", get(metrics))
}
