//! Sign-in and "who am I".

use super::Data;
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::login_throttle::LoginAttempt;
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use crm_shared::db::audit::{self, AuditEntry};
use crm_shared::db::users;
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator, text};
use crm_shared::password::{self, HashingError, Lane};
use crm_shared::{TenantId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "admin@demo.example", max_length = 320, required = true)]
    pub email: Option<String>,
    #[schema(example = "demo-password", max_length = 256, required = true)]
    pub password: Option<String>,
    /// Only needed when the same email and password open more than one workspace (tenant): the login then
    /// answers 422 asking for it.
    pub tenant_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionUser {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub tenant_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: SessionUser,
}

const BAD_CREDENTIALS: &str = "the email or password is incorrect";

/// Signs in. Attempts are limited per email and client address (429 with `Retry-After`, see the README's
/// "Sign-in limits"); password checks run in a bounded pool, and a 503 with `Retry-After` means it is full.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = Data<LoginResponse>)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<Data<LoginResponse>>, ApiError> {
    Ok(Json(Data { data: sign_in(&state, peer, body).await? }))
}

/// Checks a sign-in and issues its token (the login and the console's session share every check and limit).
async fn sign_in(state: &AppState, peer: SocketAddr, body: LoginRequest) -> Result<LoginResponse, ApiError> {
    let mut validator = Validator::new();
    let email = validator.field("email", body.email, true, text(320));
    let password = body.password.filter(|password| !password.is_empty());
    match &password {
        None => validator.push("password", ErrorCode::MissingRequired, "is required"),
        Some(password) if password.chars().count() > password::MAX_PASSWORD_CHARS => validator.push(
            "password",
            ErrorCode::ValueTooLong,
            format!("must be at most {} characters", password::MAX_PASSWORD_CHARS),
        ),
        Some(_) => {}
    }
    validator.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal("validated login fields missing"));
    };
    let address = peer.ip().to_string();
    let lookup = users::find_for_login(&state.db, &email, body.tenant_id.map(TenantId)).await?;
    let attempt = LoginAttempt::begin(state, &lookup.email_key, &address).await?;
    let lane = if attempt.known_address { Lane::Trusted } else { Lane::Anyone };

    // Every candidate's hash is checked (the decoy's when there is none), so the time taken does not tell
    // an unknown email from a wrong password.
    let mut matching = Vec::new();
    if lookup.candidates.is_empty() {
        state.hashing.verify(lane, password.clone(), password::decoy_hash().to_owned()).await.map_err(busy)?;
    }
    for candidate in lookup.candidates.iter() {
        if state.hashing.verify(lane, password.clone(), candidate.password_hash.clone()).await.map_err(busy)? {
            matching.push(candidate);
        }
    }
    if matching.len() > 1 {
        return Err(ApiError::field(
            "tenant_id",
            "this email and password open more than one workspace; send the tenant_id of the one to sign in to",
        ));
    }
    let failure = match (lookup.candidates.first(), matching.first()) {
        (None, _) => Some("unknown_email"),
        (Some(_), None) => Some("wrong_password"),
        (_, Some(user)) if !user.is_active => Some("inactive_user"),
        _ => None,
    };
    if let Some(reason) = failure {
        // The attempt stays counted. The audit row belongs to the tenant only when one account is concerned.
        let user = matching.first().copied().or(lookup.candidates.first().filter(|_| lookup.candidates.len() == 1));
        let mut conn = state.db.acquire().await?;
        audit::record(
            &mut conn,
            user.map(|user| TenantId(user.tenant_id)),
            AuditEntry {
                actor: None,
                action: "login_failed",
                target_type: user.map(|_| "user"),
                target_id: user.map(|user| user.id),
                details: json!({ "reason": reason }),
                request_id: None,
                ip: Some(&address),
            },
        )
        .await?;
        // Only someone who knows the password learns that the account is deactivated.
        let message = if reason == "inactive_user" { "this account has been deactivated" } else { BAD_CREDENTIALS };
        return Err(ApiError::unauthorized(message));
    }
    let Some(user) = matching.first() else { return Err(ApiError::internal("login candidate vanished")) };
    let role = Role::parse(&user.role).ok_or_else(|| ApiError::internal(format!("unknown role {}", user.role)))?;
    attempt.succeeded(state).await?;
    users::record_login(&state.db, UserId(user.id)).await?;
    let (token, expires_at) = state.jwt.issue(UserId(user.id), TenantId(user.tenant_id), role, user.token_version)?;
    Ok(LoginResponse {
        token,
        expires_at,
        user: SessionUser {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            role,
            tenant_id: user.tenant_id,
        },
    })
}

/// A hashing refusal as the API answers it: 503 with `Retry-After` when the pool is full.
pub(crate) fn busy(error: HashingError) -> ApiError {
    match error {
        HashingError::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many sign-ins are being checked right now; try again in a second",
        )
        .retry_after(1),
        HashingError::Failed(problem) => ApiError::internal(problem),
    }
}

/// Signs out: every token of the caller (on every device) stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204, description = "Signed out")))]
pub async fn logout(State(state): State<AppState>, auth: AuthCtx) -> Result<StatusCode, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    users::revoke_tokens(&mut tx, auth.tenant_id, auth.user_id).await?;
    audit::record(
        &mut tx,
        Some(auth.tenant_id),
        AuditEntry {
            actor: Some(auth.user_id),
            action: "logout",
            target_type: Some("user"),
            target_id: Some(auth.user_id.as_uuid()),
            details: json!({}),
            request_id: None,
            ip: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Data<SessionUser>)))]
pub async fn me(State(state): State<AppState>, auth: AuthCtx) -> Result<Json<Data<SessionUser>>, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    let user = users::get(&mut tx, auth.tenant_id, auth.user_id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    tx.commit().await?;
    Ok(Json(Data {
        data: SessionUser {
            id: user.id,
            email: user.email,
            name: user.name,
            role: auth.role,
            tenant_id: user.tenant_id,
        },
    }))
}

/// What the console's sign-in answers: the token stays in the HttpOnly cookie, out of the page's reach.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub expires_at: DateTime<Utc>,
    pub user: SessionUser,
}

/// Signs in for the console: the same checks and limits as `login`, but the token goes into the
/// `crm_session` cookie (HttpOnly, SameSite=Strict, Secure when PUBLIC_URL is https), never into the body.
/// Requests with the cookie and no Authorization header are signed in; their writes must carry
/// `X-Requested-With` and, when the browser sends `Origin`, come from this origin (403 `csrf` otherwise).
#[utoipa::path(post, path = "/api/v1/auth/session", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Signed in; the session cookie is set", body = Data<SessionResponse>,
               headers(("Set-Cookie" = String, description = "crm_session=…; HttpOnly; SameSite=Strict; Path=/")))))]
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let signed_in = sign_in(&state, peer, body).await?;
    let max_age = (signed_in.expires_at - Utc::now()).num_seconds().max(0);
    let cookie = crate::auth::session_cookie(&state, &signed_in.token, max_age);
    let body = Json(Data { data: SessionResponse { expires_at: signed_in.expires_at, user: signed_in.user } });
    Ok(([(header::SET_COOKIE, cookie)], body).into_response())
}

/// Signs the console out: every token of the caller stops working (as `logout`), and the cookie is cleared.
#[utoipa::path(delete, path = "/api/v1/auth/session", tag = "auth",
    responses((status = 204, description = "Signed out; the session cookie is cleared")))]
pub async fn delete_session(State(state): State<AppState>, auth: AuthCtx) -> Result<Response, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    users::revoke_tokens(&mut tx, auth.tenant_id, auth.user_id).await?;
    tx.commit().await?;
    let cookie = crate::auth::session_cookie(&state, "", 0);
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/auth/session", post(create_session).delete(delete_session))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
}
