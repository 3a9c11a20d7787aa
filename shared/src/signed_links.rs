//! Download links that work without a token (for email): `?expires=<unix seconds>&signature=<hex>`, where the
//! signature is an HMAC-SHA256 over the export's id and the expiry, keyed from `JWT_SECRET` (a key of its own
//! derived from it, so a signature is never a valid token part). Changing either fails the check. The API
//! checks them; the API and the worker (export-ready emails) make them.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// `None` only if the HMAC refused the key, which HMAC-SHA256 never does (it takes keys of any length).
fn mac(jwt_secret: &str, export_id: Uuid, expires: i64) -> Option<Hmac<Sha256>> {
    let key = format!("export-download-links:{jwt_secret}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(format!("export:{export_id}:{expires}").as_bytes());
    Some(mac)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The download route (a path) with a signature valid until `expires_at`.
pub fn export_download_path(jwt_secret: &str, export_id: Uuid, expires_at: DateTime<Utc>) -> Option<String> {
    let expires = expires_at.timestamp();
    let signature = hex(&mac(jwt_secret, export_id, expires)?.finalize().into_bytes());
    Some(format!("/api/v1/exports/{export_id}/download?expires={expires}&signature={signature}"))
}

/// Whether `signature` is the one `export_download_path` made for this id and expiry (compared in constant time).
pub fn verify_export_download(jwt_secret: &str, export_id: Uuid, expires: i64, signature: &str) -> bool {
    let Some(bytes) = (0..signature.len())
        .step_by(2)
        .map(|at| signature.get(at..at + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(jwt_secret, export_id, expires).is_some_and(|mac| mac.verify_slice(&bytes).is_ok())
}
