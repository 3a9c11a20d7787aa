//! The one error contract of the HTTP API: `{"error", "code", "details"}` with a stable snake_case code per
//! status (contract §2). A 5xx body never carries internals; its cause chain is logged once, here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crm_shared::DomainError;
use crm_shared::domain::validation::FieldErrors;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    pub retry_after_seconds: Option<u64>,
}

/// The error body, as documented in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A sentence for a human.
    #[schema(example = "the request has invalid fields")]
    pub error: String,
    /// Stable, machine-readable.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// For 422: `{"fields": {"field": "message"}, "errors": [{"field", "code", "message"}]}`.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: json!({}), retry_after_seconds: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn validation(errors: &FieldErrors) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "the request has invalid fields")
            .with_details(json!({ "fields": errors.messages(), "errors": errors.0 }))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "the request has invalid fields")
            .with_details(json!({ "fields": { field: message } }))
    }

    pub fn internal(error: impl std::fmt::Debug) -> Self {
        tracing::error!(error = ?error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; the x-request-id header identifies it in our logs",
        )
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        Self::validation(&errors)
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::NotFound(what) => Self::not_found(what),
            DomainError::Validation(errors) => Self::validation(&errors),
            DomainError::Conflict { message, field } => {
                let details = field.map_or_else(|| json!({}), |field| json!({ "fields": { field: message.clone() } }));
                Self::new(StatusCode::CONFLICT, "conflict", message).with_details(details)
            }
            DomainError::Forbidden(message) => Self::forbidden(message),
            DomainError::Unauthorized(message) => Self::unauthorized(message),
            DomainError::RateLimited(message, retry_after) => {
                let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
                    .with_details(json!({ "retry_after_seconds": retry_after }));
                error.retry_after_seconds = Some(retry_after);
                error
            }
            DomainError::Unavailable(dependency, cause) => {
                tracing::error!(error = ?cause, dependency, "dependency unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    format!("a service we depend on ({dependency}) is unavailable; try again shortly"),
                )
            }
            DomainError::Internal(cause) => Self::internal(cause),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        DomainError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.message, code: self.code.to_owned(), details: self.details };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_seconds
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
