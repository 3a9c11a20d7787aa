//! BullMQ's side of the comparison: `bullmq/bench.mjs`, run with the machine's Node.js against the same Redis.
//! Its packages (pinned in `bullmq/package-lock.json`) are installed from the npm registry on first use.

use super::{Pickup, Throughput};
use anyhow::Context;
use std::path::PathBuf;

fn directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/bullmq")
}

/// Installs BullMQ and ioredis at their locked versions unless they are there already.
pub fn install() -> anyhow::Result<()> {
    let dir = directory();
    if dir.join("node_modules/bullmq/package.json").exists() {
        return Ok(());
    }
    println!("installing BullMQ from the npm registry (npm ci in {}) ...", dir.display());
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .context("running npm: Node.js and npm must be installed to compare with BullMQ")?;
    anyhow::ensure!(status.success(), "npm ci failed ({status}) in {}", dir.display());
    Ok(())
}

async fn run(args: &[String]) -> anyhow::Result<serde_json::Value> {
    let output = tokio::process::Command::new("node")
        .arg("bench.mjs")
        .args(args)
        .current_dir(directory())
        .kill_on_drop(true)
        .output()
        .await
        .context("running node")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "BullMQ bench failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().context("BullMQ bench printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("BullMQ bench printed {line:?}"))
}

pub async fn throughput(
    redis_url: &str,
    jobs: usize,
    processes: usize,
    concurrency: usize,
) -> anyhow::Result<Throughput> {
    let args = [
        "throughput".to_owned(),
        redis_url.to_owned(),
        jobs.to_string(),
        processes.to_string(),
        concurrency.to_string(),
    ];
    let report = run(&args).await?;
    let number = |field: &str| report[field].as_f64().with_context(|| format!("no {field} in {report}"));
    Ok(Throughput {
        jobs,
        seconds: number("seconds")?,
        workers_cpu_ms: number("workers_cpu_ms")?,
        redis_cpu_ms: number("redis_cpu_ms")?,
        postgres_cpu_ms: 0.0,
    })
}

pub async fn pickup(redis_url: &str, jobs: usize, gap_ms: u64, concurrency: usize) -> anyhow::Result<Pickup> {
    let args =
        ["pickup".to_owned(), redis_url.to_owned(), jobs.to_string(), gap_ms.to_string(), concurrency.to_string()];
    let report = run(&args).await?;
    let latencies = report["latencies_ms"]
        .as_array()
        .context("no latencies_ms")?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    Ok(Pickup::from_latencies(latencies))
}
