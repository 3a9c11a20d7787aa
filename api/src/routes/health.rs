//! Liveness, readiness and metrics for operators and load balancers.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
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
        let select = crm_shared::db::ping(&state.db);
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

/// Prometheus text exposition. When `METRICS_TOKEN` is set it asks for `Authorization: Bearer <token>`.
/// A scrape runs no query: the job gauges are refreshed every few seconds by `refresh_job_gauges`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 401, description = "METRICS_TOKEN is set and the request did not carry it",
               body = crate::error::ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if let Some(expected) = &state.settings.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), expected.expose_secret().as_bytes()) {
            return Err(ApiError::unauthorized("send Authorization: Bearer <METRICS_TOKEN>"));
        }
    }
    metrics::gauge!("db_pool_connections").set(f64::from(state.db.size()));
    metrics::gauge!("db_pool_idle_connections").set(state.db.num_idle() as f64);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}

/// How often the API refreshes the job gauges it exposes.
pub const JOB_GAUGES_INTERVAL: Duration = Duration::from_secs(5);

/// Keeps `queue_depth`, `jobs_running` and `live_workers` current, so one scrape of any API replica shows
/// every queue, whichever workers ran the jobs, without a query per scrape.
pub async fn refresh_job_gauges(state: AppState, stop: tokio_util::sync::CancellationToken) {
    loop {
        match crm_shared::db::jobs::live_counts(&state.db).await {
            Ok(counts) => {
                for queue in crm_shared::jobs::Queue::ALL {
                    let count = |status: &str| {
                        counts
                            .iter()
                            .find(|(name, of, _)| name == queue.name() && of == status)
                            .map_or(0.0, |(_, _, count)| *count as f64)
                    };
                    metrics::gauge!("queue_depth", "queue" => queue.name()).set(count("queued"));
                    metrics::gauge!("jobs_running", "queue" => queue.name()).set(count("running"));
                }
            }
            Err(error) => tracing::debug!(%error, "job gauges not refreshed"),
        }
        let mut redis = state.redis.clone();
        if let Ok(workers) = crm_shared::worker_registry::live(&mut redis, &state.settings.redis_prefix).await {
            metrics::gauge!("live_workers").set(workers.len() as f64);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(JOB_GAUGES_INTERVAL) => {}
        }
    }
}
