//! The CRUD surface shared by leads, clients, projects, interactions and tickets (contract §4). Each entity is
//! a `RecordResource`; `record_endpoints!` gives it typed, documented handlers over the generic ones here.

use super::{Data, ListResponse};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use crm_shared::db::PgConnection;
use crm_shared::db::records::{self, Filter, ListQuery, RecordTable, Sort, Viewer};
use crm_shared::domain::access::Action;
use crm_shared::domain::records::TenantLocale;
use crm_shared::domain::validation::{ErrorCode, FieldErrors, Validator, datetime};
use crm_shared::{TenantId, UserId};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::postgres::PgRow;
use utoipa::IntoParams;
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 25;
pub const MAX_LIMIT: i64 = 100;

/// Paging, sorting, search and the filters every record list has.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 25).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Records to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Compute `total` (costs a count; otherwise `total` is null).
    pub include_total: Option<bool>,
    /// A sortable column, `-` first for descending (default `-created_at`).
    pub sort: Option<String>,
    /// Case-insensitive text search on names, email and company.
    pub q: Option<String>,
    /// `true` lists the trash (soft-deleted records) instead.
    pub deleted: Option<bool>,
    /// Records assigned to this user.
    pub assigned_to: Option<Uuid>,
    /// Created at or after (ISO 8601 date or date-time; naive values are in the tenant's time zone).
    pub created_from: Option<String>,
    /// Created before (ISO 8601 date or date-time).
    pub created_to: Option<String>,
}

/// How one entity is validated, stored and filtered.
pub trait RecordResource: Send + Sync + 'static {
    type Row: for<'r> FromRow<'r, PgRow> + Serialize + Send + Unpin + 'static;
    type Create: DeserializeOwned + Send + 'static;
    type Update: DeserializeOwned + Send + 'static;
    type Filters: DeserializeOwned + utoipa::IntoParams + Send + 'static;

    const TABLE: &'static RecordTable;

    /// The entity's own filters, with their problems collected in `validator`.
    fn filters(filters: Self::Filters, validator: &mut Validator) -> Vec<Filter>;

    /// The records a new one would point at (a project's client, an interaction's lead or client).
    fn references(_body: &Self::Create) -> Vec<Reference> {
        Vec::new()
    }

    /// The records an update would point at.
    fn update_references(_body: &Self::Update) -> Vec<Reference> {
        Vec::new()
    }

    fn insert<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        user: UserId,
        body: Self::Create,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<Self::Row, ApiError>>;

    fn update<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        viewer: Viewer,
        id: Uuid,
        body: Self::Update,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<Option<Self::Row>, ApiError>>;
}

/// A record another one points at, by field.
pub struct Reference {
    pub field: &'static str,
    pub table: &'static RecordTable,
    pub id: Uuid,
}

/// Every reference must be to a record the caller can see: another rep's lead or client is "no such" record,
/// exactly as another tenant's is (422, nothing written), so pointing at it neither works nor reveals it exists.
async fn check_references(conn: &mut PgConnection, auth: &AuthCtx, references: Vec<Reference>) -> Result<(), ApiError> {
    let mut validator = Validator::new();
    for reference in references {
        let visible = match auth.viewer(reference.table.entity, Action::Read) {
            Ok(viewer) => records::is_visible(conn, auth.tenant_id, reference.table, &viewer, reference.id).await?,
            Err(_) => false,
        };
        if !visible {
            let entity = reference.table.entity;
            let code = match entity {
                crm_shared::domain::access::Entity::Lead => ErrorCode::UnknownLead,
                _ => ErrorCode::UnknownClient,
            };
            validator.push(reference.field, code, format!("no such {} in this tenant", entity.name()));
        }
    }
    Ok(validator.finish()?)
}

/// Parses a comma-separated list of enumeration values (`status=new,contacted`).
pub fn enum_list<E: Copy>(
    validator: &mut Validator,
    field: &str,
    value: Option<String>,
    parse: fn(&str) -> Option<E>,
    allowed: fn() -> String,
    as_str: fn(E) -> &'static str,
) -> Option<Vec<String>> {
    let value = value?;
    let mut values = Vec::new();
    for part in value.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        match parse(part) {
            Some(parsed) => values.push(as_str(parsed).to_owned()),
            None => {
                validator.push(field, ErrorCode::InvalidEnum, format!("{part:?} is not one of: {}", allowed()));
                return None;
            }
        }
    }
    (!values.is_empty()).then_some(values)
}

pub(crate) fn list_query<R: RecordResource>(
    params: ListParams,
    filters: R::Filters,
    locale: &TenantLocale,
) -> Result<ListQuery, FieldErrors> {
    let table = R::TABLE;
    let mut validator = Validator::new();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        validator.push("limit", ErrorCode::InvalidNumber, format!("must be between 1 and {MAX_LIMIT}"));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        validator.push("offset", ErrorCode::InvalidNumber, "must not be negative");
    }
    let sort_text = params.sort.unwrap_or_else(|| "-created_at".into());
    let (descending, column) = match sort_text.strip_prefix('-') {
        Some(column) => (true, column),
        None => (false, sort_text.strip_prefix('+').unwrap_or(&sort_text)),
    };
    let sort = match table.sort_columns.iter().find(|candidate| **candidate == column.trim()) {
        Some(column) => Sort { column, descending },
        None => {
            let allowed = table.sort_columns.join(", ");
            validator.push(
                "sort",
                ErrorCode::InvalidEnum,
                format!("{column:?} is not one of: {allowed} (prefix - for descending)"),
            );
            Sort { column: "created_at", descending: true }
        }
    };
    let mut list_filters = R::filters(filters, &mut validator);
    if let Some(user) = params.assigned_to {
        list_filters.push(Filter::UuidEq(table.owner_column, user));
    }
    let parse_time = datetime(locale.time_zone);
    if let Some(from) = validator.field("created_from", params.created_from, false, &parse_time) {
        list_filters.push(Filter::From("created_at", from));
    }
    if let Some(to) = validator.field::<String, DateTime<Utc>>("created_to", params.created_to, false, &parse_time) {
        list_filters.push(Filter::To("created_at", to));
    }
    if params.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        validator.push("q", ErrorCode::ValueTooLong, "must be at most 200 characters");
    }
    validator.finish()?;
    Ok(ListQuery {
        limit,
        offset,
        include_total: params.include_total.unwrap_or(false),
        sort,
        search: params.q,
        trash: params.deleted.unwrap_or(false),
        filters: list_filters,
    })
}

pub async fn list<R: RecordResource>(
    state: AppState,
    auth: AuthCtx,
    params: ListParams,
    filters: R::Filters,
) -> Result<Json<ListResponse<R::Row>>, ApiError> {
    let viewer = auth.viewer(R::TABLE.entity, Action::Read)?;
    let (mut tx, session) = state.begin(&auth).await?;
    let query = list_query::<R>(params, filters, &session.locale)?;
    let page = records::list::<R::Row>(&mut tx, auth.tenant_id, R::TABLE, &viewer, &query).await?;
    tx.commit().await?;
    Ok(Json(ListResponse { items: page.items, total: page.total, limit: query.limit, offset: query.offset }))
}

pub async fn create<R: RecordResource>(
    state: AppState,
    auth: AuthCtx,
    body: R::Create,
) -> Result<(StatusCode, Json<Data<R::Row>>), ApiError> {
    auth.scope(R::TABLE.entity, Action::Write)?;
    let (mut tx, session) = state.begin(&auth).await?;
    check_references(&mut tx, &auth, R::references(&body)).await?;
    let row = R::insert(&mut tx, auth.tenant_id, auth.user_id, body, &session.locale).await?;
    tx.commit().await?;
    state.dashboards_changed(auth.tenant_id).await;
    Ok((StatusCode::CREATED, Json(Data { data: row })))
}

pub async fn get<R: RecordResource>(state: AppState, auth: AuthCtx, id: Uuid) -> Result<Json<Data<R::Row>>, ApiError> {
    let viewer = auth.viewer(R::TABLE.entity, Action::Read)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let row = records::get::<R::Row>(&mut tx, auth.tenant_id, R::TABLE, &viewer, id, false).await?;
    tx.commit().await?;
    row.map(|data| Json(Data { data })).ok_or_else(|| ApiError::not_found(R::TABLE.entity.name()))
}

pub async fn update<R: RecordResource>(
    state: AppState,
    auth: AuthCtx,
    id: Uuid,
    body: R::Update,
) -> Result<Json<Data<R::Row>>, ApiError> {
    let viewer = auth.viewer(R::TABLE.entity, Action::Write)?;
    let (mut tx, session) = state.begin(&auth).await?;
    check_references(&mut tx, &auth, R::update_references(&body)).await?;
    let row = R::update(&mut tx, auth.tenant_id, viewer, id, body, &session.locale).await?;
    tx.commit().await?;
    state.dashboards_changed(auth.tenant_id).await;
    row.map(|data| Json(Data { data })).ok_or_else(|| ApiError::not_found(R::TABLE.entity.name()))
}

pub async fn delete<R: RecordResource>(state: AppState, auth: AuthCtx, id: Uuid) -> Result<StatusCode, ApiError> {
    let viewer = auth.viewer(R::TABLE.entity, Action::Write)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let deleted = records::soft_delete(&mut tx, auth.tenant_id, R::TABLE, &viewer, id).await?;
    tx.commit().await?;
    state.dashboards_changed(auth.tenant_id).await;
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found(R::TABLE.entity.name())) }
}

pub async fn restore<R: RecordResource>(
    state: AppState,
    auth: AuthCtx,
    id: Uuid,
) -> Result<Json<Data<R::Row>>, ApiError> {
    let viewer = auth.viewer(R::TABLE.entity, Action::Write)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let row = records::restore::<R::Row>(&mut tx, auth.tenant_id, R::TABLE, &viewer, id).await?;
    tx.commit().await?;
    state.dashboards_changed(auth.tenant_id).await;
    row.map(|data| Json(Data { data }))
        .ok_or_else(|| ApiError::not_found(&format!("deleted {}", R::TABLE.entity.name())))
}

/// Typed, documented handlers and routes for one `RecordResource`.
macro_rules! record_endpoints {
    (
        $module:ident, $resource:ty, tag = $tag:literal,
        collection = $collection:literal, item = $item:literal, restore = $restore:literal,
        row = $row:ty, create = $create:ty, update = $update:ty, filters = $filters:ty
    ) => {
        pub mod $module {
            use super::*;
            use crate::extract::{ApiJson, ApiPath, ApiQuery};
            use crate::routes::records::{self as generic, ListParams};
            use axum::extract::State;
            use axum::routing::{get, post};

            #[utoipa::path(get, path = $collection, tag = $tag, operation_id = concat!("list_", $tag), params(ListParams, $filters),
                responses((status = 200, description = "A page of visible records", body = ListResponse<$row>)))]
            pub async fn list(
                State(state): State<AppState>,
                auth: AuthCtx,
                ApiQuery(params): ApiQuery<ListParams>,
                ApiQuery(filters): ApiQuery<$filters>,
            ) -> Result<Json<ListResponse<$row>>, ApiError> {
                generic::list::<$resource>(state, auth, params, filters).await
            }

            #[utoipa::path(post, path = $collection, tag = $tag, operation_id = concat!("create_", $tag), request_body = $create,
                responses((status = 201, description = "Created", body = Data<$row>)))]
            pub async fn create(
                State(state): State<AppState>,
                auth: AuthCtx,
                ApiJson(body): ApiJson<$create>,
            ) -> Result<(StatusCode, Json<Data<$row>>), ApiError> {
                generic::create::<$resource>(state, auth, body).await
            }

            #[utoipa::path(get, path = $item, tag = $tag, operation_id = concat!("get_", $tag), params(("id" = Uuid, Path)),
                responses((status = 200, description = "The record", body = Data<$row>)))]
            pub async fn get_one(
                State(state): State<AppState>,
                auth: AuthCtx,
                ApiPath(id): ApiPath<Uuid>,
            ) -> Result<Json<Data<$row>>, ApiError> {
                generic::get::<$resource>(state, auth, id).await
            }

            #[utoipa::path(patch, path = $item, tag = $tag, operation_id = concat!("update_", $tag), params(("id" = Uuid, Path)), request_body = $update,
                responses((status = 200, description = "Updated; absent fields are unchanged, null clears", body = Data<$row>)))]
            pub async fn update(
                State(state): State<AppState>,
                auth: AuthCtx,
                ApiPath(id): ApiPath<Uuid>,
                ApiJson(body): ApiJson<$update>,
            ) -> Result<Json<Data<$row>>, ApiError> {
                generic::update::<$resource>(state, auth, id, body).await
            }

            #[utoipa::path(delete, path = $item, tag = $tag, operation_id = concat!("delete_", $tag), params(("id" = Uuid, Path)),
                responses((status = 204, description = "Moved to the trash")))]
            pub async fn delete(
                State(state): State<AppState>,
                auth: AuthCtx,
                ApiPath(id): ApiPath<Uuid>,
            ) -> Result<StatusCode, ApiError> {
                generic::delete::<$resource>(state, auth, id).await
            }

            #[utoipa::path(post, path = $restore, tag = $tag, operation_id = concat!("restore_", $tag), params(("id" = Uuid, Path)),
                responses((status = 200, description = "Restored from the trash", body = Data<$row>)))]
            pub async fn restore(
                State(state): State<AppState>,
                auth: AuthCtx,
                ApiPath(id): ApiPath<Uuid>,
            ) -> Result<Json<Data<$row>>, ApiError> {
                generic::restore::<$resource>(state, auth, id).await
            }

            pub fn router() -> axum::Router<AppState> {
                axum::Router::new()
                    .route($collection, get(list).post(create))
                    .route($item, get(get_one).patch(update).delete(delete))
                    .route($restore, post(restore))
            }
        }
    };
}
pub(crate) use record_endpoints;
