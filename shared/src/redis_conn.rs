//! Redis connections that survive a slow reply or a restart: a longer response timeout than redis-rs'
//! 500 ms default, and reconnection with exponential back-off instead of an error that ends the process.

use crate::config::Settings;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_number_of_retries(6)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(5))
}

/// Connects on first use, so a process starts (and reports itself not ready) while Redis is down.
pub fn connect_lazy(settings: &Settings) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(settings.redis_url())?;
    ConnectionManager::new_lazy_with_config(client, manager_config())
}

/// Answers whether Redis replies to PING.
pub async fn ping(connection: &mut ConnectionManager) -> bool {
    redis::cmd("PING").query_async::<String>(connection).await.is_ok()
}
