//! Job platform throughput and pickup latency, ours beside BullMQ on the same Redis, in the same run:
//! - throughput: N no-op jobs queued first (ours: committed to Postgres; BullMQ: added to its queue), then
//!   drained by one and by two worker processes at the same concurrency; jobs/s from the first job's start to
//!   the last job's end, with the CPU each part spent per 1,000 jobs (workers, Redis, Postgres);
//! - pickup latency on an idle worker: one job every 30 ms, enqueue to start, p50 and p99;
//! - rounds interleave the two systems (the order alternates), and the summary takes the medians.
//!
//! Ours goes through the real enqueue path and real crm-worker processes; BullMQ runs
//! `benches/bullmq/bench.mjs` (BullMQ 6.7.6, installed from the npm registry by this benchmark on first use).
//!
//! Run: `scripts/bench-jobs` (or `cargo build --release --bins && cargo bench -p crm-tests --bench
//! jobs_throughput`). `BENCH_JOBS` (50,000), `BENCH_ROUNDS` (3) and `BENCH_CONCURRENCY` (64) override.

#[path = "jobs_bench/bullmq.rs"]
mod bullmq;
#[path = "jobs_bench/cpu.rs"]
mod cpu;
#[path = "jobs_bench/ours.rs"]
mod ours;

use std::fmt;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// One drain of N jobs.
pub struct Throughput {
    pub jobs: usize,
    pub seconds: f64,
    pub workers_cpu_ms: f64,
    pub redis_cpu_ms: f64,
    pub postgres_cpu_ms: f64,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.jobs as f64 / self.seconds
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_thousand = |ms: f64| ms * 1000.0 / self.jobs as f64;
        write!(
            f,
            "{} jobs in {:.2} s = {:.0} jobs/s; CPU per 1,000 jobs: workers {:.0} ms, Redis {:.0} ms, Postgres {:.0} ms",
            self.jobs,
            self.seconds,
            self.per_second(),
            per_thousand(self.workers_cpu_ms),
            per_thousand(self.redis_cpu_ms),
            per_thousand(self.postgres_cpu_ms)
        )
    }
}

/// Enqueue-to-start latencies of one pickup run, in milliseconds.
pub struct Pickup {
    pub sorted_ms: Vec<f64>,
}

impl Pickup {
    pub fn from_latencies(mut latencies: Vec<f64>) -> Self {
        latencies.sort_by(f64::total_cmp);
        Self { sorted_ms: latencies }
    }

    pub fn percentile(&self, p: f64) -> f64 {
        let last = self.sorted_ms.len().saturating_sub(1);
        self.sorted_ms.get(((self.sorted_ms.len() as f64 * p) as usize).min(last)).copied().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Pickup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} jobs, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.sorted_ms.len(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.sorted_ms.last().copied().unwrap_or(f64::NAN)
        )
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[derive(Default)]
struct Results {
    /// jobs/s per round, by [system][processes - 1]; system 0 is ours, 1 is BullMQ.
    rates: [[Vec<f64>; 2]; 2],
    /// (p50, p99) per round, by system.
    pickups: [Vec<(f64, f64)>; 2],
}

const SYSTEMS: [&str; 2] = ["ours", "BullMQ"];
const PICKUP_JOBS: usize = 300;
const PICKUP_GAP_MS: u64 = 30;

async fn bench() -> anyhow::Result<()> {
    let total = setting("BENCH_JOBS", 50_000);
    let rounds = setting("BENCH_ROUNDS", 3).max(1);
    let concurrency = setting("BENCH_CONCURRENCY", 64);
    bullmq::install()?;
    let ours = ours::Ours::start(concurrency).await?;
    let redis_url = crm_tests::redis_url();
    println!(
        "{total} no-op jobs per run, concurrency {concurrency} per worker process, {rounds} rounds; Postgres and \
         Redis on this machine, shared by both systems\n"
    );

    let mut results = Results::default();
    for round in 1..=rounds {
        println!("round {round}");
        // Alternate which system goes first, so neither always runs on a machine the other just warmed.
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for processes in [1usize, 2] {
            for system in order {
                let run = match system {
                    0 => ours.throughput(total, processes).await?,
                    _ => bullmq::throughput(&redis_url, total, processes, concurrency).await?,
                };
                println!(
                    "  {:<6} {processes} process{}: {run}",
                    SYSTEMS[system],
                    if processes == 1 { "  " } else { "es" }
                );
                results.rates[system][processes - 1].push(run.per_second());
            }
        }
        for system in order {
            let pickup = match system {
                0 => ours.pickup(PICKUP_JOBS, PICKUP_GAP_MS).await?,
                _ => bullmq::pickup(&redis_url, PICKUP_JOBS, PICKUP_GAP_MS, concurrency).await?,
            };
            println!("  {:<6} pickup on an idle worker (enqueue to start): {pickup}", SYSTEMS[system]);
            results.pickups[system].push((pickup.percentile(0.50), pickup.percentile(0.99)));
        }
    }
    println!("  ours   enqueue (row + commit + hand-off), 16 callers: {}", ours.enqueue_rate(5_000).await?);

    println!("\nmedians of {rounds} rounds");
    let rate = |system: usize, processes: usize| median(results.rates[system][processes - 1].clone());
    let pickup = |system: usize, p99: bool| {
        median(results.pickups[system].iter().map(|(p50, p99_ms)| if p99 { *p99_ms } else { *p50 }).collect())
    };
    for (system, name) in SYSTEMS.iter().enumerate() {
        println!(
            "  {:<6} jobs/s: 1 process {:.0}, 2 processes {:.0}; pickup p50 {:.1} ms, p99 {:.1} ms",
            name,
            rate(system, 1),
            rate(system, 2),
            pickup(system, false),
            pickup(system, true)
        );
    }
    println!(
        "jobs/s ours/BullMQ: 1 process {:.2}x, 2 processes {:.2}x",
        rate(0, 1) / rate(1, 1),
        rate(0, 2) / rate(1, 2)
    );
    println!("pickup p99: ours {:.1} ms, BullMQ {:.1} ms", pickup(0, true), pickup(1, true));
    Ok(())
}
