//! `crm-scheduler`: turns cron schedules into jobs. This module holds the process's life cycle; schedules
//! plug in here.

use crm_shared::config::Settings;
use tokio_util::sync::CancellationToken;

pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = crm_shared::db::pool(&settings)?;
    let mut redis = crm_shared::redis_conn::connect_lazy(&settings)?;
    if !crm_shared::startup::wait_for_dependencies(&pool, &mut redis, &shutdown).await {
        tracing::info!("stopped before Postgres and Redis were ready");
        return Ok(());
    }
    tracing::info!("crm-scheduler ready");
    shutdown.cancelled().await;
    pool.close().await;
    tracing::info!("crm-scheduler stopped");
    Ok(())
}
