//! The HTTP surface, one module per area.

pub mod auth;
pub mod health;
pub mod jobs;
pub mod record_kinds;
pub mod records;
pub mod teams;
pub mod ticket_replies;
pub mod users;

use serde::Serialize;
use utoipa::ToSchema;

/// A single resource: `{"data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

/// A page of a list: `total` is null unless `include_total=true` was asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub total: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}
