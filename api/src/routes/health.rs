//! Liveness, readiness and metrics for operators and load balancers.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub postgres: bool,
    pub redis: bool,
}

/// The process is alive (it answers without touching any dependency).
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// How long each dependency has to answer `/ready`. Without a bound, a stopped Postgres is reported only once
/// the pool's acquire timeout (5 s) has passed (measured: 5.0 s), which is as long as or longer than load
/// balancers and orchestrators wait for the answer (Kubernetes: 1 s by default): they would see a timeout, not
/// the 503 naming what is down.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Postgres and Redis both answer, each within a second; 503 otherwise (with which one is down).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, description = "A dependency is down", body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let postgres = async {
        let select = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db);
        matches!(tokio::time::timeout(READY_CHECK_TIMEOUT, select).await, Ok(Ok(_)))
    };
    let mut redis = state.redis.clone();
    let redis = async move {
        tokio::time::timeout(READY_CHECK_TIMEOUT, crm_shared::redis_conn::ping(&mut redis)).await.unwrap_or(false)
    };
    // Side by side, so the answer takes at most one bound even when both are down.
    let (postgres, redis) = tokio::join!(postgres, redis);
    let ready = postgres && redis;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { status: if ready { "ready" } else { "not_ready" }, postgres, redis }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Job figures come from Postgres and Redis at scrape time, so one scrape of any API replica shows every
    // queue, whichever workers ran the jobs.
    if let Ok(totals) = crm_shared::db::jobs::totals_by_kind_and_status(&state.db).await {
        for (kind, status, count) in totals {
            metrics::gauge!("jobs", "kind" => kind, "status" => status).set(count as f64);
        }
    }
    if let Ok(counts) = crm_shared::db::jobs::queue_counts(&state.db).await {
        for queue in counts {
            metrics::gauge!("queue_depth", "queue" => queue.queue).set(queue.queued as f64);
        }
    }
    let mut redis = state.redis.clone();
    let workers: Result<Vec<String>, _> =
        redis::AsyncCommands::keys(&mut redis, format!("{}:workers:*", state.settings.redis_prefix)).await;
    if let Ok(workers) = workers {
        metrics::gauge!("live_workers").set(workers.len() as f64);
    }
    metrics::gauge!("db_pool_connections").set(f64::from(state.db.size()));
    metrics::gauge!("db_pool_idle_connections").set(state.db.num_idle() as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
