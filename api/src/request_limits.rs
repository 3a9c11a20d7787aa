//! Limits that keep one user or one tenant from denying the others (issue 9: 30 concurrent searches from one
//! admin gave another tenant 503s and a 2.2 s median).
//!
//! - A request rate per user and per tenant, counted per minute in Redis (so every replica shares the count):
//!   beyond it, 429 with `Retry-After` naming the limit. If Redis cannot be reached the request goes on; the
//!   limit is a fairness measure, not a lock.
//! - A share of this replica's database pool per tenant: at most `TENANT_MAX_CONCURRENT_REQUESTS` of a
//!   tenant's requests run at once; more wait (up to `SHARE_WAIT`) for one of them to finish, then get 429.
//!   Another tenant's requests never wait behind them.

use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crm_shared::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a tenant's request waits for its share before it is refused.
const SHARE_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct TenantShares {
    per_tenant: usize,
    semaphores: Arc<Mutex<HashMap<TenantId, Arc<Semaphore>>>>,
}

impl TenantShares {
    pub fn new(per_tenant: usize) -> Self {
        Self { per_tenant: per_tenant.max(1), semaphores: Arc::default() }
    }

    async fn acquire(&self, tenant: TenantId) -> Result<OwnedSemaphorePermit, ApiError> {
        let semaphore = {
            let mut semaphores = self.semaphores.lock().map_err(|_| ApiError::internal("tenant shares poisoned"))?;
            semaphores.entry(tenant).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))).clone()
        };
        match tokio::time::timeout(SHARE_WAIT, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "your workspace already has {} requests in progress on this server \
                     (TENANT_MAX_CONCURRENT_REQUESTS); try again when they finish",
                    self.per_tenant
                ),
            )
            .retry_after(1)),
        }
    }
}

/// Middleware on every route: a request with a valid token is counted against its user's and tenant's rate
/// and runs within its tenant's share. Requests without one pass (the handler answers 401, or the route is
/// public); the login route has limits of its own.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Ok(auth) = AuthCtx::from_headers(request.headers(), &state) else {
        return next.run(request).await;
    };
    request.extensions_mut().insert(auth);
    if let Err(refusal) = count_request(&state, &auth).await {
        return refusal.into_response();
    }
    let permit = match state.tenant_shares.acquire(auth.tenant_id).await {
        Ok(permit) => permit,
        Err(refusal) => return refusal.into_response(),
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// How long counting a request may wait on Redis.
const RATE_COUNT_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

async fn count_request(state: &AppState, auth: &AuthCtx) -> Result<(), ApiError> {
    let now = chrono::Utc::now().timestamp();
    let minute = now / 60;
    let retry_after = u64::try_from(60 - now % 60).unwrap_or(60);
    let prefix = &state.settings.redis_prefix;
    let user_key = format!("{prefix}:rate:user:{}:{minute}", auth.user_id);
    let tenant_key = format!("{prefix}:rate:tenant:{}:{minute}", auth.tenant_id);
    let (mut redis, mut pipe) = (state.redis.clone(), redis::pipe());
    pipe.incr(&user_key, 1).expire(&user_key, 120).ignore().incr(&tenant_key, 1).expire(&tenant_key, 120).ignore();
    // Redis down or slow costs the rate limit for a moment, never the request: the count gives up quickly
    // instead of waiting through the connection manager's reconnect attempts.
    let counted = tokio::time::timeout(RATE_COUNT_WAIT, pipe.query_async::<(u64, u64)>(&mut redis)).await;
    let (user_requests, tenant_requests) = match counted {
        Ok(Ok(counts)) => counts,
        Ok(Err(error)) => {
            tracing::warn!(%error, "request rate not counted: Redis unavailable");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!("request rate not counted: Redis did not answer in time");
            return Ok(());
        }
    };
    let limited = |message: String| {
        ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with_details(serde_json::json!({ "retry_after_seconds": retry_after }))
            .retry_after(retry_after)
    };
    if user_requests > state.settings.user_requests_per_minute {
        return Err(limited(format!(
            "you have made more than {} requests this minute (USER_REQUESTS_PER_MINUTE); try again in {retry_after} s",
            state.settings.user_requests_per_minute
        )));
    }
    if tenant_requests > state.settings.tenant_requests_per_minute {
        return Err(limited(format!(
            "your workspace has made more than {} requests this minute (TENANT_REQUESTS_PER_MINUTE); try again in \
             {retry_after} s",
            state.settings.tenant_requests_per_minute
        )));
    }
    Ok(())
}
