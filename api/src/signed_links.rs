//! Signed export download links (`crm_shared::signed_links`), keyed from this process's `JWT_SECRET`.

use crate::state::AppState;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use uuid::Uuid;

/// The download route with a signature valid until `expires_at`.
pub fn export_download_url(state: &AppState, export_id: Uuid, expires_at: DateTime<Utc>) -> Option<String> {
    crm_shared::signed_links::export_download_path(state.settings.jwt_secret.expose_secret(), export_id, expires_at)
}

/// Whether `signature` is the one `export_download_url` made for this id and expiry.
pub fn verify_export_download(state: &AppState, export_id: Uuid, expires: i64, signature: &str) -> bool {
    crm_shared::signed_links::verify_export_download(
        state.settings.jwt_secret.expose_secret(),
        export_id,
        expires,
        signature,
    )
}
