//! `crm-scheduler`: turns cron schedules into jobs (contract §10). Every second it
//! - fires the tenants' schedules whose time has come: each time by inserting its run row (unique per
//!   schedule and time) together with the run's job, in one transaction over rows locked `SKIP LOCKED`, so
//!   any number of schedulers fire each time exactly once, and a scheduler killed mid-way leaves either
//!   both or neither;
//! - fires the built-in schedules the same way (`system_schedule_runs`) and runs them here.
//!
//! Times missed while no scheduler ran fire once, for the latest of them, marked `catch_up`.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use crm_shared::config::Settings;
use crm_shared::cron_time::CronSchedule;
use crm_shared::db::schedules::{self, Trigger};
use crm_shared::db::{self, maintenance};
use crm_shared::domain::validation::parse_time_zone;
use crm_shared::maintenance::{SYSTEM_SCHEDULES, SystemSchedule};
use crm_shared::storage::Storage;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often schedulers look for due work. Times are whole minutes, so a run fires within a second of its time.
pub const TICK: Duration = Duration::from_secs(1);
/// Schedules fired per transaction.
const DUE_BATCH: i64 = 100;
/// A time fired later than this after it came is a catch-up, not a tick that was merely a little late.
const LATE_AFTER: TimeDelta = TimeDelta::seconds(60);
/// How far back a built-in schedule with no recorded run looks for its latest time.
const SYSTEM_LOOKBACK: TimeDelta = TimeDelta::days(2);

pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = crm_shared::db::pool(&settings)?;
    let mut redis = crm_shared::redis_conn::connect_lazy(&settings)?;
    if !crm_shared::startup::wait_for_dependencies(&pool, &mut redis, &shutdown).await {
        tracing::info!("stopped before Postgres and Redis were ready");
        return Ok(());
    }
    let storage =
        Storage::from_url(&settings.storage_url).map_err(|problem| anyhow::anyhow!("STORAGE_URL: {problem}"))?;
    let settings = Arc::new(settings);
    let mut system = SystemClock::default();
    let mut running = tokio::task::JoinSet::new();
    tracing::info!("crm-scheduler ready");
    loop {
        match fire_due(&pool).await {
            Ok(fired) if fired > 0 => tracing::debug!(fired, "schedules fired"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "due schedules not fired; trying again"),
        }
        if let Err(error) = system.fire(&pool, &storage, &settings, &mut running).await {
            tracing::warn!(error = %error, "built-in schedules not fired; trying again");
        }
        while running.try_join_next().is_some() {}
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(TICK) => {}
        }
    }
    // Built-in runs in progress are idempotent; they are not waited for past a few seconds.
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while running.join_next().await.is_some() {} }).await;
    pool.close().await;
    tracing::info!("crm-scheduler stopped");
    Ok(())
}

/// Fires every due schedule once; returns how many times fired.
pub async fn fire_due(pool: &PgPool) -> Result<usize, crm_shared::DomainError> {
    let mut fired = 0;
    loop {
        let mut tx = pool.begin().await?;
        let due = schedules::lock_due(&mut tx, DUE_BATCH).await?;
        let count = due.len();
        for schedule in &due {
            if fire_one(&mut tx, schedule).await? {
                fired += 1;
            }
        }
        tx.commit().await?;
        if count < DUE_BATCH as usize {
            return Ok(fired);
        }
    }
}

/// Fires one due schedule and moves its `next_run_at` on; false if that time had already fired.
async fn fire_one(tx: &mut db::Tx, schedule: &schedules::ScheduleRow) -> Result<bool, crm_shared::DomainError> {
    let Some(due_at) = schedule.next_run_at else { return Ok(false) };
    let zone = parse_time_zone(&schedule.time_zone).unwrap_or(chrono_tz::UTC);
    let cron = match CronSchedule::parse(&schedule.cron, zone) {
        Ok(cron) => cron,
        Err(problem) => {
            // Saved schedules were checked by the API; one that no longer parses stops rather than spins.
            tracing::error!(schedule_id = %schedule.id, problem, "schedule's cron no longer parses; it is stopped");
            schedules::set_next_run(tx, schedule.id, None).await?;
            return Ok(false);
        }
    };
    let now = Utc::now();
    let latest = cron.latest_at_or_before(now, due_at).unwrap_or(due_at);
    let missed = missed_between(&cron, due_at, latest);
    let late = now - latest > LATE_AFTER;
    let (trigger, note) = if missed > 0 || late {
        let note =
            format!("catch_up: {} time(s) passed while no scheduler ran; fired once, for the latest", missed + 1);
        (Trigger::CatchUp, Some(note))
    } else {
        (Trigger::Schedule, None)
    };
    let fired = schedules::fire(tx, schedule, latest, trigger, note.as_deref(), None).await?;
    schedules::set_next_run(tx, schedule.id, cron.next_after(now.max(latest))).await?;
    if let Some((run_id, job_id)) = fired {
        tracing::info!(
            schedule_id = %schedule.id, %run_id, %job_id, scheduled_for = %latest, trigger = trigger.as_str(),
            "schedule fired"
        );
    }
    Ok(fired.is_some())
}

/// How many firing times lie in `[from, to)`.
fn missed_between(cron: &CronSchedule, from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
    let mut count = 0;
    let mut at = from;
    while at < to && count < 1_000_000 {
        count += 1;
        match cron.next_after(at) {
            Some(next) => at = next,
            None => break,
        }
    }
    count
}

/// The built-in schedules' latest fired times, as this scheduler knows them.
#[derive(Default)]
struct SystemClock {
    last: HashMap<&'static str, DateTime<Utc>>,
    loaded: bool,
    busy: Arc<Mutex<HashSet<&'static str>>>,
}

impl SystemClock {
    async fn fire(
        &mut self,
        pool: &PgPool,
        storage: &Storage,
        settings: &Arc<Settings>,
        running: &mut tokio::task::JoinSet<()>,
    ) -> Result<(), crm_shared::DomainError> {
        if !self.loaded {
            let mut conn = pool.acquire().await?;
            for run in maintenance::latest_system_runs(&mut conn).await? {
                if let Some(schedule) = crm_shared::maintenance::by_name(&run.name) {
                    self.last.insert(schedule.name, run.scheduled_for);
                }
            }
            self.loaded = true;
        }
        let now = Utc::now();
        for schedule in &SYSTEM_SCHEDULES {
            let Ok(cron) = CronSchedule::parse(schedule.cron, chrono_tz::UTC) else { continue };
            let not_before =
                self.last.get(schedule.name).map_or(now - SYSTEM_LOOKBACK, |last| *last + TimeDelta::minutes(1));
            let Some(latest) = cron.latest_at_or_before(now, not_before) else { continue };
            self.last.insert(schedule.name, latest);
            if !maintenance::claim_system_run(pool, schedule.name, latest).await? {
                continue; // another scheduler fired this time
            }
            let still_running = self.busy.lock().is_ok_and(|mut busy| !busy.insert(schedule.name));
            if still_running {
                // The previous run here is still going; this time is recorded as fired with nothing done.
                let note = "the previous run was still going";
                maintenance::finish_system_run(pool, schedule.name, latest, None, Some(note)).await?;
                continue;
            }
            running.spawn(run_system(
                *schedule,
                latest,
                pool.clone(),
                storage.clone(),
                settings.clone(),
                self.busy.clone(),
            ));
        }
        Ok(())
    }
}

async fn run_system(
    schedule: SystemSchedule,
    scheduled_for: DateTime<Utc>,
    pool: PgPool,
    storage: Storage,
    settings: Arc<Settings>,
    busy: Arc<Mutex<HashSet<&'static str>>>,
) {
    let result = crm_shared::maintenance::run(&schedule, &pool, &storage, &settings, None).await;
    let (outcome, error) = match &result {
        Ok(outcome) => (Some(outcome), None),
        Err(error) => (None, Some(error.to_string())),
    };
    match &result {
        Ok(outcome) => tracing::info!(schedule = schedule.name, %scheduled_for, %outcome, "built-in schedule ran"),
        Err(error) => {
            tracing::warn!(schedule = schedule.name, %scheduled_for, error = %error, "built-in schedule failed")
        }
    }
    if let Err(error) =
        maintenance::finish_system_run(&pool, schedule.name, scheduled_for, outcome, error.as_deref()).await
    {
        tracing::warn!(schedule = schedule.name, error = %error, "built-in run's end not recorded");
    }
    if let Ok(mut busy) = busy.lock() {
        busy.remove(schedule.name);
    }
}
