//! The dashboard's cache in Redis (contract §8): one entry per tenant and scope for up to 60 s, dropped at once
//! by any write to what it counts.
//!
//! Invalidation bumps a per-tenant generation after the write commits; an entry is served only while it was
//! computed under the current generation. So an answer computed from a snapshot older than a write is never
//! served after that write's request returned, even when it is stored after the bump. Redis being down or
//! slow costs the cache, never the answer: every call gives up after `REDIS_WAIT` and the dashboard is
//! computed from Postgres.

use crate::ids::TenantId;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// How long a cache read or write may wait on Redis before the dashboard goes on without it.
const REDIS_WAIT: Duration = Duration::from_millis(250);
/// How long a tenant's generation is kept after its last bump: far longer than any entry lives.
const GENERATION_TTL_SECONDS: i64 = 86_400;

#[derive(Clone)]
pub struct DashboardCache {
    redis: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

/// What a lookup found: the cached body, or the generation to store a fresh answer under.
pub enum Lookup {
    Hit(String),
    Miss { generation: Option<u64> },
}

impl DashboardCache {
    /// `ttl` zero turns the cache off (every answer is computed).
    pub fn new(redis: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        Self { redis, prefix: format!("{prefix}:dashboard"), ttl }
    }

    fn generation_key(&self, tenant: TenantId) -> String {
        format!("{}:{tenant}:generation", self.prefix)
    }

    fn entry_key(&self, tenant: TenantId, scope: &str) -> String {
        format!("{}:{tenant}:{scope}", self.prefix)
    }

    pub fn max_age(&self) -> Duration {
        self.ttl
    }

    /// The entry of (tenant, scope) when it is current.
    pub async fn get(&self, tenant: TenantId, scope: &str) -> Lookup {
        if self.ttl.is_zero() {
            return Lookup::Miss { generation: None };
        }
        let keys = [self.generation_key(tenant), self.entry_key(tenant, scope)];
        let (mut redis, mut command) = (self.redis.clone(), redis::cmd("MGET"));
        command.arg(&keys);
        let read = command.query_async::<(Option<u64>, Option<String>)>(&mut redis);
        match tokio::time::timeout(REDIS_WAIT, read).await {
            Ok(Ok((generation, entry))) => {
                let generation = generation.unwrap_or(0);
                match entry.as_deref().and_then(|entry| entry.split_once('\n')) {
                    Some((stored, body)) if stored.parse::<u64>().ok() == Some(generation) => {
                        Lookup::Hit(body.to_owned())
                    }
                    _ => Lookup::Miss { generation: Some(generation) },
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "dashboard cache unavailable; answering uncached");
                Lookup::Miss { generation: None }
            }
            Err(_) => {
                tracing::warn!("dashboard cache did not answer in time; answering uncached");
                Lookup::Miss { generation: None }
            }
        }
    }

    /// Stores a fresh answer under the generation its lookup saw.
    pub async fn put(&self, tenant: TenantId, scope: &str, generation: u64, body: &str) {
        let key = self.entry_key(tenant, scope);
        let value = format!("{generation}\n{body}");
        let seconds = self.ttl.as_secs().max(1);
        let (mut redis, mut command) = (self.redis.clone(), redis::cmd("SET"));
        command.arg(&key).arg(value).arg("EX").arg(seconds);
        let write = command.query_async::<()>(&mut redis);
        if let Err(problem) = settle(tokio::time::timeout(REDIS_WAIT, write).await) {
            tracing::warn!(problem, "dashboard not cached");
        }
    }

    /// Drops every cached dashboard of the tenant (call after a write to what dashboards count commits).
    pub async fn invalidate(&self, tenant: TenantId) {
        let key = self.generation_key(tenant);
        let (mut redis, mut pipe) = (self.redis.clone(), redis::pipe());
        pipe.incr(&key, 1).ignore().expire(&key, GENERATION_TTL_SECONDS).ignore();
        let bump = pipe.query_async::<()>(&mut redis);
        if let Err(problem) = settle(tokio::time::timeout(REDIS_WAIT, bump).await) {
            // Entries live at most the cache's TTL, so a missed bump is bounded by it.
            tracing::warn!(problem, %tenant, "dashboard cache not invalidated; entries expire on their own");
        }
    }
}

/// A timed Redis call's outcome, its failure as a sentence for the log.
fn settle(outcome: Result<redis::RedisResult<()>, tokio::time::error::Elapsed>) -> Result<(), String> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("Redis did not answer in time".to_owned()),
    }
}
