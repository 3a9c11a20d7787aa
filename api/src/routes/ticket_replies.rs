//! Replies on a ticket: visible to whoever sees the ticket; added by whoever may change it.

use super::{Data, ListResponse};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use crm_shared::db::records::tickets::TicketReplyRow;
use crm_shared::db::records::{self, tickets, tickets::TicketRow};
use crm_shared::domain::access::Action;
use crm_shared::domain::records::TicketReplyCreate;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplyPage {
    /// 1 to 100 (default 25).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub include_total: Option<bool>,
}

async fn visible_ticket(
    conn: &mut crm_shared::db::PgConnection,
    auth: &AuthCtx,
    id: Uuid,
    action: Action,
) -> Result<(), ApiError> {
    let viewer = auth.viewer(records::tickets::TICKETS.entity, action)?;
    records::get::<TicketRow>(conn, auth.tenant_id, &tickets::TICKETS, &viewer, id, false)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("ticket"))
}

#[utoipa::path(get, path = "/api/v1/tickets/{id}/replies", tag = "tickets", params(("id" = Uuid, Path), ReplyPage),
    responses((status = 200, description = "The ticket's replies, oldest first", body = ListResponse<TicketReplyRow>)))]
pub async fn list_replies(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<ReplyPage>,
) -> Result<Json<ListResponse<TicketReplyRow>>, ApiError> {
    auth.scope(tickets::TICKETS.entity, Action::Read)?;
    let (limit, offset) = super::page(page.limit, page.offset)?;
    let (mut tx, _) = state.begin(&auth).await?;
    visible_ticket(&mut tx, &auth, id, Action::Read).await?;
    let items = tickets::list_replies(&mut tx, auth.tenant_id, id, limit, offset).await?;
    let total = if page.include_total.unwrap_or(false) {
        Some(tickets::count_replies(&mut tx, auth.tenant_id, id).await?)
    } else {
        None
    };
    tx.commit().await?;
    Ok(Json(ListResponse { items, total, limit, offset }))
}

#[utoipa::path(post, path = "/api/v1/tickets/{id}/replies", tag = "tickets", params(("id" = Uuid, Path)),
    request_body = TicketReplyCreate, responses((status = 201, description = "Reply added", body = Data<TicketReplyRow>)))]
pub async fn add_reply(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<TicketReplyCreate>,
) -> Result<(StatusCode, Json<Data<TicketReplyRow>>), ApiError> {
    auth.scope(tickets::TICKETS.entity, Action::Write)?;
    let (mut tx, _) = state.begin(&auth).await?;
    visible_ticket(&mut tx, &auth, id, Action::Write).await?;
    let body = body.validate()?;
    let reply = tickets::add_reply(&mut tx, auth.tenant_id, id, auth.user_id, body).await?;
    let author = crm_shared::db::users::get(&mut tx, auth.tenant_id, auth.user_id).await?.map(|user| user.email);
    crate::notify::ticket_replied(&mut tx, auth.tenant_id, &reply, author.as_deref().unwrap_or("someone")).await?;
    tx.commit().await?;
    state.dashboards_changed(auth.tenant_id).await;
    Ok((StatusCode::CREATED, Json(Data { data: reply })))
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/api/v1/tickets/{id}/replies", get(list_replies).post(add_reply))
}
