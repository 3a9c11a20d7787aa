//! App-owned extractors: every malformed input answers the same error envelope as everything else.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;
use serde_json::json;

/// A JSON body. Syntax errors are 400; a value of the wrong type or an unknown field is 422 naming the field;
/// a body over the limit is 413; a body that is not JSON is 415.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(body_rejection)?;
        refuse_control_characters_in_json(&bytes)?;
        // Every body the API takes is an object: serde would otherwise read `["a@x", "pw"]` as a login.
        let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
        if first.is_some_and(|byte| *byte != b'{') && serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
            return Err(ApiError::field("body", "must be a JSON object"));
        }
        let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(deserializer) {
            Ok(value) => Ok(ApiJson(value)),
            Err(error) => {
                let path = error.path().to_string();
                let inner = error.into_inner();
                if inner.is_data() {
                    let field = if path == "." { "body".to_owned() } else { path };
                    let message = inner.to_string();
                    // serde's message ends with " at line L column C", which means nothing to a field.
                    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
                    Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation_failed",
                        "the request has invalid fields",
                    )
                    .with_details(json!({ "fields": { field: message } })))
                } else {
                    Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        format!("the body is not valid JSON: {inner}"),
                    ))
                }
            }
        }
    }
}

/// C0 control characters other than tab, LF and CR: no text field holds them legitimately, and Postgres refuses
/// NUL in text (it was a 500). JSON can only carry them escaped (`\u0000`), so the bytes are parsed again, to name
/// the field, only when such an escape is present.
fn is_forbidden_control(c: char) -> bool {
    c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r') && c != '\u{7f}'
}

fn control_character_message(text: &str) -> Option<String> {
    text.chars()
        .find(|c| is_forbidden_control(*c))
        .map(|c| format!("must not contain control characters (found U+{:04X})", u32::from(c)))
}

fn refuse_control_characters_in_json(bytes: &[u8]) -> Result<(), ApiError> {
    let escaped_control = bytes.windows(6).any(|window| {
        window.starts_with(b"\\u00")
            && std::str::from_utf8(&window[4..])
                .ok()
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .and_then(char::from_u32)
                .is_some_and(is_forbidden_control)
    });
    if !escaped_control {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Ok(()) };
    match find_control_character(&value, "") {
        Some((field, message)) => {
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "the request has invalid fields")
                .with_details(json!({ "fields": { field: message } })))
        }
        None => Ok(()),
    }
}

/// The first string (or key) holding a forbidden control character, with its path (`notes`, `items[2].name`).
fn find_control_character(value: &serde_json::Value, path: &str) -> Option<(String, String)> {
    let name = |path: &str| if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    match value {
        serde_json::Value::String(text) => control_character_message(text).map(|message| (name(path), message)),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(index, item)| find_control_character(item, &format!("{path}[{index}]")))
        }
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            control_character_message(key)
                .map(|message| (here.clone(), message))
                .or_else(|| find_control_character(item, &here))
        }),
        _ => None,
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
    } else {
        ApiError::bad_request(format!("the request body could not be read: {rejection}"))
    }
}

/// Query parameters; a value of the wrong type is 422 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default().as_bytes();
        if let Some((name, message)) = form_urlencoded::parse(query).find_map(|(name, value)| {
            control_character_message(&name).or(control_character_message(&value)).map(|m| (name, m))
        }) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                "the query has invalid parameters",
            )
            .with_details(json!({ "fields": { name.into_owned(): message } })));
        }
        let _ = state;
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query));
        match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(value) => Ok(ApiQuery(value)),
            Err(error) => {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                // A missing or unknown parameter names itself in the message rather than in the path.
                let field = if path.is_empty() || path == "." {
                    message.split('`').nth(1).unwrap_or("query").to_owned()
                } else {
                    path
                };
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_query",
                    format!("the query has an invalid parameter: {field}: {message}"),
                )
                .with_details(json!({ "fields": { field: message } })))
            }
        }
    }
}

/// Path parameters; an id that is not a UUID is 400.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("the path is not valid: {}", error.body_text()),
            )),
            Err(other) => Err(ApiError::internal(other)),
        }
    }
}
