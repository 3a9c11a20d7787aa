//! Job vocabulary shared by the API (which records and enqueues jobs) and the worker (which runs them). The
//! values match the `jobs` table's CHECK constraints and contract §5.

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Import,
    Export,
    Report,
    Email,
    Rollup,
    /// A no-op, or a few checkpointed steps: checks the pipeline end to end (operators, tests, benchmarks).
    Probe,
    /// A built-in schedule run now for one tenant (`POST /api/v1/admin/system-schedules/{name}/run`).
    Maintenance,
}

impl JobKind {
    pub const ALL: [JobKind; 7] = [
        JobKind::Import,
        JobKind::Export,
        JobKind::Report,
        JobKind::Email,
        JobKind::Rollup,
        JobKind::Probe,
        JobKind::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Import => "import",
            JobKind::Export => "export",
            JobKind::Report => "report",
            JobKind::Email => "email",
            JobKind::Rollup => "rollup",
            JobKind::Probe => "probe",
            JobKind::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text.trim())
    }
}

/// A job's life: `queued` → `running` → one of the final states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text.trim())
    }
}

/// What travels through Redis: only the job's identity. Everything else is read from Postgres when the job
/// is claimed, so a stale or duplicated delivery can do no harm.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobTask {
    pub job_id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    /// The request that enqueued the job, carried into the worker's logs.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The payload of a probe job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProbePayload {
    /// Checkpointed steps (0: a no-op).
    #[serde(default)]
    pub steps: u32,
    /// Time each step takes, in milliseconds.
    #[serde(default)]
    pub step_ms: u64,
    /// A fault to inject; honoured only by workers started with `CRM_FAULT_INJECTION=1` (tests).
    #[serde(default)]
    pub fault: Option<ProbeFault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFault {
    /// Fails for good at once.
    Permanent,
    /// Fails the first attempt, succeeds on the next.
    TransientOnce,
    /// Kills its worker process at the first step, every time.
    CrashWorker,
}

/// The Redis queues, one per family of job kinds, so a slow export never delays an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    Imports,
    Exports,
    Reports,
    Emails,
    /// Operators' probes: on a queue of their own, so a probe never waits behind, or holds up, a tenant's work.
    System,
}

impl Queue {
    pub const ALL: [Queue; 5] = [Queue::Imports, Queue::Exports, Queue::Reports, Queue::Emails, Queue::System];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Imports => "imports",
            Queue::Exports => "exports",
            Queue::Reports => "reports",
            Queue::Emails => "emails",
            Queue::System => "system",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|queue| queue.name() == name.trim())
    }

    /// Where a kind of job runs. Rollups refresh report figures, so they share the reports queue.
    pub fn for_kind(kind: JobKind) -> Self {
        match kind {
            JobKind::Import => Queue::Imports,
            JobKind::Export => Queue::Exports,
            JobKind::Report | JobKind::Rollup => Queue::Reports,
            JobKind::Email => Queue::Emails,
            JobKind::Probe | JobKind::Maintenance => Queue::System,
        }
    }
}

/// Parses a `--queues imports,exports` list; an unknown name is an error naming it.
pub fn parse_queue_list(text: &str) -> Result<Vec<Queue>, String> {
    let mut queues = Vec::new();
    for name in text.split(',').filter(|name| !name.trim().is_empty()) {
        let queue = Queue::parse(name).ok_or_else(|| {
            format!("unknown queue {:?}; the queues are imports, exports, reports, emails, system", name.trim())
        })?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        return Err("at least one queue is required".into());
    }
    Ok(queues)
}

/// The apalis-redis storage of one queue. Queue names are set explicitly (apalis would otherwise name the
/// queue after the Rust type) and carry the deployment's Redis prefix; the API and the worker build them
/// here, so they always agree.
pub fn queue_storage(
    connection: redis::aio::ConnectionManager,
    redis_prefix: &str,
    queue: Queue,
) -> apalis_redis::RedisStorage<JobTask> {
    apalis_redis::RedisStorage::new(connection).with_config(queue_config(redis_prefix, queue))
}

pub fn queue_config(redis_prefix: &str, queue: Queue) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(format!("{redis_prefix}:jobs:{}", queue.name()))
        // apalis' own orphan recovery (heartbeat × missed beats) is only a backstop: the dispatcher recovers
        // jobs of dead workers from their Postgres heartbeats much sooner.
        .heartbeat_interval(std::time::Duration::from_secs(5))
        .missed_heartbeats(12)
        // Tasks fetched per Redis round trip; the worker's --concurrency still bounds what runs at once.
        .batch_size(32)
}

/// A Redis task for a job, with a fresh task id: a job handed over again (after a loss or a retry) is a new
/// task, never deduplicated away by an old one.
pub fn redis_task(job: JobTask) -> (apalis::prelude::Task<JobTask>, String) {
    let task_id = apalis::prelude::TaskId::from(ulid::Ulid::new().to_string());
    let text = task_id.to_string();
    (apalis::prelude::TaskBuilder::new(job).task_id(task_id).build(), text)
}

/// Hands jobs to a queue in one Redis call; returns each job's new Redis task id, in order.
pub async fn push_to_redis(
    storage: &mut apalis_redis::RedisStorage<JobTask>,
    jobs: Vec<JobTask>,
) -> Result<Vec<String>, crate::DomainError> {
    use apalis::prelude::TaskSink;
    let (tasks, task_ids): (Vec<_>, Vec<_>) = jobs.into_iter().map(redis_task).unzip();
    storage
        .push_all(&mut futures::stream::iter(tasks))
        .await
        .map_err(|error| crate::DomainError::Unavailable("redis", anyhow::anyhow!("pushing jobs: {error}")))?;
    Ok(task_ids)
}

/// Hands just-committed jobs to Redis at once, so an idle worker starts them within its poll interval. A
/// failure here loses nothing: the jobs stay in Postgres unmarked, and the dispatcher hands them over.
pub async fn hand_off_now(
    pool: &sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
    redis_prefix: &str,
    queue: Queue,
    jobs: Vec<JobTask>,
) -> Result<(), crate::DomainError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|job| job.job_id).collect();
    let mut storage = queue_storage(redis, redis_prefix, queue);
    let task_ids = push_to_redis(&mut storage, jobs).await?;
    let mut conn = pool.acquire().await?;
    crate::db::jobs::mark_dispatched(&mut conn, &ids, &task_ids).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse_and_reject_unknown_names() {
        assert_eq!(parse_queue_list("imports, emails,imports"), Ok(vec![Queue::Imports, Queue::Emails]));
        assert!(parse_queue_list("imports,printing").expect_err("unknown queue").contains("\"printing\""));
        assert!(parse_queue_list(" , ").is_err());
    }

    #[test]
    fn every_kind_has_a_queue() {
        assert_eq!(Queue::for_kind(JobKind::Rollup), Queue::Reports);
        assert_eq!(Queue::for_kind(JobKind::Import), Queue::Imports);
    }
}
