//! What every handler shares.

use crate::auth::{AuthCtx, JwtKeys};
use crate::error::ApiError;
use crm_shared::config::Settings;
use crm_shared::db::{self, Session, Tx};
use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: ConnectionManager,
    /// Uploaded and generated files (`STORAGE_URL`).
    pub storage: crm_shared::storage::Storage,
    pub settings: Arc<Settings>,
    pub jwt: Arc<JwtKeys>,
    pub metrics: PrometheusHandle,
    /// Password checks, bounded in memory and concurrency.
    pub hashing: crm_shared::password::PasswordHashing,
    /// Each tenant's share of this replica's database pool.
    pub tenant_shares: crate::request_limits::TenantShares,
    /// Dashboard answers per tenant and scope; every write the dashboard counts drops the tenant's entries.
    pub dashboard_cache: crm_shared::dashboard_cache::DashboardCache,
    /// Job events from Postgres (LISTEN), fanned out to the event streams of this replica.
    pub events: tokio::sync::broadcast::Sender<crm_shared::db::events::Announcement>,
    /// Cancelled when the process stops: open event streams end rather than hold the shutdown.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// Begins the caller's tenant transaction. A token whose user was deactivated, signed out or reactivated,
    /// or whose role changed since it was issued, stops working here, at once.
    pub async fn begin(&self, auth: &AuthCtx) -> Result<(Tx, Session), ApiError> {
        let (tx, session) = db::begin_for_user(&self.db, auth.tenant_id, auth.user_id).await?;
        Self::still_valid(auth, tx, session)
    }

    /// Call after a committed write to anything the dashboard counts (records, teams, users): drops the
    /// tenant's cached dashboards before the writer gets its answer.
    pub async fn dashboards_changed(&self, tenant: crm_shared::TenantId) {
        self.dashboard_cache.invalidate(tenant).await;
    }

    /// Like `begin`, read-only on one snapshot (reports: every figure of an answer from the same moment).
    pub async fn begin_snapshot(&self, auth: &AuthCtx) -> Result<(Tx, Session), ApiError> {
        let (tx, session) = db::begin_snapshot_for_user(&self.db, auth.tenant_id, auth.user_id).await?;
        Self::still_valid(auth, tx, session)
    }

    fn still_valid(auth: &AuthCtx, tx: Tx, session: Session) -> Result<(Tx, Session), ApiError> {
        if session.token_version != auth.token_version {
            return Err(ApiError::unauthorized(
                "this token was revoked (signed out, or the account was changed); sign in again",
            ));
        }
        if session.role != auth.role {
            return Err(ApiError::unauthorized("your role has changed since you signed in; sign in again"));
        }
        Ok((tx, session))
    }
}
