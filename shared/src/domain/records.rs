//! The CRM records' inputs (as the API receives them), and their validated forms (as repositories store them).
//! `*Create` bodies become `New*`; `*Update` bodies become `*Changes`, where `None` leaves a column alone and
//! `Some(None)` clears it.

use super::enums::{
    ClientStatus, InteractionType, LeadSource, LeadStatus, ProjectStatus, TicketCategory, TicketPriority, TicketStatus,
};
use super::validation::{
    Amount, ErrorCode, FieldErrors, LONG_TEXT_MAX, Patch, SHORT_TEXT_MAX, Validator, date, datetime, email,
    enumeration, money, phone, text,
};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// What validation needs to know about the tenant: where phone numbers without a country code are, and in
/// which time zone naive times are read.
#[derive(Debug, Clone)]
pub struct TenantLocale {
    pub default_region: String,
    pub time_zone: Tz,
}

impl Default for TenantLocale {
    fn default() -> Self {
        Self { default_region: "US".into(), time_zone: chrono_tz::UTC }
    }
}

fn keep<T>(value: T) -> Result<Option<T>, super::validation::Invalid> {
    Ok(Some(value))
}

// ---------------------------------------------------------------- leads

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadCreate {
    #[schema(example = "Ada", required = true)]
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
    #[schema(example = "(415) 555-2671")]
    pub phone: Option<String>,
    pub company: Option<String>,
    #[schema(example = "Website", value_type = Option<crate::domain::enums::LeadSource>)]
    pub lead_source: Option<String>,
    #[schema(example = "new", value_type = Option<crate::domain::enums::LeadStatus>)]
    pub status: Option<String>,
    pub notes: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
    pub converted_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadUpdate {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub first_name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub last_name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub phone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub company: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::enums::LeadSource>)]
    pub lead_source: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::enums::LeadStatus>)]
    pub status: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub notes: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub assigned_to_user_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub converted_at: Patch<String>,
}

#[derive(Debug, Clone)]
pub struct NewLead {
    pub first_name: String,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub lead_source: Option<LeadSource>,
    pub status: LeadStatus,
    pub notes: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
    pub converted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct LeadChanges {
    pub first_name: Option<String>,
    pub last_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub lead_source: Option<Option<LeadSource>>,
    pub status: Option<LeadStatus>,
    pub notes: Option<Option<String>>,
    pub assigned_to_user_id: Option<Option<Uuid>>,
    pub converted_at: Option<Option<DateTime<Utc>>>,
}

impl LeadCreate {
    pub fn validate(self, locale: &TenantLocale) -> Result<NewLead, FieldErrors> {
        let mut v = Validator::new();
        let first_name = v.field("first_name", self.first_name, true, text(SHORT_TEXT_MAX));
        let lead = NewLead {
            first_name: first_name.unwrap_or_default(),
            last_name: v.field("last_name", self.last_name, false, text(SHORT_TEXT_MAX)),
            email: v.field("email", self.email, false, email),
            phone: v.field("phone", self.phone, false, phone(&locale.default_region)),
            company: v.field("company", self.company, false, text(SHORT_TEXT_MAX)),
            lead_source: v.field("lead_source", self.lead_source, false, lead_source()),
            status: v.field("status", self.status, false, lead_status()).unwrap_or(LeadStatus::New),
            notes: v.field("notes", self.notes, false, text(LONG_TEXT_MAX)),
            assigned_to_user_id: self.assigned_to_user_id,
            converted_at: v.field("converted_at", self.converted_at, false, datetime(locale.time_zone)),
        };
        v.finish()?;
        Ok(lead)
    }
}

impl LeadUpdate {
    pub fn validate(self, locale: &TenantLocale) -> Result<LeadChanges, FieldErrors> {
        let mut v = Validator::new();
        let changes = LeadChanges {
            first_name: v.patch("first_name", self.first_name, true, text(SHORT_TEXT_MAX)).flatten(),
            last_name: v.patch("last_name", self.last_name, false, text(SHORT_TEXT_MAX)),
            email: v.patch("email", self.email, false, email),
            phone: v.patch("phone", self.phone, false, phone(&locale.default_region)),
            company: v.patch("company", self.company, false, text(SHORT_TEXT_MAX)),
            lead_source: v.patch("lead_source", self.lead_source, false, lead_source()),
            status: v.patch("status", self.status, true, lead_status()).flatten(),
            notes: v.patch("notes", self.notes, false, text(LONG_TEXT_MAX)),
            assigned_to_user_id: v.patch("assigned_to_user_id", self.assigned_to_user_id, false, keep),
            converted_at: v.patch("converted_at", self.converted_at, false, datetime(locale.time_zone)),
        };
        v.finish()?;
        Ok(changes)
    }
}

pub fn lead_status() -> impl Fn(String) -> super::validation::Normalized<LeadStatus> {
    enumeration(LeadStatus::parse, LeadStatus::allowed)
}

pub fn lead_source() -> impl Fn(String) -> super::validation::Normalized<LeadSource> {
    enumeration(LeadSource::parse, LeadSource::allowed)
}

// ---------------------------------------------------------------- clients

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    #[schema(example = "Acme Corp", required = true)]
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(example = "prospect", value_type = Option<crate::domain::enums::ClientStatus>)]
    pub status: Option<String>,
    pub industry: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdate {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub phone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::enums::ClientStatus>)]
    pub status: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub industry: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub assigned_to_user_id: Patch<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub status: ClientStatus,
    pub industry: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub status: Option<ClientStatus>,
    pub industry: Option<Option<String>>,
    pub assigned_to_user_id: Option<Option<Uuid>>,
}

impl ClientCreate {
    pub fn validate(self, locale: &TenantLocale) -> Result<NewClient, FieldErrors> {
        let mut v = Validator::new();
        let client = NewClient {
            name: v.field("name", self.name, true, text(SHORT_TEXT_MAX)).unwrap_or_default(),
            email: v.field("email", self.email, false, email),
            phone: v.field("phone", self.phone, false, phone(&locale.default_region)),
            status: v.field("status", self.status, false, client_status()).unwrap_or(ClientStatus::New),
            industry: v.field("industry", self.industry, false, text(SHORT_TEXT_MAX)),
            assigned_to_user_id: self.assigned_to_user_id,
        };
        v.finish()?;
        Ok(client)
    }
}

impl ClientUpdate {
    pub fn validate(self, locale: &TenantLocale) -> Result<ClientChanges, FieldErrors> {
        let mut v = Validator::new();
        let changes = ClientChanges {
            name: v.patch("name", self.name, true, text(SHORT_TEXT_MAX)).flatten(),
            email: v.patch("email", self.email, false, email),
            phone: v.patch("phone", self.phone, false, phone(&locale.default_region)),
            status: v.patch("status", self.status, true, client_status()).flatten(),
            industry: v.patch("industry", self.industry, false, text(SHORT_TEXT_MAX)),
            assigned_to_user_id: v.patch("assigned_to_user_id", self.assigned_to_user_id, false, keep),
        };
        v.finish()?;
        Ok(changes)
    }
}

pub fn client_status() -> impl Fn(String) -> super::validation::Normalized<ClientStatus> {
    enumeration(ClientStatus::parse, ClientStatus::allowed)
}

// ---------------------------------------------------------------- projects

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectCreate {
    #[schema(required = true)]
    pub client_id: Option<Uuid>,
    #[schema(example = "Website relaunch", required = true)]
    pub name: Option<String>,
    #[schema(example = "active", value_type = Option<crate::domain::enums::ProjectStatus>)]
    pub status: Option<String>,
    /// Decimal with at most two places, as a number or a string.
    #[schema(value_type = Option<String>, example = "12500.00")]
    pub value: Option<Amount>,
    #[schema(example = "2026-01-15")]
    pub start_date: Option<String>,
    pub close_date: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub client_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::enums::ProjectStatus>)]
    pub status: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub value: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub start_date: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub close_date: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub assigned_to_user_id: Patch<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub client_id: Uuid,
    pub name: String,
    pub status: ProjectStatus,
    pub value: Option<Decimal>,
    pub start_date: Option<NaiveDate>,
    pub close_date: Option<NaiveDate>,
    pub assigned_to_user_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    pub client_id: Option<Uuid>,
    pub name: Option<String>,
    pub status: Option<ProjectStatus>,
    pub value: Option<Option<Decimal>>,
    pub start_date: Option<Option<NaiveDate>>,
    pub close_date: Option<Option<NaiveDate>>,
    pub assigned_to_user_id: Option<Option<Uuid>>,
}

impl ProjectCreate {
    pub fn validate(self) -> Result<NewProject, FieldErrors> {
        let mut v = Validator::new();
        let client_id = v.field("client_id", self.client_id, true, keep);
        let start_date = v.field("start_date", self.start_date, false, date);
        let close_date = v.field("close_date", self.close_date, false, date);
        if let (Some(start), Some(close)) = (start_date, close_date)
            && close < start
        {
            v.push("close_date", ErrorCode::InvalidDate, "must not be before start_date");
        }
        let project = NewProject {
            client_id: client_id.unwrap_or_default(),
            name: v.field("name", self.name, true, text(SHORT_TEXT_MAX)).unwrap_or_default(),
            status: v.field("status", self.status, false, project_status()).unwrap_or(ProjectStatus::Active),
            value: v.field("value", self.value, false, |amount| money(amount.into_text())),
            start_date,
            close_date,
            assigned_to_user_id: self.assigned_to_user_id,
        };
        v.finish()?;
        Ok(project)
    }
}

impl ProjectUpdate {
    pub fn validate(self) -> Result<ProjectChanges, FieldErrors> {
        let mut v = Validator::new();
        let changes = ProjectChanges {
            client_id: v.patch("client_id", self.client_id, true, keep).flatten(),
            name: v.patch("name", self.name, true, text(SHORT_TEXT_MAX)).flatten(),
            status: v.patch("status", self.status, true, project_status()).flatten(),
            value: v.patch("value", self.value, false, |amount| money(amount.into_text())),
            start_date: v.patch("start_date", self.start_date, false, date),
            close_date: v.patch("close_date", self.close_date, false, date),
            assigned_to_user_id: v.patch("assigned_to_user_id", self.assigned_to_user_id, false, keep),
        };
        v.finish()?;
        Ok(changes)
    }
}

pub fn project_status() -> impl Fn(String) -> super::validation::Normalized<ProjectStatus> {
    enumeration(ProjectStatus::parse, ProjectStatus::allowed)
}

// ---------------------------------------------------------------- interactions

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionCreate {
    #[serde(rename = "type")]
    #[schema(example = "call", value_type = Option<crate::domain::enums::InteractionType>, required = true)]
    pub kind: Option<String>,
    #[schema(example = "2026-11-20T15:00:00Z", required = true)]
    pub contact_date: Option<String>,
    pub lead_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    /// Who had the interaction; the caller when absent.
    pub user_id: Option<Uuid>,
    pub notes: Option<String>,
    pub follow_up_at: Option<String>,
    pub completed_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionUpdate {
    #[serde(default)]
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::domain::enums::InteractionType>)]
    pub kind: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub contact_date: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub lead_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub client_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub notes: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub follow_up_at: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub completed_at: Patch<String>,
}

#[derive(Debug, Clone)]
pub struct NewInteraction {
    pub kind: InteractionType,
    pub contact_date: DateTime<Utc>,
    pub lead_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub notes: Option<String>,
    pub follow_up_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct InteractionChanges {
    pub kind: Option<InteractionType>,
    pub contact_date: Option<DateTime<Utc>>,
    pub lead_id: Option<Option<Uuid>>,
    pub client_id: Option<Option<Uuid>>,
    pub user_id: Option<Option<Uuid>>,
    pub notes: Option<Option<String>>,
    pub follow_up_at: Option<Option<DateTime<Utc>>>,
    pub completed_at: Option<Option<DateTime<Utc>>>,
}

impl InteractionCreate {
    pub fn validate(self, locale: &TenantLocale) -> Result<NewInteraction, FieldErrors> {
        let mut v = Validator::new();
        let kind = v.field("type", self.kind, true, interaction_type());
        let contact_date = v.field("contact_date", self.contact_date, true, datetime(locale.time_zone));
        if self.lead_id.is_none() && self.client_id.is_none() {
            v.push("lead_id", ErrorCode::MissingRequired, "an interaction needs a lead_id or a client_id");
        }
        let interaction = NewInteraction {
            kind: kind.unwrap_or(InteractionType::Note),
            contact_date: contact_date.unwrap_or_default(),
            lead_id: self.lead_id,
            client_id: self.client_id,
            user_id: self.user_id,
            notes: v.field("notes", self.notes, false, text(LONG_TEXT_MAX)),
            follow_up_at: v.field("follow_up_at", self.follow_up_at, false, datetime(locale.time_zone)),
            completed_at: v.field("completed_at", self.completed_at, false, datetime(locale.time_zone)),
        };
        v.finish()?;
        Ok(interaction)
    }
}

impl InteractionUpdate {
    pub fn validate(self, locale: &TenantLocale) -> Result<InteractionChanges, FieldErrors> {
        let mut v = Validator::new();
        let changes = InteractionChanges {
            kind: v.patch("type", self.kind, true, interaction_type()).flatten(),
            contact_date: v.patch("contact_date", self.contact_date, true, datetime(locale.time_zone)).flatten(),
            lead_id: v.patch("lead_id", self.lead_id, false, keep),
            client_id: v.patch("client_id", self.client_id, false, keep),
            user_id: v.patch("user_id", self.user_id, false, keep),
            notes: v.patch("notes", self.notes, false, text(LONG_TEXT_MAX)),
            follow_up_at: v.patch("follow_up_at", self.follow_up_at, false, datetime(locale.time_zone)),
            completed_at: v.patch("completed_at", self.completed_at, false, datetime(locale.time_zone)),
        };
        v.finish()?;
        Ok(changes)
    }
}

pub fn interaction_type() -> impl Fn(String) -> super::validation::Normalized<InteractionType> {
    enumeration(InteractionType::parse, InteractionType::allowed)
}

// ---------------------------------------------------------------- tickets

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketCreate {
    #[schema(example = "Cannot export to PDF", required = true)]
    pub subject: Option<String>,
    pub description: Option<String>,
    #[schema(example = "bug", value_type = Option<crate::domain::enums::TicketCategory>)]
    pub category: Option<String>,
    #[schema(example = "high", value_type = Option<crate::domain::enums::TicketPriority>)]
    pub priority: Option<String>,
    #[schema(example = "open", value_type = Option<crate::domain::enums::TicketStatus>)]
    pub status: Option<String>,
    pub queue: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
    pub closed_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketUpdate {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub subject: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::enums::TicketCategory>)]
    pub category: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::enums::TicketPriority>)]
    pub priority: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::enums::TicketStatus>)]
    pub status: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub queue: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub assigned_to_user_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub closed_at: Patch<String>,
}

#[derive(Debug, Clone)]
pub struct NewTicket {
    pub subject: String,
    pub description: Option<String>,
    pub category: TicketCategory,
    pub priority: TicketPriority,
    pub status: TicketStatus,
    pub queue: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct TicketChanges {
    pub subject: Option<String>,
    pub description: Option<Option<String>>,
    pub category: Option<TicketCategory>,
    pub priority: Option<TicketPriority>,
    pub status: Option<TicketStatus>,
    pub queue: Option<Option<String>>,
    pub assigned_to_user_id: Option<Option<Uuid>>,
    pub closed_at: Option<Option<DateTime<Utc>>>,
}

impl TicketCreate {
    pub fn validate(self, locale: &TenantLocale) -> Result<NewTicket, FieldErrors> {
        let mut v = Validator::new();
        let ticket = NewTicket {
            subject: v.field("subject", self.subject, true, text(SHORT_TEXT_MAX)).unwrap_or_default(),
            description: v.field("description", self.description, false, text(LONG_TEXT_MAX)),
            category: v.field("category", self.category, false, ticket_category()).unwrap_or(TicketCategory::Other),
            priority: v.field("priority", self.priority, false, ticket_priority()).unwrap_or(TicketPriority::Medium),
            status: v.field("status", self.status, false, ticket_status()).unwrap_or(TicketStatus::Open),
            queue: v.field("queue", self.queue, false, text(SHORT_TEXT_MAX)),
            assigned_to_user_id: self.assigned_to_user_id,
            closed_at: v.field("closed_at", self.closed_at, false, datetime(locale.time_zone)),
        };
        v.finish()?;
        Ok(ticket)
    }
}

impl TicketUpdate {
    pub fn validate(self, locale: &TenantLocale) -> Result<TicketChanges, FieldErrors> {
        let mut v = Validator::new();
        let changes = TicketChanges {
            subject: v.patch("subject", self.subject, true, text(SHORT_TEXT_MAX)).flatten(),
            description: v.patch("description", self.description, false, text(LONG_TEXT_MAX)),
            category: v.patch("category", self.category, true, ticket_category()).flatten(),
            priority: v.patch("priority", self.priority, true, ticket_priority()).flatten(),
            status: v.patch("status", self.status, true, ticket_status()).flatten(),
            queue: v.patch("queue", self.queue, false, text(SHORT_TEXT_MAX)),
            assigned_to_user_id: v.patch("assigned_to_user_id", self.assigned_to_user_id, false, keep),
            closed_at: v.patch("closed_at", self.closed_at, false, datetime(locale.time_zone)),
        };
        v.finish()?;
        Ok(changes)
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketReplyCreate {
    #[schema(example = "We are looking into it.", required = true)]
    pub body: Option<String>,
}

impl TicketReplyCreate {
    pub fn validate(self) -> Result<String, FieldErrors> {
        let mut v = Validator::new();
        let body = v.field("body", self.body, true, text(LONG_TEXT_MAX));
        v.finish()?;
        Ok(body.unwrap_or_default())
    }
}

pub fn ticket_category() -> impl Fn(String) -> super::validation::Normalized<TicketCategory> {
    enumeration(TicketCategory::parse, TicketCategory::allowed)
}
pub fn ticket_priority() -> impl Fn(String) -> super::validation::Normalized<TicketPriority> {
    enumeration(TicketPriority::parse, TicketPriority::allowed)
}
pub fn ticket_status() -> impl Fn(String) -> super::validation::Normalized<TicketStatus> {
    enumeration(TicketStatus::parse, TicketStatus::allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lead_is_normalised_and_defaults_apply() {
        let lead = LeadCreate {
            first_name: Some(" Ada ".into()),
            email: Some("ada@example.com".into()),
            phone: Some("415 555 2671".into()),
            lead_source: Some("cold call".into()),
            ..Default::default()
        }
        .validate(&TenantLocale::default())
        .expect("valid");
        assert_eq!(lead.first_name, "Ada");
        assert_eq!(lead.phone.as_deref(), Some("+14155552671"));
        assert_eq!(lead.lead_source, Some(LeadSource::ColdCall));
        assert_eq!(lead.status, LeadStatus::New);
    }

    #[test]
    fn every_bad_field_of_a_lead_is_reported() {
        let errors =
            LeadCreate { email: Some("not-an-email".into()), status: Some("won".into()), ..Default::default() }
                .validate(&TenantLocale::default())
                .expect_err("invalid");
        let messages = errors.messages();
        assert_eq!(messages.get("first_name").map(String::as_str), Some("is required"));
        assert!(messages["email"].contains("not a valid email"));
        assert!(messages["status"].contains("new, contacted, qualified, lost, converted"));
    }

    #[test]
    fn a_required_field_cannot_be_cleared() {
        let update = LeadUpdate { first_name: Patch::Null, last_name: Patch::Null, ..Default::default() };
        let errors = update.validate(&TenantLocale::default()).expect_err("first_name required");
        assert_eq!(errors.0[0].field, "first_name");
        let update = LeadUpdate { last_name: Patch::Null, ..Default::default() };
        let changes = update.validate(&TenantLocale::default()).expect("clearing last_name is fine");
        assert_eq!(changes.last_name, Some(None));
        assert_eq!(changes.first_name, None);
    }

    #[test]
    fn a_project_closes_after_it_starts() {
        let errors = ProjectCreate {
            client_id: Some(Uuid::nil()),
            name: Some("X".into()),
            start_date: Some("2026-05-01".into()),
            close_date: Some("2026-04-01".into()),
            ..Default::default()
        }
        .validate()
        .expect_err("dates reversed");
        assert_eq!(errors.0[0].field, "close_date");
    }
}
