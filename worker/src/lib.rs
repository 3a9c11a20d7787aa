//! `crm-worker`: takes jobs from the Redis queues (apalis-redis) and runs them, with Postgres as the source
//! of truth for every job's status, progress and attempts. Alongside the queue consumers run the dispatcher
//! (Redis kept in step with Postgres), the job heartbeats and the process's own heartbeat.

pub mod dispatcher;
pub mod email;
pub mod export;
pub mod import;
pub mod ledger;
pub mod maintenance;
pub mod notify;
pub mod probe;
pub mod runtime;
pub mod schedule_run;
pub mod wake;

use apalis::prelude::*;
use crm_shared::config::Settings;
use crm_shared::jobs::{Queue, queue_config, wake_channel};
use dispatcher::Dispatcher;
use runtime::JobRuntime;
use std::sync::Arc;
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
/// How often running jobs' heartbeats are written (and cancellations read); well inside `STALE_AFTER`.
pub const JOB_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// How long running jobs may take to finish after SIGTERM; what is still running then is left to recovery.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// How often an idle worker asks Redis for work when no push woke it (apalis' default is its 30 s heartbeat):
/// only a backstop for a lost wake-up (`wake`).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Most tasks one fetch takes from Redis, per round trip (never more than the worker's concurrency, so one
/// worker does not hold tasks another idle worker could run). Only consumers fetch, so it is set here, not in
/// the shared `queue_config`.
const MAX_FETCH: usize = 64;

/// How often a worker that can send looks for emails held while none could.
pub const HELD_EMAIL_INTERVAL: Duration = Duration::from_secs(5);

/// A name unique per host, process and start, as apalis-redis requires (a reused name is refused for the
/// orphan window and stops orphan recovery).
pub fn worker_name() -> String {
    let host =
        std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

pub async fn run(settings: Settings, options: WorkerOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let name = worker_name();
    let pool = crm_shared::db::job_pool(&settings)?;
    let mut redis = crm_shared::redis_conn::connect_lazy(&settings)?;
    if !crm_shared::startup::wait_for_dependencies(&pool, &mut redis, &shutdown).await {
        tracing::info!("stopped before Postgres and Redis were ready");
        return Ok(());
    }
    if let Some(addr) = settings.worker_metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0])?
            .install()?;
        tracing::info!(%addr, "serving Prometheus metrics");
    }
    let queue_names: Vec<&str> = options.queues.iter().map(|queue| queue.name()).collect();
    let storage = crm_shared::storage::Storage::from_url(&settings.storage_url)
        .map_err(|problem| anyhow::anyhow!("STORAGE_URL: {problem}"))?;
    let settings = Arc::new(settings);
    let runtime = Arc::new(
        JobRuntime::new(pool.clone(), name.clone(), settings.fault_injection, storage.clone())
            .with_settings(settings.clone())?
            .with_dashboard_cache(crm_shared::dashboard_cache::DashboardCache::new(
                redis.clone(),
                &settings.redis_prefix,
                settings.dashboard_cache_ttl,
            )),
    );

    let mut background = tokio::task::JoinSet::new();
    let stop_background = CancellationToken::new();
    for queue in options.queues.clone() {
        let dispatcher =
            Dispatcher { pool: pool.clone(), redis: redis.clone(), redis_prefix: settings.redis_prefix.clone() };
        background.spawn(dispatcher.run_hand_off(queue, stop_background.clone()));
    }
    let dispatcher =
        Dispatcher { pool: pool.clone(), redis: redis.clone(), redis_prefix: settings.redis_prefix.clone() };
    background.spawn(dispatcher.run_maintenance(options.queues.clone(), stop_background.clone()));
    background.spawn(job_heartbeats(runtime.clone(), stop_background.clone()));
    background.spawn(fold_lead_rollup(pool.clone(), stop_background.clone()));
    if runtime.mailer.can_send() {
        background.spawn(email::release_held(pool.clone(), HELD_EMAIL_INTERVAL, stop_background.clone()));
    }
    background.spawn(process_heartbeat(
        redis.clone(),
        settings.redis_prefix.clone(),
        name.clone(),
        queue_names.iter().map(|q| q.to_string()).collect(),
        options.concurrency,
        stop_background.clone(),
    ));

    let wakes: Vec<(Queue, wake::Wake)> = options.queues.iter().map(|queue| (*queue, wake::Wake::default())).collect();
    let channels =
        wakes.iter().map(|(queue, wake)| (wake_channel(&queue_config(&settings.redis_prefix, *queue)), wake.clone()));
    background.spawn(wake::listen(
        redis::Client::open(settings.redis_url())?,
        channels.collect(),
        stop_background.clone(),
    ));

    let mut monitor = Monitor::new();
    for (queue, wake) in wakes {
        let (connection, prefix, runtime, base) =
            (redis.clone(), settings.redis_prefix.clone(), runtime.clone(), name.clone());
        let concurrency = options.concurrency;
        monitor = monitor.register(move |restarts| {
            let config = queue_config(&prefix, queue).batch_size(concurrency.clamp(1, MAX_FETCH));
            let storage = apalis_redis::RedisStorage::new(connection.clone())
                .with_config(config)
                .poll_with_strategy(Strategy::new().stream(wake.clone()).interval(POLL_INTERVAL));
            // The restart count keeps the name unique when the monitor brings a failed worker back.
            WorkerBuilder::new(format!("{base}-{}-{restarts}", queue.name()))
                .backend(storage)
                .data(runtime.clone())
                .concurrency(concurrency)
                .parallelize(tokio::spawn)
                .build(runtime::handle)
        });
    }
    tracing::info!(worker = %name, queues = ?queue_names, concurrency = options.concurrency, "crm-worker ready");
    let signal = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            Ok(())
        }
    };
    let result = monitor
        // Any Redis error ends an apalis worker; bring it back (with a pause, so a Redis outage is not a
        // busy loop) under a new name.
        .should_restart(|context, error| {
            tracing::warn!(worker = %context.name(), error = %error, "queue consumer stopped; restarting it");
            std::thread::sleep(Duration::from_millis(500));
            true
        })
        .shutdown_timeout(DRAIN_TIMEOUT)
        .run_with_signal(signal)
        .await;
    if let Err(error) = result {
        tracing::warn!(error = %error, "queue consumers stopped with an error");
    }
    stop_background.cancel();
    while background.join_next().await.is_some() {}
    let _ = crm_shared::worker_registry::leave(&mut redis, &settings.redis_prefix, &name).await;
    pool.close().await;
    tracing::info!(worker = %name, "crm-worker stopped");
    Ok(())
}

/// How often pending lead-rollup deltas are folded into the rollup. Reports read both, so this bounds only how
/// many delta rows a report adds up, never what it counts.
const ROLLUP_FOLD_INTERVAL: Duration = Duration::from_secs(2);

/// Folds the deltas the `leads` triggers append into `lead_rollup` (one worker at a time, by advisory lock).
async fn fold_lead_rollup(pool: sqlx::PgPool, stop: CancellationToken) {
    loop {
        match crm_shared::db::rollups::fold_deltas(&pool).await {
            Ok(0) => {}
            Ok(folded) => tracing::debug!(folded, "lead rollup deltas folded"),
            Err(error) => tracing::warn!(error = %error, "lead rollup deltas not folded; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ROLLUP_FOLD_INTERVAL) => {}
        }
    }
}

/// Keeps the heartbeats of this worker's running jobs fresh and passes on cancellations.
async fn job_heartbeats(runtime: Arc<JobRuntime>, stop: CancellationToken) {
    loop {
        let running = runtime.running_jobs();
        if !running.is_empty() {
            match crm_shared::db::jobs::heartbeat(&runtime.pool, &running, &runtime.worker_name).await {
                Ok(held) => runtime.heard(&running, &held),
                Err(error) => tracing::warn!(error = %error, "job heartbeat not written"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(JOB_HEARTBEAT_INTERVAL) => {}
        }
    }
}

/// The process's heartbeat key, read by operators (`GET /api/v1/admin/queues`).
async fn process_heartbeat(
    mut redis: redis::aio::ConnectionManager,
    prefix: String,
    name: String,
    queues: Vec<String>,
    concurrency: usize,
    stop: CancellationToken,
) {
    let started_at = chrono::Utc::now();
    loop {
        let heartbeat = serde_json::json!({
            "name": name,
            "queues": queues,
            "concurrency": concurrency,
            "pid": std::process::id(),
            "started_at": started_at,
            "last_heartbeat_at": chrono::Utc::now(),
        });
        let written =
            crm_shared::worker_registry::beat(&mut redis, &prefix, &name, &heartbeat, HEARTBEAT_TTL.as_secs()).await;
        if let Err(error) = written {
            tracing::warn!(error = %error, "heartbeat not written; Redis unreachable, retrying");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
        }
    }
}
