//! The `jobs` table: the source of truth for every job's status, progress and attempts.
//!
//! The API writes a job in the caller's tenant transaction. Platform bookkeeping (claiming, heartbeats,
//! dispatching, recovery) spans tenants and runs on the owner connection; a job's own work on tenant data
//! runs in a tenant transaction (see `begin_tenant`).

use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use crate::jobs::{JobKind, JobStatus, Queue};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub queue: String,
    pub status: String,
    pub payload: Value,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub error: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub request_id: Option<String>,
    pub run_at: DateTime<Utc>,
    pub worker_name: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str = "id, tenant_id, kind, queue, status, payload, progress_done, progress_total, attempts, \
    max_attempts, error, resource_type, resource_id, created_by, request_id, run_at, worker_name, heartbeat_at, \
    cancel_requested_at, result, created_at, started_at, finished_at";

#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub payload: Value,
    pub max_attempts: i32,
    pub resource: Option<(&'static str, Uuid)>,
    pub created_by: Option<UserId>,
    pub request_id: Option<String>,
}

/// Records a job in the caller's transaction; it reaches Redis after commit (`dispatch`).
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, kind = ?job.kind))]
pub async fn insert(conn: &mut PgConnection, tenant: TenantId, job: &NewJob) -> Result<JobRow, DomainError> {
    let sql = format!(
        "INSERT INTO jobs (id, tenant_id, kind, queue, payload, max_attempts, resource_type, resource_id, created_by, \
         request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {JOB_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(job.kind.as_str())
        .bind(Queue::for_kind(job.kind).name())
        .bind(&job.payload)
        .bind(job.max_attempts)
        .bind(job.resource.map(|(kind, _)| kind))
        .bind(job.resource.map(|(_, id)| id))
        .bind(job.created_by)
        .bind(job.request_id.as_deref())
        .fetch_one(conn)
        .await?)
}

/// Inserts many jobs of one tenant at once (bulk enqueue).
pub async fn insert_many(conn: &mut PgConnection, tenant: TenantId, jobs: &[NewJob]) -> Result<Vec<Uuid>, DomainError> {
    let ids: Vec<Uuid> = jobs.iter().map(|_| new_id()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|job| job.kind.as_str()).collect();
    let queues: Vec<&str> = jobs.iter().map(|job| Queue::for_kind(job.kind).name()).collect();
    let payloads: Vec<Value> = jobs.iter().map(|job| job.payload.clone()).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|job| job.max_attempts).collect();
    let created_by: Vec<Option<Uuid>> = jobs.iter().map(|job| job.created_by.map(UserId::as_uuid)).collect();
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, kind, queue, payload, max_attempts, created_by) \
         SELECT id, $1, kind, queue, payload, max_attempts, created_by \
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::int[], $7::uuid[]) \
              AS j(id, kind, queue, payload, max_attempts, created_by)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&kinds)
    .bind(&queues)
    .bind(&payloads)
    .bind(&max_attempts)
    .bind(&created_by)
    .execute(conn)
    .await?;
    Ok(ids)
}

/// A job being handed to Redis, with the id of the Redis task that will carry it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub request_id: Option<String>,
    pub redis_task_id: String,
}

/// Marks up to `limit` due jobs of a queue that Redis does not have yet as handed over, each with a new Redis
/// task id, in one statement (the rows stay locked until commit). The caller pushes them and commits, or rolls
/// back when the push fails, leaving them for the next pass.
pub async fn dispatch_due(conn: &mut PgConnection, queue: Queue, limit: i64) -> Result<Vec<DueJob>, DomainError> {
    Ok(sqlx::query_as(
        // `id = ANY(ARRAY(...))` rather than a join: the planner cannot know the batch is small and would hash
        // the whole table to join it.
        "UPDATE jobs SET dispatched_at = now(), redis_task_id = gen_random_uuid()::text \
         WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE queue = $1 AND status = 'queued' AND dispatched_at IS NULL \
             AND run_at <= now() ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)) \
         RETURNING id, tenant_id, request_id, redis_task_id",
    )
    .bind(queue.name())
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub async fn mark_dispatched(conn: &mut PgConnection, ids: &[Uuid], task_ids: &[String]) -> Result<(), DomainError> {
    sqlx::query(
        "UPDATE jobs SET dispatched_at = now(), redis_task_id = t.task_id \
         FROM unnest($1::uuid[], $2::text[]) AS t(id, task_id) WHERE jobs.id = t.id",
    )
    .bind(ids)
    .bind(task_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Jobs handed to Redis at least `older_than` ago and still waiting: candidates for a loss check.
pub async fn waiting_in_redis(
    pool: &PgPool,
    queue: Queue,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT id, redis_task_id FROM jobs WHERE queue = $1 AND status = 'queued' AND dispatched_at IS NOT NULL \
         AND redis_task_id IS NOT NULL AND dispatched_at < now() - make_interval(secs => $2) \
         ORDER BY dispatched_at LIMIT $3",
    )
    .bind(queue.name())
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Forgets the hand-off of jobs Redis lost, so the dispatcher hands them over again.
pub async fn undispatch(pool: &PgPool, ids: &[Uuid]) -> Result<u64, DomainError> {
    Ok(sqlx::query(
        "UPDATE jobs SET dispatched_at = NULL, redis_task_id = NULL WHERE id = ANY($1) AND status = 'queued'",
    )
    .bind(ids)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Takes jobs for a worker: only queued, uncancelled jobs are claimed, and each attempt is counted before
/// any work starts, so a job that kills its worker is counted too. Jobs missing from the answer are running
/// elsewhere, done or cancelled.
#[tracing::instrument(skip_all, fields(jobs = job_ids.len()))]
pub async fn claim_many(pool: &PgPool, job_ids: &[Uuid], worker: &str) -> Result<Vec<JobRow>, DomainError> {
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_name = $2, heartbeat_at = now(), \
         started_at = COALESCE(started_at, now()), updated_at = now() \
         WHERE id = ANY($1) AND status = 'queued' AND cancel_requested_at IS NULL RETURNING {JOB_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(job_ids).bind(worker).fetch_all(pool).await?)
}

/// Records many successes at once, each under the attempt it claimed; returns the jobs this worker still held
/// (and so ended).
#[tracing::instrument(skip_all, fields(jobs = leases.len()))]
pub async fn finish_succeeded_many(
    pool: &PgPool,
    leases: &[(Uuid, i32)],
    results: &[Option<Value>],
    worker: &str,
) -> Result<Vec<Uuid>, DomainError> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = leases.iter().copied().unzip();
    Ok(sqlx::query_scalar(
        "UPDATE jobs SET status = 'succeeded', result = t.result, error = NULL, finished_at = now(), updated_at = now(), \
             progress_done = GREATEST(jobs.progress_done, COALESCE(jobs.progress_total, jobs.progress_done)) \
         FROM unnest($1::uuid[], $2::jsonb[], $4::int[]) AS t(id, result, attempt) \
         WHERE jobs.id = t.id AND jobs.status = 'running' AND jobs.worker_name = $3 AND jobs.attempts = t.attempt \
         RETURNING jobs.id",
    )
    .bind(&ids)
    .bind(results)
    .bind(worker)
    .bind(&attempts)
    .fetch_all(pool)
    .await?)
}

/// What a worker holds while it runs a job: the job, under the attempt it claimed. Every write the run makes
/// commits only while the job is still `running` under this lease (`hold_lease` in the same transaction), so a
/// worker that stalled past the heartbeat window, lost the job to another worker and woke up can commit
/// nothing more of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    pub job_id: Uuid,
    pub attempt: i32,
    pub worker: String,
}

/// A running job's heartbeat answer: still held by this lease, and whether its cancellation was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct HeldJob {
    pub id: Uuid,
    pub cancel_requested: bool,
}

/// Refreshes the heartbeats of a worker's running jobs, each under the attempt it claimed; returns the jobs
/// still held. A job missing from the answer was taken over (or ended) and must stop here.
pub async fn heartbeat(pool: &PgPool, leases: &[(Uuid, i32)], worker: &str) -> Result<Vec<HeldJob>, DomainError> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = leases.iter().copied().unzip();
    Ok(sqlx::query_as(
        "UPDATE jobs SET heartbeat_at = now() FROM unnest($1::uuid[], $2::int[]) AS h(id, attempt) \
         WHERE jobs.id = h.id AND jobs.attempts = h.attempt AND jobs.status = 'running' AND jobs.worker_name = $3 \
         RETURNING jobs.id, jobs.cancel_requested_at IS NOT NULL AS cancel_requested",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(worker)
    .fetch_all(pool)
    .await?)
}

/// The fence: in the transaction that commits a run's work, checks that the job is still `running` under
/// `lease` and records its progress (`done`, and `total` when known). The row lock this takes holds until
/// commit, so recovery cannot hand the job to another worker in between. `false`: the lease is lost and the
/// caller must roll back.
pub async fn hold_lease(
    conn: &mut PgConnection,
    lease: &JobLease,
    progress: Option<(i64, Option<i64>)>,
) -> Result<bool, DomainError> {
    let held = sqlx::query(
        "UPDATE jobs SET heartbeat_at = now(), updated_at = now(), progress_done = COALESCE($4, progress_done), \
             progress_total = COALESCE($5, progress_total) \
         WHERE id = $1 AND status = 'running' AND attempts = $2 AND worker_name = $3",
    )
    .bind(lease.job_id)
    .bind(lease.attempt)
    .bind(&lease.worker)
    .bind(progress.map(|(done, _)| done))
    .bind(progress.and_then(|(_, total)| total))
    .execute(conn)
    .await?;
    Ok(held.rows_affected() == 1)
}

/// A probe's effect for one step; the primary key (job, step) makes a step written twice an error.
pub async fn record_probe_step(
    conn: &mut PgConnection,
    tenant: TenantId,
    job_id: Uuid,
    step: i64,
    attempt: i32,
    worker: &str,
) -> Result<(), DomainError> {
    sqlx::query(
        "INSERT INTO job_probe_steps (tenant_id, job_id, step, attempt, worker_name) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(job_id)
    .bind(i32::try_from(step).unwrap_or(i32::MAX))
    .bind(attempt)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded(Option<Value>),
    Cancelled,
    /// Will not succeed by trying again (a bad file): failed at once.
    Failed(String),
    /// May succeed later: queued again after `delay`, or `dead` once attempts are used up.
    Retry {
        error: String,
        delay: Duration,
    },
}

/// Ends a run. Only the lease that holds the job may end it (after recovery gave it to another worker or
/// attempt, the old run's word no longer counts). Returns the status the job ended in; `None` when fenced.
#[tracing::instrument(skip_all, fields(job_id = %lease.job_id))]
pub async fn finish(pool: &PgPool, lease: &JobLease, outcome: &Outcome) -> Result<Option<JobStatus>, DomainError> {
    let (job_id, attempt, worker) = (lease.job_id, lease.attempt, lease.worker.as_str());
    let status: Option<String> = match outcome {
        Outcome::Succeeded(result) => {
            let ended = finish_succeeded_many(pool, &[(job_id, attempt)], std::slice::from_ref(result), worker).await?;
            (!ended.is_empty()).then(|| "succeeded".to_owned())
        }
        Outcome::Cancelled => {
            sqlx::query_scalar(
                "UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now() \
             WHERE id = $1 AND status = 'running' AND worker_name = $2 AND attempts = $3 RETURNING status",
            )
            .bind(job_id)
            .bind(worker)
            .bind(attempt)
            .fetch_optional(pool)
            .await?
        }
        Outcome::Failed(error) => {
            sqlx::query_scalar(
                "UPDATE jobs SET status = 'failed', error = $3, finished_at = now(), updated_at = now() \
             WHERE id = $1 AND status = 'running' AND worker_name = $2 AND attempts = $4 RETURNING status",
            )
            .bind(job_id)
            .bind(worker)
            .bind(error)
            .bind(attempt)
            .fetch_optional(pool)
            .await?
        }
        Outcome::Retry { error, delay } => {
            // Cancellation wins: a cancelled job is never queued again (it could not be claimed, and would
            // show `queued` for ever).
            sqlx::query_scalar(
                "UPDATE jobs SET error = $3, updated_at = now(), worker_name = NULL, \
                 status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' \
                               WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                 finished_at = CASE WHEN cancel_requested_at IS NOT NULL OR attempts >= max_attempts THEN now() END, \
                 run_at = now() + make_interval(secs => $4), dispatched_at = NULL, redis_task_id = NULL \
             WHERE id = $1 AND status = 'running' AND worker_name = $2 AND attempts = $5 RETURNING status",
            )
            .bind(job_id)
            .bind(worker)
            .bind(error)
            .bind(delay.as_secs_f64())
            .bind(attempt)
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(status.and_then(|status| JobStatus::parse(&status)))
}

/// Running jobs whose worker stopped beating for `stale_after`: queued again (their attempt stays counted),
/// or `dead` when that was the last attempt. Returns (requeued, dead). A job whose row is locked is committing
/// work under its lease right now (or its worker froze mid-commit, until Postgres ends that idle transaction):
/// it is skipped this round rather than waited for.
#[tracing::instrument(skip_all)]
pub async fn recover_stale(pool: &PgPool, stale_after: Duration) -> Result<(u64, u64), DomainError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "UPDATE jobs SET worker_name = NULL, updated_at = now(), dispatched_at = NULL, redis_task_id = NULL, \
             status = CASE WHEN attempts >= max_attempts THEN 'dead' \
                           WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'queued' END, \
             finished_at = CASE WHEN attempts >= max_attempts OR cancel_requested_at IS NOT NULL THEN now() END, \
             error = CASE WHEN attempts >= max_attempts \
                          THEN format('the worker running it stopped during each of its %s attempts', attempts) \
                          ELSE 'the worker running it stopped; the job will run again' END \
         WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1) \
                      FOR UPDATE SKIP LOCKED) \
           AND status = 'running' AND heartbeat_at < now() - make_interval(secs => $1) RETURNING status",
    )
    .bind(stale_after.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let dead = rows.iter().filter(|status| status.as_str() == "dead").count() as u64;
    Ok((rows.len() as u64 - dead, dead))
}

// ------------------------------------------------------------------ the API's view (tenant transactions)

/// Who sees a job when `seen_by` is set: whoever started it, and for an import's job whoever started the import
/// (an admin's retry of a rep's import is still the rep's to watch). `param` is the placeholder holding the user.
fn seen_by_condition(param: &str) -> String {
    format!(
        "({param}::uuid IS NULL OR created_by = {param} OR (resource_type = 'import' AND resource_id IN \
         (SELECT i.id FROM imports i WHERE i.tenant_id = jobs.tenant_id AND i.created_by = {param})))"
    )
}

/// `seen_by`: only a job that user may see (everyone but admins sees only their own); `None` for any.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    seen_by: Option<Uuid>,
) -> Result<Option<JobRow>, DomainError> {
    let sql =
        format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2 AND {}", seen_by_condition("$3"));
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).bind(seen_by).fetch_optional(conn).await?)
}

/// Newest first. `before` is the cursor: the (created_at, id) of the last job of the previous page. `seen_by`
/// as in `get`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    seen_by: Option<Uuid>,
    kind: Option<JobKind>,
    status: Option<JobStatus>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<JobRow>, DomainError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND ($2::text IS NULL OR kind = $2) \
         AND ($3::text IS NULL OR status = $3) AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
         AND {} ORDER BY created_at DESC, id DESC LIMIT $6",
        seen_by_condition("$7")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(kind.map(JobKind::as_str))
        .bind(status.map(JobStatus::as_str))
        .bind(before.map(|(at, _)| at))
        .bind(before.map(|(_, id)| id))
        .bind(limit)
        .bind(seen_by)
        .fetch_all(conn)
        .await?)
}

/// Cancels a job: a queued one at once (it will never run), a running one at its next checkpoint.
/// `None` when the job is not the tenant's; `Err(Conflict)` when it has already ended.
pub async fn request_cancel(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    seen_by: Option<Uuid>,
) -> Result<Option<JobRow>, DomainError> {
    let sql = format!(
        "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, now()), updated_at = now(), \
             status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
             finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END \
         WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'running') AND {} RETURNING {JOB_COLUMNS}",
        seen_by_condition("$3")
    );
    if let Some(row) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).bind(seen_by).fetch_optional(&mut *conn).await?
    {
        return Ok(Some(row));
    }
    match get(conn, tenant, id, seen_by).await? {
        None => Ok(None),
        Some(job) => {
            Err(DomainError::Conflict { message: format!("the job has already ended ({})", job.status), field: None })
        }
    }
}

/// Runs a failed or dead job again from a clean slate of attempts.
pub async fn retry(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    seen_by: Option<Uuid>,
) -> Result<Option<JobRow>, DomainError> {
    let sql = format!(
        "UPDATE jobs SET status = 'queued', attempts = 0, error = NULL, run_at = now(), dispatched_at = NULL, \
             redis_task_id = NULL, worker_name = NULL, cancel_requested_at = NULL, finished_at = NULL, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND status IN ('failed', 'dead') AND {} RETURNING {JOB_COLUMNS}",
        seen_by_condition("$3")
    );
    if let Some(row) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).bind(seen_by).fetch_optional(&mut *conn).await?
    {
        return Ok(Some(row));
    }
    match get(conn, tenant, id, seen_by).await? {
        None => Ok(None),
        Some(job) => Err(DomainError::Conflict {
            message: format!("only failed or dead jobs can be retried; this one is {}", job.status),
            field: None,
        }),
    }
}

/// Per queue: jobs by status now, and finished in the last hour (operators' view, all tenants).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct QueueCounts {
    pub queue: String,
    pub queued: i64,
    pub running: i64,
    pub succeeded_last_hour: i64,
    pub failed_last_hour: i64,
    pub dead: i64,
}

const QUEUE_COUNTS: &str = "SELECT q.queue, \
       (SELECT count(*) FROM jobs WHERE queue = q.queue AND status = 'queued') AS queued, \
       (SELECT count(*) FROM jobs WHERE queue = q.queue AND status = 'running') AS running, \
       (SELECT count(*) FROM jobs WHERE queue = q.queue AND status = 'succeeded' AND finished_at > now() - interval '1 hour') AS succeeded_last_hour, \
       (SELECT count(*) FROM jobs WHERE queue = q.queue AND status = 'failed' AND finished_at > now() - interval '1 hour') AS failed_last_hour, \
       (SELECT count(*) FROM jobs WHERE queue = q.queue AND status = 'dead') AS dead \
     FROM unnest(ARRAY['imports', 'exports', 'reports', 'emails', 'system']) AS q(queue)";

/// The tenant's jobs of `kind` that are queued or running. Takes a transaction-long advisory lock per tenant
/// and kind first, so concurrent callers that count and then insert are serialised.
pub async fn count_unfinished_locked(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: JobKind,
) -> Result<i64, DomainError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))")
        .bind(tenant)
        .bind(kind.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = $2 AND status IN ('queued', 'running')",
    )
    .bind(tenant)
    .bind(kind.as_str())
    .fetch_one(conn)
    .await?)
}

/// Every tenant's jobs per queue: the platform operator's view.
pub async fn queue_counts_all_tenants(pool: &PgPool) -> Result<Vec<QueueCounts>, DomainError> {
    Ok(sqlx::query_as(QUEUE_COUNTS).fetch_all(pool).await?)
}

/// The tenant's own jobs per queue (row-level security in a tenant transaction leaves only them).
pub async fn queue_counts(conn: &mut PgConnection) -> Result<Vec<QueueCounts>, DomainError> {
    Ok(sqlx::query_as(QUEUE_COUNTS).fetch_all(conn).await?)
}

/// Queued and running jobs per queue, all tenants, for the metrics gauges. Reads only the live part of the
/// (queue, status, finished_at) index, however many finished jobs the table holds.
pub async fn live_counts(pool: &PgPool) -> Result<Vec<(String, String, i64)>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT queue, status, count(*) FROM jobs WHERE status IN ('queued', 'running') GROUP BY queue, status",
    )
    .fetch_all(pool)
    .await?)
}
