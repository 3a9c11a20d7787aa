//! A look at a file before it is imported (the console's mapping preview): its columns, the field each would
//! fill with or without a `mapping`, what is missing, and its first rows, read by the same reader and header
//! rules the import uses. Nothing is kept: the file is stored under a temporary key, read, and deleted before
//! the answer.

use super::Data;
use super::import_upload::{StoredUpload, read_upload_form, unsupported};
use super::imports::may_import;
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use crm_shared::ids::new_id;
use crm_shared::imports::headers::{ImportEntity, match_columns, missing_required};
use crm_shared::imports::reader::{self, FileError};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// How many data rows a preview shows.
const PREVIEW_ROWS: usize = 5;

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewColumn {
    /// The header as the file has it (blank or repeated names made unique, as the import stores them).
    pub name: String,
    /// The field this column fills, or null when the import ignores it.
    pub field: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportPreview {
    pub entity: String,
    pub file_name: String,
    /// `csv` or `xlsx`.
    pub format: String,
    /// The text encoding detected (CSV only).
    pub encoding: Option<String>,
    /// The delimiter detected (CSV only).
    pub delimiter: Option<String>,
    pub columns: Vec<PreviewColumn>,
    /// Every field the entity takes, and the ones an import requires.
    pub fields: Vec<String>,
    pub required: Vec<String>,
    /// Why an import of this file with this mapping could not start (a required field without a column, two
    /// columns for one field), or null when it could.
    pub problem: Option<String>,
    /// The first data rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

/// Preview a file before importing it: `multipart/form-data` with `file`, `entity` and optionally `mapping`, as
/// for an upload. Answers which field each column fills and the first rows; nothing is stored or queued.
#[utoipa::path(post, path = "/api/v1/imports/preview", tag = "imports",
    request_body(content = super::imports::ImportUpload, content_type = "multipart/form-data"),
    responses((status = 200, description = "The columns, their fields and the first rows", body = Data<ImportPreview>),
              (status = 413, description = "Larger than IMPORT_MAX_BYTES", body = crate::error::ErrorBody),
              (status = 415, description = "Not a .csv or .xlsx file", body = crate::error::ErrorBody),
              (status = 422, description = "No file, an unknown entity, a malformed mapping, or a file that cannot be read", body = crate::error::ErrorBody)))]
pub async fn preview_import(
    State(state): State<AppState>,
    auth: AuthCtx,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Data<ImportPreview>>, ApiError> {
    may_import(&auth)?;
    let mut multipart =
        multipart.map_err(|_| unsupported("send the file as multipart/form-data with the fields file and entity"))?;
    let key_base = format!("previews/{}/{}", auth.tenant_id, new_id());
    let mut stored: Option<StoredUpload> = None;
    let mut fields: HashMap<String, String> = HashMap::new();
    let read =
        read_upload_form(&state, &mut multipart, &key_base, &["entity", "mapping"], &mut stored, &mut fields).await;
    let answer = match read {
        Ok(()) => preview_stored(&state, stored.as_ref(), &fields).await,
        Err(error) => Err(error),
    };
    if let Some(stored) = &stored {
        let _ = state.storage.delete(&stored.key).await;
    }
    answer.map(|preview| Json(Data { data: preview }))
}

async fn preview_stored(
    state: &AppState,
    stored: Option<&StoredUpload>,
    fields: &HashMap<String, String>,
) -> Result<ImportPreview, ApiError> {
    let stored = stored.ok_or_else(|| ApiError::field("file", "is required: the .csv or .xlsx file to preview"))?;
    let entity_text = fields.get("entity").map(|text| text.trim()).unwrap_or_default();
    let entity = ImportEntity::parse(entity_text)
        .ok_or_else(|| ApiError::field("entity", format!("{entity_text:?} is not one of: leads, clients, projects")))?;
    let mapping = match fields.get("mapping").map(|text| text.trim()) {
        None | Some("") => None,
        Some(text) => Some(
            serde_json::from_str::<HashMap<String, String>>(text)
                .map_err(|_| ApiError::field("mapping", "must be a JSON object of {\"file column\": \"field\"}"))?,
        ),
    };
    let local = state.storage.local_copy(&stored.key).await?;
    let format = stored.format;
    let read = tokio::task::spawn_blocking(move || {
        let read = reader::preview(&local.path, format, PREVIEW_ROWS);
        drop(local);
        read
    })
    .await
    .map_err(|error| ApiError::internal(anyhow::anyhow!("the preview reader stopped: {error}")))?;
    let (header, first_rows, summary) = read.map_err(|FileError(message)| ApiError::field("file", message))?;
    let (mapped, problem) = match match_columns(entity, &header.names, mapping.as_ref()) {
        Ok(mapped) => {
            let problem = missing_required(entity, &header.names, &mapped);
            (mapped, problem)
        }
        Err(problem) => (Default::default(), Some(problem)),
    };
    let columns = header
        .names
        .iter()
        .enumerate()
        .map(|(index, name)| PreviewColumn {
            name: name.clone(),
            field: mapped.iter().find(|(_, column)| **column == index).map(|(field, _)| (*field).to_owned()),
        })
        .collect();
    Ok(ImportPreview {
        entity: entity.as_str().to_owned(),
        file_name: stored.file_name.clone(),
        format: format.as_str().to_owned(),
        encoding: summary.encoding.map(|encoding| encoding.name().to_owned()),
        delimiter: summary.delimiter.map(|delimiter| char::from(delimiter).to_string()),
        columns,
        fields: entity.fields().iter().map(|field| (*field).to_owned()).collect(),
        required: entity.required().iter().map(|field| (*field).to_owned()).collect(),
        problem,
        rows: first_rows.into_iter().map(|row| row.cells).collect(),
    })
}
