//! What the worker and the scheduler do before they start working: wait for the schema (they never
//! migrate) and for Redis, giving up only when told to stop.

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// True once Postgres has the current schema and Redis answers; false if `shutdown` came first.
pub async fn wait_for_dependencies(pool: &PgPool, redis: &mut ConnectionManager, shutdown: &CancellationToken) -> bool {
    if !crate::db::wait_for_schema(pool, shutdown).await {
        return false;
    }
    while !crate::redis_conn::ping(redis).await {
        tracing::warn!("waiting for Redis");
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    true
}
