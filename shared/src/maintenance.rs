//! The built-in schedules (contract §10): always on, fired by `crm-scheduler` once per time across all its
//! replicas (a row in `system_schedule_runs` per time), and runnable now for one tenant by an admin (a
//! `maintenance` job). Each is idempotent: running one twice does no harm.

use crate::config::Settings;
use crate::db::{exports, imports, maintenance, rollups};
use crate::error::DomainError;
use crate::ids::TenantId;
use crate::storage::Storage;
use serde_json::{Value, json};
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemSchedule {
    pub name: &'static str,
    /// Standard cron, in UTC.
    pub cron: &'static str,
    pub description: &'static str,
    /// Whether "run now" for one tenant touches only that tenant; the others are tenant-free passes.
    pub per_tenant: bool,
}

pub const SYSTEM_SCHEDULES: [SystemSchedule; 5] = [
    SystemSchedule {
        name: "rollups",
        cron: "* * * * *",
        description: "folds pending report rollup changes (workers also fold every 2 s; this is the floor when none runs)",
        per_tenant: false,
    },
    SystemSchedule {
        name: "metric-refresh",
        cron: "*/15 * * * *",
        description: "refreshes the planner statistics of the report tables",
        per_tenant: false,
    },
    SystemSchedule {
        name: "ticket-cleanup",
        cron: "0 3 * * *",
        description: "deletes tickets closed more than TICKET_RETENTION_DAYS (default 90) days ago, with their replies; the audit log keeps a count",
        per_tenant: true,
    },
    SystemSchedule {
        name: "file-expiry",
        cron: "* * * * *",
        description: "deletes export files past EXPORT_TTL_HOURS (the export turns expired) and import uploads IMPORT_FILE_TTL_DAYS after their import ended",
        per_tenant: false,
    },
    SystemSchedule {
        name: "job-pruning",
        cron: "30 3 * * *",
        description: "deletes jobs finished more than JOB_RETENTION_DAYS (default 30) days ago",
        per_tenant: true,
    },
];

pub fn by_name(name: &str) -> Option<&'static SystemSchedule> {
    SYSTEM_SCHEDULES.iter().find(|schedule| schedule.name == name)
}

/// Files deleted per expiry pass (the next minute takes the rest).
const FILES_PER_PASS: i64 = 500;

/// Runs one built-in schedule: for every tenant, or for `tenant` only where the schedule is per tenant.
/// Returns what it did.
pub async fn run(
    schedule: &SystemSchedule,
    pool: &PgPool,
    storage: &Storage,
    settings: &Settings,
    tenant: Option<TenantId>,
) -> Result<Value, DomainError> {
    Ok(match schedule.name {
        "rollups" => json!({ "folded": rollups::fold_deltas(pool).await? }),
        "metric-refresh" => {
            maintenance::analyze_report_tables(pool).await?;
            json!({ "analyzed": true })
        }
        "ticket-cleanup" => {
            let deleted = maintenance::delete_closed_tickets(pool, settings.ticket_retention_days, tenant).await?;
            json!({ "tickets_deleted": deleted })
        }
        "file-expiry" => expire_files(pool, storage, settings).await?,
        "job-pruning" => {
            let jobs = maintenance::prune_jobs(pool, settings.job_retention_days, tenant).await?;
            let runs = maintenance::prune_system_runs(pool).await?;
            json!({ "jobs_deleted": jobs, "system_runs_deleted": runs })
        }
        other => return Err(DomainError::Internal(anyhow::anyhow!("no built-in schedule {other}"))),
    })
}

async fn expire_files(pool: &PgPool, storage: &Storage, settings: &Settings) -> Result<Value, DomainError> {
    let mut exports_expired = 0;
    for (export_id, key) in exports::expired(pool, FILES_PER_PASS).await? {
        if let Some(key) = key {
            storage.delete(&key).await?;
        }
        exports::mark_expired(pool, export_id).await?;
        exports_expired += 1;
        tracing::info!(%export_id, "export expired; its file was deleted");
    }
    let days = i64::try_from(settings.import_file_ttl.as_secs() / 86_400).unwrap_or(i64::MAX);
    let mut uploads_deleted = 0;
    for (import_id, key) in imports::stale_import_files(pool, days, FILES_PER_PASS).await? {
        storage.delete(&key).await?;
        imports::mark_import_file_deleted(pool, import_id).await?;
        uploads_deleted += 1;
        tracing::info!(%import_id, "import upload deleted after its retention");
    }
    Ok(json!({ "exports_expired": exports_expired, "uploads_deleted": uploads_deleted }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_schedule_parses() {
        for schedule in SYSTEM_SCHEDULES {
            crate::cron_time::CronSchedule::parse(schedule.cron, chrono_tz::UTC)
                .unwrap_or_else(|error| panic!("{}: {error}", schedule.name));
        }
    }
}
