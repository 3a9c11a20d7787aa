//! Live job events: the `crm_events` channel that the `jobs` triggers announce on after commit (see the
//! job_events migration), read with LISTEN on a connection of its own.

use crate::error::DomainError;
use sqlx::postgres::{PgListener, PgPoolOptions};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const CHANNEL: &str = "crm_events";

/// One job's change, as announced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    pub tenant_id: Uuid,
    pub job_id: Uuid,
    pub kind: String,
    pub status: String,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub created_by: Option<Uuid>,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
}

/// What a listener passes on: an event, or word that events may have been missed (the connection was lost
/// and came back), after which watchers read the state again.
#[derive(Debug, Clone, PartialEq)]
pub enum Announcement {
    Job(JobEvent),
    Resync,
}

/// Listens until `stop`, passing every announcement to `sender`. Reconnects (with a pause) when Postgres goes
/// away, and announces `Resync` when it comes back.
pub async fn listen(database_url: &str, sender: broadcast::Sender<Announcement>, stop: CancellationToken) {
    let pool = match PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy(database_url)
    {
        Ok(pool) => pool,
        Err(error) => {
            tracing::error!(error = %error, "the job event listener cannot be set up");
            return;
        }
    };
    loop {
        match listen_once(&pool, &sender, &stop).await {
            Ok(()) => return,
            Err(error) => tracing::warn!(error = %error, "job event listener lost Postgres; reconnecting"),
        }
        let _ = sender.send(Announcement::Resync);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn listen_once(
    pool: &sqlx::PgPool,
    sender: &broadcast::Sender<Announcement>,
    stop: &CancellationToken,
) -> Result<(), DomainError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            received = listener.try_recv() => match received? {
                Some(notification) => match serde_json::from_str::<JobEvent>(notification.payload()) {
                    Ok(event) => {
                        let _ = sender.send(Announcement::Job(event));
                    }
                    Err(error) => tracing::warn!(error = %error, "an unreadable job event was skipped"),
                },
                // The connection was lost and is back: what was announced meanwhile is gone.
                None => {
                    let _ = sender.send(Announcement::Resync);
                }
            },
        }
    }
}
