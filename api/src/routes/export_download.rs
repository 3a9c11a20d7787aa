//! Downloading an export's file: with a bearer token (the requester or an admin), or through the signed,
//! expiring link of `download_url`, which needs no token (403 when changed, 410 once expired). Every download
//! is in the audit log.

use super::exports::find_export;
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::signed_links;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use crm_shared::db::audit::{self, AuditEntry};
use crm_shared::db::exports as repo;
use crm_shared::exports::ExportFormat;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// With `signature`: the link's expiry (Unix seconds), from `download_url`.
    pub expires: Option<i64>,
    pub signature: Option<String>,
}

/// The file, streamed with its type, length and an attachment name. With a bearer token: the requester or an
/// admin. Without one: the signed link of `download_url` (403 when changed, 410 once expired).
#[utoipa::path(get, path = "/api/v1/exports/{id}/download", tag = "exports", params(("id" = Uuid, Path), DownloadParams),
    responses((status = 200, description = "The file, in the export's format",
               content(("text/csv; charset=utf-8"), ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                       ("application/pdf"))),
              (status = 409, description = "Not finished yet (`export_not_ready`)", body = crate::error::ErrorBody),
              (status = 410, description = "Expired (`export_expired`)", body = crate::error::ErrorBody)))]
pub async fn download_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<DownloadParams>,
) -> Result<Response, ApiError> {
    let (row, actor) = if headers.contains_key(header::AUTHORIZATION) {
        let auth = AuthCtx::from_headers(&headers, &state)?;
        let (mut tx, _) = state.begin(&auth).await?;
        let row = find_export(&mut tx, &auth, id).await?;
        tx.commit().await?;
        (row, Some(auth.user_id))
    } else {
        let (Some(expires), Some(signature)) = (params.expires, params.signature.as_deref()) else {
            return Err(ApiError::unauthorized("sign in, or use the export's download_url"));
        };
        if !signed_links::verify_export_download(&state, id, expires, signature) {
            return Err(ApiError::forbidden("this download link is not valid"));
        }
        if expires < Utc::now().timestamp() {
            return Err(ApiError::new(StatusCode::GONE, "export_expired", "this download link has expired"));
        }
        let row = repo::find_for_link(&state.db, id).await?.ok_or_else(|| ApiError::not_found("export"))?;
        (row, None)
    };
    match row.status.as_str() {
        "completed" => {}
        "expired" => {
            return Err(ApiError::new(StatusCode::GONE, "export_expired", "the export has expired; run it again"));
        }
        "queued" | "running" => {
            return Err(ApiError::new(StatusCode::CONFLICT, "export_not_ready", "the export has not finished yet"));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "export_not_ready",
                format!("the export {other}; it has no file"),
            ));
        }
    }
    if row.expires_at.is_some_and(|at| at < Utc::now()) {
        return Err(ApiError::new(StatusCode::GONE, "export_expired", "the export has expired; run it again"));
    }
    let key = row.storage_key.clone().ok_or_else(|| ApiError::internal("a completed export without a file"))?;
    let (size, stream) = state.storage.read_stream(&key).await?;
    let mut conn = state.db.acquire().await?;
    let tenant = crm_shared::TenantId(row.tenant_id);
    let mut tx = crm_shared::db::begin_tenant_on(&mut conn, tenant).await?;
    audit::record(
        &mut tx,
        Some(tenant),
        AuditEntry {
            actor,
            action: "export_downloaded",
            target_type: Some("export"),
            target_id: Some(row.id),
            details: json!({ "signed_link": actor.is_none() }),
            request_id: None,
            ip: None,
        },
    )
    .await?;
    tx.commit().await?;
    let format = ExportFormat::parse(&row.format).unwrap_or(ExportFormat::Csv);
    let ascii: String = row
        .file_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let encoded: String = row
        .file_name
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}
