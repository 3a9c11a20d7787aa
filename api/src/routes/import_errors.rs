//! An import's failed rows: listed as JSON, downloaded as a CSV ready to fix and upload again, and corrected
//! one by one before a retry.

use super::imports::{find_import, may_import};
use super::{Data, ListResponse, page};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use crm_shared::csv_safety::SafeCsvWriter;
use crm_shared::db::imports::{self as repo, ErrorFilter, ImportErrorView};
use crm_shared::domain::validation::{ErrorCode, Validator};
use crm_shared::imports::headers::ImportEntity;
use crm_shared::imports::rows::ErrorType;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorListParams {
    /// `validation`, `duplicate`, `reference_not_found` or `database_error`.
    pub error_type: Option<String>,
    /// An error code, e.g. `invalid_email`.
    pub code: Option<String>,
    /// `true`: only resolved errors; `false`: only unresolved ones. errors.csv defaults to `false`.
    pub resolved: Option<bool>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub include_total: Option<bool>,
}

fn error_filter(params: &ErrorListParams) -> Result<ErrorFilter, ApiError> {
    let mut validator = Validator::new();
    if let Some(kind) = &params.error_type
        && ErrorType::parse(kind).is_none()
    {
        validator.push(
            "error_type",
            ErrorCode::InvalidEnum,
            format!("{kind:?} is not one of: validation, duplicate, reference_not_found, database_error"),
        );
    }
    validator.finish()?;
    Ok(ErrorFilter {
        after_row: 0,
        error_type: params.error_type.clone(),
        code: params.code.clone(),
        resolved: params.resolved,
    })
}

/// The rows that failed, in file order, with why.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors", tag = "imports", params(("id" = Uuid, Path), ErrorListParams),
    responses((status = 200, description = "A page of failed rows", body = ListResponse<ImportErrorView>)))]
pub async fn list_errors(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ErrorListParams>,
) -> Result<Json<ListResponse<ImportErrorView>>, ApiError> {
    may_import(&auth)?;
    let (limit, offset) = page(params.limit, params.offset)?;
    let filter = error_filter(&params)?;
    let (mut tx, _) = state.begin(&auth).await?;
    find_import(&mut tx, &auth, id).await?;
    let (items, total) =
        repo::list_errors(&mut tx, auth.tenant_id, id, &filter, limit, offset, params.include_total.unwrap_or(false))
            .await?;
    tx.commit().await?;
    Ok(Json(ListResponse { items, total, limit, offset }))
}

/// The failed rows as they were in the file, each with `row_number, error_type, code, field, message` in front:
/// fix them in a spreadsheet and upload the file again. Unresolved rows by default (`resolved` filters). A cell
/// a spreadsheet would run as a formula comes with a leading `'` (§6), which the import takes off again.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.csv", tag = "imports", params(("id" = Uuid, Path), ErrorListParams),
    responses((status = 200, description = "text/csv, UTF-8", content_type = "text/csv", body = String)))]
pub async fn errors_csv(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ErrorListParams>,
) -> Result<Response, ApiError> {
    may_import(&auth)?;
    let mut filter = error_filter(&params)?;
    filter.resolved = Some(filter.resolved.unwrap_or(false));
    let (mut tx, _) = state.begin(&auth).await?;
    let view = find_import(&mut tx, &auth, id).await?;
    tx.commit().await?;
    let header: Vec<String> =
        view.header.as_ref().and_then(|header| serde_json::from_value(header.clone()).ok()).unwrap_or_default();
    let pool = state.db.clone();
    let tenant = auth.tenant_id;
    let first_line = csv_lines([["row_number", "error_type", "code", "field", "message"]
        .into_iter()
        .map(str::to_owned)
        .chain(header.iter().cloned())
        .collect()])
    .map_err(ApiError::internal)?;
    // Pages of rows stream out: a million failed rows never sit in memory at once.
    let pages = futures::stream::unfold(Some(0i64), move |after| {
        let (pool, mut filter, header) = (pool.clone(), filter.clone(), header.clone());
        async move {
            filter.after_row = after?;
            let page = async {
                let mut tx = crm_shared::db::begin_tenant(&pool, tenant).await?;
                let (rows, _) = repo::list_errors(&mut tx, tenant, id, &filter, 2_000, 0, false).await?;
                tx.commit().await?;
                Ok::<_, crm_shared::DomainError>(rows)
            }
            .await;
            match page {
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|row| row.row_number);
                    let lines = rows.into_iter().map(|row| {
                        [
                            row.row_number.to_string(),
                            row.error_type,
                            row.code,
                            row.field.unwrap_or_default(),
                            row.message,
                        ]
                        .into_iter()
                        .chain(header.iter().map(|name| match row.row_data.get(name) {
                            Some(Value::String(text)) => text.clone(),
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        }))
                        .collect::<Vec<String>>()
                    });
                    Some((csv_lines(lines).map(bytes::Bytes::from), next))
                }
            }
        }
    });
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(first_line)) }),
        pages,
    );
    let file_name = format!("import-{id}-errors.csv");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// CSV records through the product's one CSV writer: CRLF line ends, and cells a spreadsheet would run as a
/// formula guarded with `'` (§6), header names included.
fn csv_lines(records: impl IntoIterator<Item = Vec<String>>) -> std::io::Result<Vec<u8>> {
    let mut writer = SafeCsvWriter::new(Vec::new());
    for record in records {
        writer.write_record(&record)?;
    }
    Ok(writer.into_inner()?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportErrorUpdate {
    /// Values to use on retry, by file column or field name: `{"email": "ann@example.com"}`. Merged over the
    /// stored row; earlier corrections of other columns stay.
    #[schema(value_type = Option<Object>)]
    pub corrected_data: Option<HashMap<String, Option<String>>>,
    /// `true` marks the row resolved by hand (a retry leaves it alone); `false` reopens it.
    pub resolved: Option<bool>,
}

/// Corrects a failed row (used by the next retry) or marks it resolved.
#[utoipa::path(patch, path = "/api/v1/import-errors/{id}", tag = "imports", params(("id" = Uuid, Path)),
    request_body = ImportErrorUpdate,
    responses((status = 200, description = "The error with its corrections", body = Data<ImportErrorView>)))]
pub async fn update_error(
    State(state): State<AppState>,
    auth: AuthCtx,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ImportErrorUpdate>,
) -> Result<Json<Data<ImportErrorView>>, ApiError> {
    may_import(&auth)?;
    let (mut tx, _) = state.begin(&auth).await?;
    let error =
        repo::get_error(&mut tx, auth.tenant_id, id).await?.ok_or_else(|| ApiError::not_found("import error"))?;
    let import = find_import(&mut tx, &auth, error.import_id).await.map_err(|_| ApiError::not_found("import error"))?;
    let corrected = match body.corrected_data {
        None => None,
        Some(corrections) => {
            let header: Vec<String> = import
                .header
                .as_ref()
                .and_then(|header| serde_json::from_value(header.clone()).ok())
                .unwrap_or_default();
            let entity = ImportEntity::parse(&import.entity).ok_or_else(|| ApiError::not_found("import"))?;
            let mut validator = Validator::new();
            for key in corrections.keys() {
                if !header.contains(key) && !entity.fields().contains(&key.as_str()) {
                    validator.push(
                        "corrected_data",
                        ErrorCode::InvalidValue,
                        format!(
                            "{key:?} is neither a column of the file nor a field it fills; the columns are: {}",
                            header.join(", ")
                        ),
                    );
                }
            }
            validator.finish()?;
            let mut merged = match error.corrected_data.clone() {
                Some(Value::Object(existing)) => existing,
                _ => serde_json::Map::new(),
            };
            for (key, value) in corrections {
                merged.insert(key, value.map_or(Value::String(String::new()), Value::String));
            }
            Some(Value::Object(merged))
        }
    };
    let updated = repo::update_error(&mut tx, auth.tenant_id, id, corrected.as_ref(), body.resolved)
        .await?
        .ok_or_else(|| ApiError::not_found("import error"))?;
    tx.commit().await?;
    Ok(Json(Data { data: updated }))
}
