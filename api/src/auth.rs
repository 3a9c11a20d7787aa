//! Authentication: HS256 tokens, the `AuthCtx` extractor and role guards.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use chrono::{DateTime, Utc};
use crm_shared::domain::access::{self, Action, Entity, Scope};
use crm_shared::domain::enums::Role;
use crm_shared::{TenantId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    tenant: Uuid,
    role: Role,
    /// The user's token version when this token was issued; a later logout or (de)activation bumps it.
    #[serde(default)]
    ver: i32,
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

    pub fn issue(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        token_version: i32,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(self.ttl).map_err(ApiError::internal)?;
        let claims = Claims {
            sub: user.0,
            tenant: tenant.0,
            role,
            ver: token_version,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
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
    /// Checked against the user's current version on every transaction (`AppState::begin`).
    pub token_version: i32,
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
        if let Some(auth) = parts.extensions.get::<AuthCtx>() {
            return Ok(*auth);
        }
        let auth = Self::from_headers(&parts.headers, state)?;
        parts.extensions.insert(auth);
        Ok(auth)
    }
}

impl AuthCtx {
    /// Validates the bearer token of a request. Cheap (an HMAC), so the request limits can run it before
    /// any handler does.
    pub fn from_headers(headers: &axum::http::HeaderMap, state: &AppState) -> Result<Self, ApiError> {
        let header = headers
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
        Ok(AuthCtx {
            tenant_id: TenantId(claims.tenant),
            user_id: UserId(claims.sub),
            role: claims.role,
            token_version: claims.ver,
        })
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
