//! Reading an upload: the `file` field streams to storage with its size counted on every chunk and its type
//! decided on its first bytes; every other form field is read piece by piece and refused past its limit.
//! Nothing is kept when a check fails.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::Multipart;
use axum::http::StatusCode;
use crm_shared::imports::file_name;
use crm_shared::imports::reader::FileFormat;
use crm_shared::storage::FileWriter;
use serde_json::json;
use std::collections::HashMap;

pub(super) fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
}

pub(super) fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the file is larger than the import limit of {limit} bytes"),
    )
    .with_details(json!({ "max_bytes": limit }))
}

/// The format a file name and its first bytes say, or 415.
fn file_format(file_name: &str, first_bytes: &[u8]) -> Result<FileFormat, ApiError> {
    let extension = file_name.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()).unwrap_or_default();
    let zip = first_bytes.starts_with(b"PK\x03\x04");
    let ole = first_bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
    match extension.as_str() {
        "csv" if zip || ole => Err(unsupported(
            "the file is named .csv but is a spreadsheet workbook; save it as CSV or upload it as .xlsx",
        )),
        "csv" => Ok(FileFormat::Csv),
        "xlsx" if zip => Ok(FileFormat::Xlsx),
        "xlsx" => {
            Err(unsupported("the file is named .xlsx but is not an Excel workbook (.xlsx files are zip archives)"))
        }
        "xls" | "xlsb" | "xlsm" | "ods" | "numbers" => Err(unsupported(format!(
            ".{extension} files are not imported; save the sheet as .xlsx or CSV (UTF-8) and upload that"
        ))),
        _ => Err(unsupported("only .csv and .xlsx files can be imported")),
    }
}

pub(super) struct StoredUpload {
    pub key: String,
    pub file_name: String,
    pub original_file_name: Option<String>,
    pub size: u64,
    pub format: FileFormat,
}

/// Streams the `file` field to storage: type checked on the first bytes, size counted on every chunk. Nothing
/// is kept when either check fails.
async fn store_file(
    state: &AppState,
    field: &mut axum::extract::multipart::Field<'_>,
    key_base: &str,
) -> Result<StoredUpload, ApiError> {
    let limit = state.settings.import_max_bytes;
    let sent_name = field.file_name().unwrap_or("upload").to_owned();
    let file_name = file_name::clean(&sent_name);
    let original_file_name = file_name::escaped_original(&sent_name);
    let mut head: Vec<u8> = Vec::new();
    let mut writer: Option<(FileWriter, FileFormat, String)> = None;
    let mut size = 0u64;
    let result = async {
        while let Some(chunk) = field.chunk().await.map_err(|error| bad_upload(&error))? {
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large(limit));
            }
            if let Some((writer, _, _)) = writer.as_mut() {
                writer.write(chunk).await?;
                continue;
            }
            head.extend_from_slice(&chunk);
            if head.len() >= 8 {
                writer = Some(start_stored_file(state, &file_name, key_base, std::mem::take(&mut head)).await?);
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        if let Some((writer, _, _)) = writer {
            writer.abort().await;
        }
        return Err(error);
    }
    let (writer, format, key) = match writer {
        Some(started) => started,
        // A file shorter than 8 bytes.
        None => start_stored_file(state, &file_name, key_base, head).await?,
    };
    writer.finish().await?;
    Ok(StoredUpload { key, file_name, original_file_name, size, format })
}

/// Decides the format from the name and first bytes (or 415), then starts the stored file with those bytes.
async fn start_stored_file(
    state: &AppState,
    file_name: &str,
    key_base: &str,
    head: Vec<u8>,
) -> Result<(FileWriter, FileFormat, String), ApiError> {
    let format = file_format(file_name, &head)?;
    let key = format!("{key_base}.{}", format.as_str());
    let mut writer = state.storage.writer(&key).await?;
    writer.write(head.into()).await?;
    Ok((writer, format, key))
}

/// The most a form field other than `file` may hold (a mapping of many columns fits easily).
const MAX_FORM_FIELD_BYTES: usize = 64 * 1024;

/// Reads a form field other than the file, refusing it as soon as it passes `MAX_FORM_FIELD_BYTES` or holds a
/// control character.
async fn read_form_field(field: &mut axum::extract::multipart::Field<'_>, name: &str) -> Result<String, ApiError> {
    let shown = if name.is_empty() || name.chars().any(char::is_control) { "(unnamed field)" } else { name };
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|error| bad_upload(&error))? {
        if bytes.len() + chunk.len() > MAX_FORM_FIELD_BYTES {
            return Err(ApiError::field(shown, format!("is longer than {} KiB", MAX_FORM_FIELD_BYTES / 1024)));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes).map_err(|_| ApiError::field(shown, "is not valid UTF-8 text"))?;
    if let Some(bad) = text.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ApiError::field(shown, format!("holds the control character U+{:04X}", u32::from(bad))));
    }
    Ok(text)
}

fn bad_upload(error: &axum::extract::multipart::MultipartError) -> ApiError {
    let status = error.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(status, "payload_too_large", error.body_text());
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_multipart",
        format!("the upload could not be read: {}", error.body_text()),
    )
}

/// Reads an upload's form: the one `file` is streamed to storage under `key_base` (into `stored`, so the caller
/// can delete it whatever happens next), and the other fields named in `kept` into `fields`. Every other field
/// is read piece by piece and refused past its limit, never buffered whole (issue 9: a 1 GiB `entity` sent
/// chunked took the API to 2,100 MiB before its 422).
pub(super) async fn read_upload_form(
    state: &AppState,
    multipart: &mut Multipart,
    key_base: &str,
    kept: &[&str],
    stored: &mut Option<StoredUpload>,
    fields: &mut HashMap<String, String>,
) -> Result<(), ApiError> {
    while let Some(mut field) = multipart.next_field().await.map_err(|error| bad_upload(&error))? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            if stored.is_some() {
                return Err(ApiError::field("file", "send one file per import"));
            }
            *stored = Some(store_file(state, &mut field, key_base).await?);
        } else {
            let text = read_form_field(&mut field, &name).await?;
            if kept.contains(&name.as_str()) {
                fields.insert(name, text);
            }
        }
    }
    Ok(())
}
