//! Which worker processes are alive. Each writes a heartbeat key that expires on its own, and its name in a
//! set, so readers list workers with SMEMBERS and MGET instead of a `KEYS` scan of the whole Redis (issue 9:
//! `/metrics` ran `KEYS` on every scrape).

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::Value;

fn names_key(prefix: &str) -> String {
    format!("{prefix}:worker-names")
}

fn heartbeat_key(prefix: &str, name: &str) -> String {
    format!("{prefix}:workers:{name}")
}

/// Writes this worker's heartbeat (a JSON object) for `ttl_seconds`.
pub async fn beat(
    redis: &mut ConnectionManager,
    prefix: &str,
    name: &str,
    heartbeat: &Value,
    ttl_seconds: u64,
) -> redis::RedisResult<()> {
    redis::pipe()
        .set_ex(heartbeat_key(prefix, name), heartbeat.to_string(), ttl_seconds)
        .ignore()
        .sadd(names_key(prefix), name)
        .ignore()
        .query_async(redis)
        .await
}

/// Removes a stopping worker at once, rather than when its heartbeat expires.
pub async fn leave(redis: &mut ConnectionManager, prefix: &str, name: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .del(heartbeat_key(prefix, name))
        .ignore()
        .srem(names_key(prefix), name)
        .ignore()
        .query_async(redis)
        .await
}

/// The heartbeats of live workers. Names whose heartbeat has expired (a killed worker) are dropped from the set.
pub async fn live(redis: &mut ConnectionManager, prefix: &str) -> redis::RedisResult<Vec<Value>> {
    let names: Vec<String> = redis.smembers(names_key(prefix)).await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = names.iter().map(|name| heartbeat_key(prefix, name)).collect();
    let beats: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(redis).await?;
    let mut live = Vec::new();
    let mut gone = Vec::new();
    for (name, beat) in names.iter().zip(beats) {
        match beat.and_then(|text| serde_json::from_str::<Value>(&text).ok()) {
            Some(value) => live.push(value),
            None => gone.push(name.clone()),
        }
    }
    if !gone.is_empty() {
        let _: redis::RedisResult<()> = redis.srem(names_key(prefix), gone).await;
    }
    live.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(live)
}
