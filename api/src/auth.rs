//! Authentication: HS256 tokens, the `AuthCtx` extractor, role guards and login rate limiting.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use chrono::{DateTime, Utc};
use crm_shared::domain::access::{self, Action, Entity, Scope};
use crm_shared::domain::enums::Role;
use crm_shared::{DomainError, TenantId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redis::AsyncCommands;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    tenant: Uuid,
    role: Role,
    iat: i64,
    exp: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

/// Tolerated clock difference between API replicas, for `iat` and `exp`.
const CLOCK_SKEW_SECONDS: u64 = 30;

impl JwtKeys {
    pub fn new(settings: &crm_shared::config::Settings) -> Self {
        let secret = settings.jwt_secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = CLOCK_SKEW_SECONDS;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl: settings.jwt_ttl,
        }
    }

    pub fn issue(&self, user: UserId, tenant: TenantId, role: Role) -> Result<(String, DateTime<Utc>), ApiError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(self.ttl).map_err(ApiError::internal)?;
        let claims = Claims { sub: user.0, tenant: tenant.0, role, iat: now.timestamp(), exp: expires_at.timestamp() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, expires_at))
    }

    fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature => ApiError::unauthorized("the token has expired; sign in again"),
                _ => ApiError::unauthorized("the token is not valid"),
            }
        })?;
        // A token issued in the future was not issued by us (or a clock is badly wrong).
        if data.claims.iat > Utc::now().timestamp() + CLOCK_SKEW_SECONDS as i64 {
            return Err(ApiError::unauthorized("the token is not valid"));
        }
        Ok(data.claims)
    }
}

/// The signed-in caller. Extracting it validates the bearer token; handlers then ask it for permissions.
#[derive(Debug, Clone, Copy)]
pub struct AuthCtx {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
}

impl AuthCtx {
    /// The scope of records the caller may act on, or 403 when the role may not do this at all.
    pub fn scope(&self, entity: Entity, action: Action) -> Result<Scope, ApiError> {
        access::scope(self.role, entity, action).ok_or_else(|| {
            let verb = if action == Action::Read { "read" } else { "change" };
            ApiError::forbidden(format!("the {} role may not {verb} {}s", self.role, entity.name()))
        })
    }

    /// Whose work (imports, jobs) the caller sees: `None` for an admin (the whole tenant), else only their own.
    pub fn own_work_only(&self) -> Option<uuid::Uuid> {
        (self.role != Role::Admin).then(|| self.user_id.as_uuid())
    }

    pub fn viewer(&self, entity: Entity, action: Action) -> Result<crm_shared::db::records::Viewer, ApiError> {
        Ok(crm_shared::db::records::Viewer { user_id: self.user_id, scope: self.scope(entity, action)? })
    }
}

impl FromRequestParts<AppState> for AuthCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("sign in first: send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be: Bearer <token>"))?;
        let claims = state.jwt.verify(token)?;
        let span = tracing::Span::current();
        span.record("tenant_id", tracing::field::display(claims.tenant));
        span.record("user_id", tracing::field::display(claims.sub));
        Ok(AuthCtx { tenant_id: TenantId(claims.tenant), user_id: UserId(claims.sub), role: claims.role })
    }
}

/// A caller who must be an admin (users, teams, operations).
#[derive(Debug, Clone, Copy)]
pub struct AdminCtx(pub AuthCtx);

impl FromRequestParts<AppState> for AdminCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthCtx::from_request_parts(parts, state).await?;
        if auth.role != Role::Admin {
            return Err(ApiError::forbidden("only admins may do this"));
        }
        Ok(AdminCtx(auth))
    }
}

/// Login throttling in Redis, shared by every API replica: failures are counted per email and per client
/// address over a window; past the limit, logins answer 429 until the window ends.
pub struct LoginThrottle;

pub const LOGIN_WINDOW_SECONDS: u64 = 15 * 60;
pub const MAX_FAILURES_PER_EMAIL: u64 = 5;
pub const MAX_FAILURES_PER_ADDRESS: u64 = 50;

impl LoginThrottle {
    fn keys(state: &AppState, email: &str, address: &str) -> [(String, u64); 2] {
        let prefix = &state.settings.redis_prefix;
        [
            (format!("{prefix}:login-failures:email:{}", email.trim().to_lowercase()), MAX_FAILURES_PER_EMAIL),
            (format!("{prefix}:login-failures:addr:{address}"), MAX_FAILURES_PER_ADDRESS),
        ]
    }

    pub async fn check(state: &AppState, email: &str, address: &str) -> Result<(), DomainError> {
        let mut redis = state.redis.clone();
        for (key, limit) in Self::keys(state, email, address) {
            let failures: Option<u64> = redis.get(&key).await?;
            if failures.unwrap_or(0) >= limit {
                let ttl: i64 = redis.ttl(&key).await?;
                let retry_after = u64::try_from(ttl).unwrap_or(LOGIN_WINDOW_SECONDS).max(1);
                return Err(DomainError::RateLimited(
                    format!("too many failed sign-in attempts; try again in {retry_after} seconds"),
                    retry_after,
                ));
            }
        }
        Ok(())
    }

    pub async fn record_failure(state: &AppState, email: &str, address: &str) -> Result<(), DomainError> {
        let mut redis = state.redis.clone();
        for (key, _) in Self::keys(state, email, address) {
            // The window starts at the first failure (NX) and is not extended by later ones.
            let _: () = redis::pipe()
                .incr(&key, 1)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(LOGIN_WINDOW_SECONDS)
                .arg("NX")
                .query_async(&mut redis)
                .await?;
        }
        Ok(())
    }

    pub async fn clear_email(state: &AppState, email: &str) -> Result<(), DomainError> {
        let mut redis = state.redis.clone();
        let [(key, _), _] = Self::keys(state, email, "");
        let _: () = redis.del(key).await?;
        Ok(())
    }
}
