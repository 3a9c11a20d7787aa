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
        // Checked before the cached caller (the request limits resolve it first): a write signed in by the
        // cookie is refused here whoever resolved it.
        let by_cookie = !parts.headers.contains_key(header::AUTHORIZATION) && session_token(&parts.headers).is_some();
        if by_cookie && !parts.method.is_safe() {
            refuse_cross_site(&parts.headers)?;
        }
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
        let Some(header) = headers.get(header::AUTHORIZATION) else {
            let token = session_token(headers).ok_or_else(|| {
                ApiError::unauthorized(
                    "sign in first: send Authorization: Bearer <token> (or use the console's session)",
                )
            })?;
            return Self::from_token(token, state);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be: Bearer <token>"))?;
        Self::from_token(token, state)
    }

    fn from_token(token: &str, state: &AppState) -> Result<Self, ApiError> {
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

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "crm_session";

/// The token of the `crm_session` cookie, if the request has one.
fn session_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

/// `Set-Cookie` for the session: HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
/// it), Secure when the API is reached over https (PUBLIC_URL). `max_age` 0 clears it.
pub fn session_cookie(state: &AppState, token: &str, max_age: i64) -> String {
    let secure = if state.settings.public_url.starts_with("https://") { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// A write signed in by the cookie must come from the console itself: it carries `X-Requested-With` (which a
/// form or image on another site cannot send, and which a cross-origin script may send only after a CORS
/// preflight this API never grants), and its `Origin`, when the browser sends one, is this host.
fn refuse_cross_site(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let refused = || {
        ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf",
            "a write signed in by the session cookie must come from the console (X-Requested-With, same origin)",
        )
    };
    if headers.get("x-requested-with").and_then(|value| value.to_str().ok()) != Some("crm-console") {
        return Err(refused());
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if host.is_empty() || origin_host != host {
            return Err(refused());
        }
    }
    Ok(())
}
