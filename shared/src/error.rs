//! The domain error every repository and service returns. The API maps each variant to a status and a stable
//! code (api::error); database constraint violations are translated here, by constraint name, into the field
//! the user has to fix.

use crate::domain::validation::{ErrorCode, FieldError, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Missing, or another tenant's, or not visible to the caller: indistinguishable on purpose.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the request has invalid fields")]
    Validation(FieldErrors),
    #[error("{message}")]
    Conflict { message: String, field: Option<&'static str> },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    RateLimited(String, u64),
    /// A dependency (Postgres, Redis, storage) cannot be reached.
    #[error("{0} is unavailable")]
    Unavailable(&'static str, #[source] anyhow::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl DomainError {
    pub fn field(field: &'static str, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::one(FieldError::new(field, code, message)))
    }
}

/// How a violated constraint reads to the user: the field to blame and what to say.
enum ConstraintMeaning {
    Duplicate(&'static str, &'static str),
    Invalid(&'static str, ErrorCode, &'static str),
}

fn constraint_meaning(constraint: &str) -> Option<ConstraintMeaning> {
    use ConstraintMeaning::*;
    Some(match constraint {
        "leads_email_key" => Duplicate("email", "a lead with this email already exists"),
        "clients_email_key" => Duplicate("email", "a client with this email already exists"),
        "users_email_key" => Duplicate("email", "a user of this workspace already has this email"),
        "teams_name_key" => Duplicate("name", "a team with this name already exists"),
        "export_templates_name_key" => Duplicate("name", "you already have an export template with this name"),
        "leads_assigned_to_fkey"
        | "clients_assigned_to_fkey"
        | "projects_assigned_to_fkey"
        | "tickets_assigned_to_fkey" => {
            Invalid("assigned_to_user_id", ErrorCode::UnknownUser, "no such user in this tenant")
        }
        "interactions_user_fkey" => Invalid("user_id", ErrorCode::UnknownUser, "no such user in this tenant"),
        "user_teams_user_fkey" => Invalid("user_ids", ErrorCode::UnknownUser, "no such user in this tenant"),
        "user_teams_team_fkey" => Invalid("team_ids", ErrorCode::UnknownTeam, "no such team in this tenant"),
        "projects_client_fkey" | "interactions_client_fkey" => {
            Invalid("client_id", ErrorCode::UnknownClient, "no such client in this tenant")
        }
        "interactions_lead_fkey" => Invalid("lead_id", ErrorCode::UnknownLead, "no such lead in this tenant"),
        "interactions_subject_check" => {
            Invalid("lead_id", ErrorCode::MissingRequired, "an interaction needs a lead_id or a client_id")
        }
        "projects_dates_check" => Invalid("close_date", ErrorCode::InvalidDate, "must not be before start_date"),
        _ => return None,
    })
}

impl From<sqlx::Error> for DomainError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db_error) = &error
            && let Some(meaning) = db_error.constraint().and_then(constraint_meaning)
        {
            return match meaning {
                ConstraintMeaning::Duplicate(field, message) => {
                    DomainError::Conflict { message: message.into(), field: Some(field) }
                }
                ConstraintMeaning::Invalid(field, code, message) => DomainError::field(field, code, message),
            };
        }
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                DomainError::Unavailable("database", error.into())
            }
            other => DomainError::Internal(other.into()),
        }
    }
}

impl From<redis::RedisError> for DomainError {
    fn from(error: redis::RedisError) -> Self {
        DomainError::Unavailable("redis", error.into())
    }
}
