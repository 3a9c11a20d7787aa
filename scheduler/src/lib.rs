//! `crm-scheduler`: turns cron schedules into jobs. This module holds the process's life cycle; schedules
//! plug in here.

use crm_shared::config::Settings;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = crm_shared::db::pool(&settings)?;
    let mut redis = crm_shared::redis_conn::connect_lazy(&settings)?;
    if !crm_shared::db::wait_for_schema(&pool, &shutdown).await {
        tracing::info!("stopped before the schema was ready");
        return Ok(());
    }
    while !crm_shared::redis_conn::ping(&mut redis).await {
        tracing::warn!("waiting for Redis");
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    tracing::info!("crm-scheduler ready");
    shutdown.cancelled().await;
    pool.close().await;
    tracing::info!("crm-scheduler stopped");
    Ok(())
}
