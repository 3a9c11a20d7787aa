//! Deletes files that have outlived their use: an export's file `EXPORT_TTL_HOURS` after it was made (the
//! export turns `expired`), and an import's upload `IMPORT_FILE_TTL_DAYS` after its import ended. Every worker
//! runs it; two deleting the same file is harmless. It moves to the scheduler's built-in schedules once those
//! exist (issue 12).

use crm_shared::db::{exports, imports};
use crm_shared::storage::Storage;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
const FILES_PER_ROUND: i64 = 500;

pub async fn sweep(pool: PgPool, storage: Storage, import_file_ttl: Duration, stop: CancellationToken) {
    loop {
        if let Err(error) = sweep_once(&pool, &storage, import_file_ttl).await {
            tracing::warn!(error = %error, "file expiry sweep failed; it runs again shortly");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
    }
}

pub async fn sweep_once(pool: &PgPool, storage: &Storage, import_file_ttl: Duration) -> anyhow::Result<()> {
    for (export_id, key) in exports::expired(pool, FILES_PER_ROUND).await? {
        if let Some(key) = key {
            storage.delete(&key).await?;
        }
        exports::mark_expired(pool, export_id).await?;
        tracing::info!(%export_id, "export expired; its file was deleted");
    }
    let days = i64::try_from(import_file_ttl.as_secs() / 86_400).unwrap_or(i64::MAX);
    for (import_id, key) in imports::stale_import_files(pool, days, FILES_PER_ROUND).await? {
        storage.delete(&key).await?;
        imports::mark_import_file_deleted(pool, import_id).await?;
        tracing::info!(%import_id, "import upload deleted after its retention");
    }
    Ok(())
}
