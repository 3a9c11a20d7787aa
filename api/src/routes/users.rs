//! Users of the tenant (admins only). Creating a user, changing a role and deactivating are audited.

use super::{Data, ListResponse, page};
use crate::auth::AdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crm_shared::db::audit::{self, AuditEntry};
use crm_shared::db::users::{self, NewUser, UserChanges, UserRow};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{ErrorCode, Patch, SHORT_TEXT_MAX, Validator, email, enumeration, text};
use crm_shared::{UserId, password};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// 1 to 100 (default 25).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub include_total: Option<bool>,
    /// Only users of this role.
    #[param(value_type = Option<Role>)]
    pub role: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    #[schema(example = "rep@example.com", format = Email, max_length = 320, required = true)]
    pub email: Option<String>,
    #[schema(example = "Sam Rep", required = true)]
    pub name: Option<String>,
    /// 12 to 256 characters, not mostly spaces, not the email or a variation of it, not a commonly used password.
    #[schema(min_length = 12, max_length = 256, required = true)]
    pub password: Option<String>,
    #[schema(example = "sales", value_type = Option<Role>, required = true)]
    pub role: Option<String>,
    pub team_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub role: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub is_active: Patch<bool>,
}

fn role() -> impl Fn(String) -> crm_shared::domain::validation::Normalized<Role> {
    enumeration(Role::parse, Role::allowed)
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserListParams),
    responses((status = 200, description = "The tenant's users", body = ListResponse<UserRow>)))]
pub async fn list_users(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiQuery(params): ApiQuery<UserListParams>,
) -> Result<Json<ListResponse<UserRow>>, ApiError> {
    let (limit, offset) = page(params.limit, params.offset)?;
    let mut validator = Validator::new();
    let role_filter = validator.field("role", params.role, false, role());
    validator.finish()?;
    let (mut tx, _) = state.begin(&auth).await?;
    let items = users::list(&mut tx, auth.tenant_id, role_filter, limit, offset).await?;
    let total = if params.include_total.unwrap_or(false) {
        Some(users::count(&mut tx, auth.tenant_id, role_filter).await?)
    } else {
        None
    };
    tx.commit().await?;
    Ok(Json(ListResponse { items, total, limit, offset }))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserCreate,
    responses((status = 201, description = "Created", body = Data<UserRow>)))]
pub async fn create_user(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiJson(body): ApiJson<UserCreate>,
) -> Result<(StatusCode, Json<Data<UserRow>>), ApiError> {
    let mut validator = Validator::new();
    let address = validator.field("email", body.email, true, email);
    let name = validator.field("name", body.name, true, text(SHORT_TEXT_MAX));
    let role = validator.field("role", body.role, true, role());
    let owner_email = address.clone().unwrap_or_default();
    let secret = validator.field("password", body.password, true, |password: String| {
        match password::policy_problem(&password, &owner_email) {
            Some(problem) => Err(crm_shared::domain::validation::Invalid(ErrorCode::InvalidValue, problem)),
            None => Ok(Some(password)),
        }
    });
    validator.finish()?;
    let (Some(address), Some(name), Some(role), Some(secret)) = (address, name, role, secret) else {
        return Err(ApiError::internal("validated user fields missing"));
    };
    let password_hash = state.hashing.hash(secret).await.map_err(crate::routes::auth::busy)?;

    let (mut tx, _) = state.begin(&auth).await?;
    let user = users::create(
        &mut tx,
        auth.tenant_id,
        NewUser { email: address, name, password_hash, role, team_ids: body.team_ids.unwrap_or_default() },
    )
    .await?;
    audit::record(
        &mut tx,
        Some(auth.tenant_id),
        AuditEntry {
            actor: Some(auth.user_id),
            action: "user_created",
            target_type: Some("user"),
            target_id: Some(user.id),
            details: json!({ "role": role }),
            request_id: None,
            ip: None,
        },
    )
    .await?;
    tx.commit().await?;
    // A new user, and a user's email or role, show on dashboards (per_user, team scopes).
    state.dashboards_changed(auth.tenant_id).await;
    Ok((StatusCode::CREATED, Json(Data { data: user })))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The user", body = Data<UserRow>)))]
pub async fn get_user(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Data<UserRow>>, ApiError> {
    let (mut tx, _) = state.begin(&auth).await?;
    let user = users::get(&mut tx, auth.tenant_id, UserId(id)).await?.ok_or_else(|| ApiError::not_found("user"))?;
    tx.commit().await?;
    Ok(Json(Data { data: user }))
}

/// Changes a user's name, role or active flag. The tenant's last active admin cannot be demoted or
/// deactivated (409); a deactivated user cannot sign in, and their records stay.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)), request_body = UserUpdate,
    responses((status = 200, description = "Updated", body = Data<UserRow>)))]
pub async fn update_user(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UserUpdate>,
) -> Result<Json<Data<UserRow>>, ApiError> {
    let mut validator = Validator::new();
    let changes = UserChanges {
        name: validator.patch("name", body.name, true, text(SHORT_TEXT_MAX)).flatten(),
        role: validator.patch("role", body.role, true, role()).flatten(),
        is_active: validator.patch("is_active", body.is_active, true, |active| Ok(Some(active))).flatten(),
    };
    validator.finish()?;

    let (mut tx, _) = state.begin(&auth).await?;
    let target = UserId(id);
    let before = users::get(&mut tx, auth.tenant_id, target).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let loses_admin = before.role == Role::Admin.as_str()
        && before.is_active
        && (changes.role.is_some_and(|role| role != Role::Admin) || changes.is_active == Some(false));
    if loses_admin && users::count_other_active_admins(&mut tx, auth.tenant_id, target).await? == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_admin",
            "this is the tenant's last active admin; make another user admin first",
        ));
    }
    let after =
        users::update(&mut tx, auth.tenant_id, target, &changes).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let mut events = Vec::new();
    if before.role != after.role {
        events.push(("role_changed", json!({ "from": before.role, "to": after.role })));
    }
    if before.is_active != after.is_active {
        events.push((if after.is_active { "user_reactivated" } else { "user_deactivated" }, json!({})));
    }
    for (action, details) in events {
        audit::record(
            &mut tx,
            Some(auth.tenant_id),
            AuditEntry {
                actor: Some(auth.user_id),
                action,
                target_type: Some("user"),
                target_id: Some(id),
                details,
                request_id: None,
                ip: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    state.dashboards_changed(auth.tenant_id).await;
    Ok(Json(Data { data: after }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Only this action (`login_failed`, `user_created`, `role_changed`, `user_deactivated`, ...).
    pub action: Option<String>,
}

/// The tenant's audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "users", params(AuditParams),
    responses((status = 200, description = "Audit entries", body = ListResponse<audit::AuditRow>)))]
pub async fn audit_log(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<ListResponse<audit::AuditRow>>, ApiError> {
    let (limit, offset) = page(params.limit, params.offset)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let items = audit::list(&mut tx, auth.tenant_id, params.action.as_deref(), limit, offset).await?;
    tx.commit().await?;
    Ok(Json(ListResponse { items, total: None, limit, offset }))
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(get_user).patch(update_user))
        .route("/api/v1/audit-log", get(audit_log))
}
