//! Sign-in and "who am I".

use super::Data;
use crate::auth::{AuthCtx, LoginThrottle};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use chrono::{DateTime, Utc};
use crm_shared::db::audit::{self, AuditEntry};
use crm_shared::db::users;
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Validator, text};
use crm_shared::{TenantId, UserId, password};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "admin@demo.example")]
    pub email: Option<String>,
    #[schema(example = "demo-password")]
    pub password: Option<String>,
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

/// Signs in. Failed attempts are limited per email and per client address (429 with Retry-After).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = Data<LoginResponse>)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<Data<LoginResponse>>, ApiError> {
    let mut validator = Validator::new();
    let email = validator.field("email", body.email, true, text(320));
    let password = body.password.filter(|password| !password.is_empty());
    if password.is_none() {
        validator.push("password", ErrorCode::MissingRequired, "is required");
    }
    validator.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal("validated login fields missing"));
    };
    let address = peer.ip().to_string();
    LoginThrottle::check(&state, &email, &address).await?;

    let candidate = users::find_for_login(&state.db, &email).await?;
    let stored_hash =
        candidate.as_ref().map_or_else(|| password::decoy_hash().to_owned(), |user| user.password_hash.clone());
    let password_matches = tokio::task::spawn_blocking(move || password::verify(&password, &stored_hash))
        .await
        .map_err(ApiError::internal)?;

    let failure = match &candidate {
        None => Some("unknown_email"),
        Some(_) if !password_matches => Some("wrong_password"),
        Some(user) if !user.is_active => Some("inactive_user"),
        Some(_) => None,
    };
    if let Some(reason) = failure {
        LoginThrottle::record_failure(&state, &email, &address).await?;
        let mut conn = state.db.acquire().await?;
        audit::record(
            &mut conn,
            candidate.as_ref().map(|user| TenantId(user.tenant_id)),
            AuditEntry {
                actor: None,
                action: "login_failed",
                target_type: candidate.as_ref().map(|_| "user"),
                target_id: candidate.as_ref().map(|user| user.id),
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
    let Some(user) = candidate else { return Err(ApiError::internal("login candidate vanished")) };
    let role = Role::parse(&user.role).ok_or_else(|| ApiError::internal(format!("unknown role {}", user.role)))?;
    LoginThrottle::clear_email(&state, &email).await?;
    users::record_login(&state.db, UserId(user.id)).await?;
    let (token, expires_at) = state.jwt.issue(UserId(user.id), TenantId(user.tenant_id), role)?;
    Ok(Json(Data {
        data: LoginResponse {
            token,
            expires_at,
            user: SessionUser { id: user.id, email: user.email, name: user.name, role, tenant_id: user.tenant_id },
        },
    }))
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

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new().route("/api/v1/auth/login", post(login)).route("/api/v1/auth/me", get(me))
}
