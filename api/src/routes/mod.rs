//! The HTTP surface, one module per area.

pub mod auth;
pub mod dashboard;
pub mod emails;
pub mod events;
pub mod export_download;
pub mod export_templates;
pub mod exports;
pub mod health;
pub mod import_errors;
pub mod import_preview;
mod import_upload;
pub mod imports;
pub mod jobs;
pub mod record_kinds;
pub mod records;
pub mod reports;
pub mod schedules;
pub mod teams;
pub mod ticket_replies;
pub mod users;

use crate::error::ApiError;
use crm_shared::domain::validation::{ErrorCode, Validator};
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

/// `limit` (1 to 100, default 25) and `offset` (not negative, default 0) of a paged list, or 422.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(records::DEFAULT_LIMIT);
    let offset = offset.unwrap_or(0);
    let mut validator = Validator::new();
    if !(1..=records::MAX_LIMIT).contains(&limit) {
        validator.push("limit", ErrorCode::InvalidNumber, "must be between 1 and 100");
    }
    if offset < 0 {
        validator.push("offset", ErrorCode::InvalidNumber, "must not be negative");
    }
    validator.finish()?;
    Ok((limit, offset))
}
