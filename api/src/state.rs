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
}

impl AppState {
    /// Begins the caller's tenant transaction. A token whose user was deactivated, signed out or reactivated,
    /// or whose role changed since it was issued, stops working here, at once.
    pub async fn begin(&self, auth: &AuthCtx) -> Result<(Tx, Session), ApiError> {
        let (tx, session) = db::begin_for_user(&self.db, auth.tenant_id, auth.user_id).await?;
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
