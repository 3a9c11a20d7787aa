//! Jobs (contract §5): status polling reads Postgres, the source of truth; cancel and retry; the operators'
//! queue overview; and probes, the no-op jobs that check the pipeline end to end.

use super::Data;
use crate::auth::{AdminCtx, AuthCtx};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use crm_shared::db::jobs::{self, JobRow, NewJob, QueueCounts};
use crm_shared::domain::validation::{ErrorCode, Validator};
use crm_shared::jobs::{JobKind, JobStatus, JobTask, ProbePayload, Queue};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    pub done: i64,
    pub total: Option<i64>,
    /// 0 to 100, or null while the total is unknown.
    pub percent: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobResource {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    #[schema(value_type = JobKind)]
    pub kind: String,
    #[schema(value_type = JobStatus)]
    pub status: String,
    pub progress: Progress,
    pub attempts: i32,
    pub max_attempts: i32,
    pub error: Option<String>,
    pub resource: JobResource,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Set once a running job was asked to stop; it stops at its next checkpoint.
    pub cancel_requested_at: Option<DateTime<Utc>>,
}

impl Progress {
    /// `done` of `total`, with the percentage to one decimal once the total is known.
    pub fn new(done: i64, total: Option<i64>) -> Self {
        let percent =
            total.filter(|total| *total > 0).map(|total| ((done as f64 / total as f64) * 1000.0).round() / 10.0);
        Progress { done, total, percent }
    }
}

impl From<JobRow> for JobView {
    fn from(job: JobRow) -> Self {
        JobView {
            id: job.id,
            kind: job.kind,
            status: job.status,
            progress: Progress::new(job.progress_done, job.progress_total),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            error: job.error,
            resource: JobResource { kind: job.resource_type, id: job.resource_id },
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            cancel_requested_at: job.cancel_requested_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// `import`, `export`, `report`, `email`, `rollup` or `probe`.
    pub kind: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `dead`.
    pub status: Option<String>,
    /// 1 to 100 (default 25).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Always null: job lists change too fast to count; page with `cursor`.
    pub total: Option<i64>,
    pub limit: i64,
    pub offset: i64,
    pub next_cursor: Option<String>,
}

fn encode_cursor(job: &JobView) -> String {
    format!("{}_{}", job.created_at.timestamp_micros(), job.id)
}

fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = cursor.split_once('_')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}

/// The tenant's jobs, newest first (cursor-paged).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobListParams),
    responses((status = 200, description = "A page of jobs", body = JobPage)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiQuery(params): ApiQuery<JobListParams>,
) -> Result<Json<JobPage>, ApiError> {
    let mut validator = Validator::new();
    let kind = validator.field("kind", params.kind, false, |text: String| {
        JobKind::parse(&text).map(Some).ok_or_else(|| {
            crm_shared::domain::validation::Invalid(ErrorCode::InvalidEnum, format!("{text:?} is not a job kind"))
        })
    });
    let status = validator.field("status", params.status, false, |text: String| {
        JobStatus::parse(&text).map(Some).ok_or_else(|| {
            crm_shared::domain::validation::Invalid(ErrorCode::InvalidEnum, format!("{text:?} is not a job status"))
        })
    });
    let limit = params.limit.unwrap_or(super::records::DEFAULT_LIMIT);
    if !(1..=super::records::MAX_LIMIT).contains(&limit) {
        validator.push("limit", ErrorCode::InvalidNumber, "must be between 1 and 100");
    }
    let cursor = match params.cursor.as_deref() {
        None => None,
        Some(text) => {
            let decoded = decode_cursor(text);
            if decoded.is_none() {
                validator.push("cursor", ErrorCode::InvalidValue, "is not a cursor this API returned");
            }
            decoded
        }
    };
    validator.finish()?;
    let (mut tx, _) = state.begin(&auth).await?;
    let rows = jobs::list(&mut tx, auth.tenant_id, auth.own_work_only(), kind, status, cursor, limit).await?;
    tx.commit().await?;
    let items: Vec<JobView> = rows.into_iter().map(JobView::from).collect();
    let next_cursor = (items.len() as i64 == limit).then(|| items.last().map(encode_cursor)).flatten();
    Ok(Json(JobPage { items, total: None, limit, offset: 0, next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The job, as Postgres has it now", body = Data<JobView>)))]
pub async fn get_job(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<JobView>>, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    let job = jobs::get(&mut tx, auth.tenant_id, id, auth.own_work_only())
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tx.commit().await?;
    Ok(Json(Data { data: job.into() }))
}

/// A queued job is cancelled at once and never runs; a running one stops at its next checkpoint.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Cancelled, or cancellation requested", body = Data<JobView>)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<JobView>>, ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let job = jobs::request_cancel(&mut tx, auth.tenant_id, id, auth.own_work_only())
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tx.commit().await?;
    Ok(Json(Data { data: job.into() }))
}

/// Runs a failed or dead job again, with a fresh count of attempts.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 202, description = "Queued again", body = Data<JobAccepted>,
               headers(("Location" = String, description = "The job to poll")))))]
pub async fn retry_job(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    refuse_readonly(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let job = jobs::retry(&mut tx, auth.tenant_id, id, auth.own_work_only())
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tx.commit().await?;
    hand_off(&state, &job).await;
    Ok(accepted(job))
}

fn refuse_readonly(auth: &AuthCtx) -> Result<(), ApiError> {
    if auth.role == crm_shared::domain::enums::Role::Readonly {
        return Err(ApiError::forbidden("the readonly role may not change jobs"));
    }
    Ok(())
}

/// Hands a just-committed job to Redis; on failure the dispatcher does it, so this only logs.
pub async fn hand_off(state: &AppState, job: &JobRow) {
    let Some(queue) = Queue::parse(&job.queue) else { return };
    let task = JobTask { job_id: job.id, tenant_id: job.tenant_id, request_id: job.request_id.clone() };
    if let Err(error) =
        crm_shared::jobs::hand_off_now(&state.db, state.redis.clone(), &state.settings.redis_prefix, queue, vec![task])
            .await
    {
        tracing::warn!(job_id = %job.id, error = %error, "immediate hand-off failed; the dispatcher will hand the job over");
    }
}

/// The answer to work that was queued (contract §2): the job's id twice (`id` and `job_id`, as every 202
/// has both), its status, and the job itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobAccepted {
    pub id: Uuid,
    pub job_id: Uuid,
    #[schema(value_type = JobStatus)]
    pub status: String,
    pub job: JobView,
}

/// `202 Accepted` with the job and where to poll it.
pub fn accepted(job: JobRow) -> Response {
    metrics::counter!("jobs_enqueued_total", "kind" => job.kind.clone()).increment(1);
    let location = format!("/api/v1/jobs/{}", job.id);
    let view = JobView::from(job);
    let body = Data { data: JobAccepted { id: view.id, job_id: view.id, status: view.status.clone(), job: view } };
    let mut headers = HeaderMap::new();
    if let Ok(value) = location.parse() {
        headers.insert(header::LOCATION, value);
    }
    (StatusCode::ACCEPTED, headers, Json(body)).into_response()
}

const MAX_PROBE_STEPS: u32 = 100;
const MAX_PROBE_STEP_MS: u64 = 5_000;
/// The longest a probe may run.
const MAX_PROBE_MS: u64 = 60_000;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// Checkpointed steps (0 to 100; 0 is a no-op).
    #[schema(minimum = 0, maximum = 100)]
    pub steps: Option<u32>,
    /// Milliseconds per step (0 to 5000); steps × step_ms at most 60000.
    #[schema(minimum = 0, maximum = 5000)]
    pub step_ms: Option<u64>,
}

/// Probes one tenant may have queued or running at once.
pub const MAX_PROBES_PER_TENANT: i64 = 4;

/// Enqueues a probe job through the same path as every job: operators check the pipeline end to end. Probes
/// run on the `system` queue, at most `MAX_PROBES_PER_TENANT` per tenant at a time (429 beyond).
#[utoipa::path(post, path = "/api/v1/admin/probes", tag = "operations", request_body = ProbeRequest,
    responses((status = 202, description = "Queued; poll the Location", body = Data<JobAccepted>,
               headers(("Location" = String, description = "The job to poll"))),
              (status = 429, description = "The tenant already has its probes running", body = crate::error::ErrorBody)))]
pub async fn create_probe(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ProbeRequest>,
) -> Result<Response, ApiError> {
    let mut validator = Validator::new();
    // A probe checks the pipeline; it must not be a way to occupy workers (issue 9, finding 5).
    let steps = body.steps.unwrap_or(0);
    if steps > MAX_PROBE_STEPS {
        validator.push("steps", ErrorCode::InvalidNumber, format!("must be at most {MAX_PROBE_STEPS}"));
    }
    let step_ms = body.step_ms.unwrap_or(0);
    if step_ms > MAX_PROBE_STEP_MS {
        validator.push("step_ms", ErrorCode::InvalidNumber, format!("must be at most {MAX_PROBE_STEP_MS}"));
    } else if u64::from(steps) * step_ms > MAX_PROBE_MS {
        validator.push("step_ms", ErrorCode::InvalidNumber, format!("steps × step_ms must be at most {MAX_PROBE_MS}"));
    }
    validator.finish()?;
    let payload = serde_json::to_value(ProbePayload { steps, step_ms, fault: None }).map_err(ApiError::internal)?;
    let request_id = headers.get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let (mut tx, _) = state.begin(&auth).await?;
    // Serialises the count and the insert per tenant, so parallel requests cannot all pass the cap.
    let unfinished = jobs::count_unfinished_locked(&mut tx, auth.tenant_id, JobKind::Probe).await?;
    if unfinished >= MAX_PROBES_PER_TENANT {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "your workspace already has {MAX_PROBES_PER_TENANT} probes queued or running; wait for them to end"
            ),
        )
        .retry_after(5));
    }
    let job = jobs::insert(
        &mut tx,
        auth.tenant_id,
        &NewJob {
            kind: JobKind::Probe,
            payload,
            max_attempts: 3,
            resource: None,
            created_by: Some(auth.user_id),
            request_id,
        },
    )
    .await?;
    tx.commit().await?;
    hand_off(&state, &job).await;
    Ok(accepted(job))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerView {
    /// The process's name (host and pid): shown to the platform operator only (`OPERATOR_TENANT_ID`).
    pub name: Option<String>,
    pub queues: Vec<String>,
    pub concurrency: Option<u64>,
    pub last_heartbeat_at: Option<String>,
    pub started_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    #[serde(flatten)]
    pub counts: QueueCounts,
    /// Tasks waiting in Redis, all tenants (the rest of `queued` waits in Postgres for room): platform
    /// operator only.
    pub redis_backlog: Option<i64>,
    pub live_workers: Vec<WorkerView>,
}

/// Per queue: the caller's tenant's jobs (queued, running, succeeded and failed in the last hour, dead) and
/// the workers serving it. Admins of the operator tenant (`OPERATOR_TENANT_ID`) see every tenant's figures,
/// the Redis backlog and the workers' names.
#[utoipa::path(get, path = "/api/v1/admin/queues", tag = "operations",
    responses((status = 200, description = "Per queue: counts and live workers", body = Data<Vec<QueueView>>)))]
pub async fn queues(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
) -> Result<Json<Data<Vec<QueueView>>>, ApiError> {
    let operator = state.settings.operator_tenant_id == Some(auth.tenant_id.as_uuid());
    let (mut tx, _) = state.begin(&auth).await?;
    let counts =
        if operator { jobs::queue_counts_all_tenants(&state.db).await? } else { jobs::queue_counts(&mut tx).await? };
    tx.commit().await?;
    let prefix = &state.settings.redis_prefix;
    let mut redis = state.redis.clone();
    let heartbeats =
        crm_shared::worker_registry::live(&mut redis, prefix).await.map_err(crm_shared::DomainError::from)?;
    let workers: Vec<WorkerView> = heartbeats
        .iter()
        .map(|value| WorkerView {
            name: operator.then(|| value["name"].as_str().unwrap_or_default().to_owned()),
            queues: value["queues"]
                .as_array()
                .map(|q| q.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            concurrency: value["concurrency"].as_u64(),
            last_heartbeat_at: value["last_heartbeat_at"].as_str().map(str::to_owned),
            started_at: value["started_at"].as_str().map(str::to_owned),
        })
        .collect();
    let mut views = Vec::new();
    for queue_counts in counts {
        let redis_backlog = match Queue::parse(&queue_counts.queue).filter(|_| operator) {
            Some(queue) => {
                let config = crm_shared::jobs::queue_config(prefix, queue);
                let result: Result<(i64, i64), _> = redis::pipe()
                    .llen(config.active_jobs_list())
                    .zcard(config.scheduled_jobs_set())
                    .query_async(&mut redis)
                    .await;
                result.ok().map(|(due, scheduled)| due + scheduled)
            }
            None => None,
        };
        let live_workers =
            workers.iter().filter(|worker| worker.queues.contains(&queue_counts.queue)).cloned().collect();
        views.push(QueueView { counts: queue_counts, redis_backlog, live_workers });
    }
    Ok(Json(Data { data: views }))
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/retry", post(retry_job))
        .route("/api/v1/admin/queues", get(queues))
        .route("/api/v1/admin/probes", post(create_probe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        let id = Uuid::now_v7();
        let text = format!("{}_{id}", at.timestamp_micros());
        assert_eq!(decode_cursor(&text), Some((at, id)));
        assert_eq!(decode_cursor("nonsense"), None);
        assert_eq!(decode_cursor("12_not-a-uuid"), None);
    }
}
