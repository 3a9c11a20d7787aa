//! `crm-worker`: takes jobs from the Redis queues and records their progress in Postgres. This module holds
//! the process's life cycle: identity, readiness, heartbeat and graceful stop. Queue consumers plug in here.

use crm_shared::config::Settings;
use crm_shared::jobs::Queue;
use redis::AsyncCommands;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub queues: Vec<Queue>,
    pub concurrency: usize,
}

/// How often a live worker refreshes its heartbeat, and how long the heartbeat outlives a dead worker.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(30);

/// A name unique per host, process and start, as apalis-redis requires (a reused name is refused for the
/// orphan window and stops orphan recovery).
pub fn worker_name() -> String {
    let host =
        std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

pub async fn run(settings: Settings, options: WorkerOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let name = worker_name();
    let pool = crm_shared::db::pool(&settings)?;
    let mut redis = crm_shared::redis_conn::connect_lazy(&settings)?;
    if !crm_shared::startup::wait_for_dependencies(&pool, &mut redis, &shutdown).await {
        tracing::info!("stopped before Postgres and Redis were ready");
        return Ok(());
    }
    let queue_names: Vec<&str> = options.queues.iter().map(|queue| queue.name()).collect();
    tracing::info!(worker = %name, queues = ?queue_names, concurrency = options.concurrency, "crm-worker ready");

    let heartbeat_key = format!("{}:workers:{name}", settings.redis_prefix);
    let heartbeat = serde_json::json!({
        "name": name,
        "queues": queue_names,
        "concurrency": options.concurrency,
        "pid": std::process::id(),
        "started_at": chrono::Utc::now(),
    })
    .to_string();
    loop {
        let written: Result<(), _> = redis.set_ex(&heartbeat_key, &heartbeat, HEARTBEAT_TTL.as_secs()).await;
        if let Err(error) = written {
            tracing::warn!(error = %error, "heartbeat not written; Redis unreachable, retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
        }
    }
    let _: Result<(), _> = redis.del(&heartbeat_key).await;
    pool.close().await;
    tracing::info!(worker = %name, "crm-worker stopped");
    Ok(())
}
