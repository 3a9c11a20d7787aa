//! Teams (admins only): a manager sees the records of the members of their teams.

use super::{Data, ListResponse, page};
use crate::auth::AdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crm_shared::db::teams::{self, TeamRow};
use crm_shared::domain::validation::{ErrorCode, SHORT_TEXT_MAX, Validator, text};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamListParams {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub include_total: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamCreate {
    #[schema(example = "East", required = true)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMembers {
    /// The complete new member list (replaces the old one).
    pub user_ids: Option<Vec<Uuid>>,
}

/// Most members a team may have; larger lists are refused with 422.
pub const MAX_TEAM_MEMBERS: usize = 1000;

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", params(TeamListParams),
    responses((status = 200, description = "The tenant's teams", body = ListResponse<TeamRow>)))]
pub async fn list_teams(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiQuery(params): ApiQuery<TeamListParams>,
) -> Result<Json<ListResponse<TeamRow>>, ApiError> {
    let (limit, offset) = page(params.limit, params.offset)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let items = teams::list(&mut tx, auth.tenant_id, limit, offset).await?;
    let total =
        if params.include_total.unwrap_or(false) { Some(teams::count(&mut tx, auth.tenant_id).await?) } else { None };
    tx.commit().await?;
    Ok(Json(ListResponse { items, total, limit, offset }))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = TeamCreate,
    responses((status = 201, description = "Created", body = Data<TeamRow>)))]
pub async fn create_team(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiJson(body): ApiJson<TeamCreate>,
) -> Result<(StatusCode, Json<Data<TeamRow>>), ApiError> {
    let mut validator = Validator::new();
    let name = validator.field("name", body.name, true, text(SHORT_TEXT_MAX));
    validator.finish()?;
    let name = name.unwrap_or_default();
    let (mut tx, _) = state.begin(&auth).await?;
    let team = teams::create(&mut tx, auth.tenant_id, &name).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Data { data: team })))
}

#[utoipa::path(put, path = "/api/v1/teams/{id}/members", tag = "teams", params(("id" = Uuid, Path)),
    request_body = TeamMembers, responses((status = 200, description = "Members replaced", body = Data<TeamRow>)))]
pub async fn set_members(
    State(state): State<AppState>,
    AdminCtx(auth): AdminCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<TeamMembers>,
) -> Result<Json<Data<TeamRow>>, ApiError> {
    let mut validator = Validator::new();
    let user_ids = validator.field("user_ids", body.user_ids, true, |ids: Vec<Uuid>| {
        if ids.len() > MAX_TEAM_MEMBERS {
            return Err(crm_shared::domain::validation::Invalid(
                ErrorCode::InvalidValue,
                format!("a team has at most {MAX_TEAM_MEMBERS} members"),
            ));
        }
        Ok(Some(ids))
    });
    validator.finish()?;
    let (mut tx, _) = state.begin(&auth).await?;
    let team = teams::set_members(&mut tx, auth.tenant_id, id, &user_ids.unwrap_or_default())
        .await?
        .ok_or_else(|| ApiError::not_found("team"))?;
    tx.commit().await?;
    state.dashboards_changed(auth.tenant_id).await;
    Ok(Json(Data { data: team }))
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, put};
    axum::Router::new()
        .route("/api/v1/teams", get(list_teams).post(create_team))
        .route("/api/v1/teams/{id}/members", put(set_members))
}
