//! One spreadsheet row → the canonical text of each field, or the problems that stop it. The rules are the
//! API's own normalisers (`domain::validation`), so a value the API refuses is refused here with the same
//! code. References (owner by email, a project's client) and duplicates against the database need Postgres and
//! are resolved by the import job; this module yields their lookup keys.

use super::headers::{ColumnMap, ImportEntity};
use super::reader::{MAX_CELL_CHARS, SourceRow};
use crate::domain::enums::{ClientStatus, LeadSource, LeadStatus, ProjectStatus};
use crate::domain::records::TenantLocale;
use crate::domain::validation::{
    ErrorCode, Invalid, LONG_TEXT_MAX, Normalized, SHORT_TEXT_MAX, date, datetime, email, enumeration, money, phone,
    text,
};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// `import_errors.error_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    Validation,
    Duplicate,
    ReferenceNotFound,
    DatabaseError,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Validation => "validation",
            ErrorType::Duplicate => "duplicate",
            ErrorType::ReferenceNotFound => "reference_not_found",
            ErrorType::DatabaseError => "database_error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [ErrorType::Validation, ErrorType::Duplicate, ErrorType::ReferenceNotFound, ErrorType::DatabaseError]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// Why a row was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub error_type: ErrorType,
    pub code: ErrorCode,
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(error_type: ErrorType, code: ErrorCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Self { error_type, code, field: field.map(str::to_owned), message: message.into() }
    }
}

/// How a field's cell is read.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Text(usize),
    Email,
    Phone,
    LeadSource,
    LeadStatus,
    ClientStatus,
    ProjectStatus,
    Date,
    DateTime,
    Money,
    /// A user's email in the tenant; resolved by the job.
    UserEmail,
    /// A client's name or email in the tenant; resolved by the job.
    ClientRef,
}

fn rule(entity: ImportEntity, field: &str) -> Rule {
    match (entity, field) {
        (_, "email") => Rule::Email,
        (_, "phone") => Rule::Phone,
        (_, "notes") => Rule::Text(LONG_TEXT_MAX),
        (_, "assigned_to") => Rule::UserEmail,
        (_, "created_at" | "converted_at") => Rule::DateTime,
        (_, "start_date" | "close_date") => Rule::Date,
        (_, "value") => Rule::Money,
        (_, "client") => Rule::ClientRef,
        (_, "lead_source") => Rule::LeadSource,
        (ImportEntity::Leads, "status") => Rule::LeadStatus,
        (ImportEntity::Clients, "status") => Rule::ClientStatus,
        (ImportEntity::Projects, "status") => Rule::ProjectStatus,
        _ => Rule::Text(SHORT_TEXT_MAX),
    }
}

fn canonical<E>(
    parse: fn(&str) -> Option<E>,
    allowed: fn() -> String,
    as_str: fn(E) -> &'static str,
    value: String,
) -> Normalized<String>
where
    E: Copy,
{
    enumeration(parse, allowed)(value).map(|parsed| parsed.map(|value| as_str(value).to_owned()))
}

/// A row ready to write: the canonical text of each field of `ImportEntity::fields()` (None when blank).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRow {
    pub index: u64,
    pub row_number: u64,
    pub values: Vec<Option<String>>,
}

pub struct RowValidator {
    entity: ImportEntity,
    columns: ColumnMap,
    locale: TenantLocale,
    header: Vec<String>,
    rules: Vec<(&'static str, Rule, Option<usize>)>,
}

impl RowValidator {
    pub fn new(entity: ImportEntity, columns: ColumnMap, header: Vec<String>, locale: TenantLocale) -> Self {
        let rules = entity.fields().iter().map(|field| (*field, rule(entity, field), columns.column(field))).collect();
        Self { entity, columns, locale, header, rules }
    }

    pub fn entity(&self) -> ImportEntity {
        self.entity
    }

    pub fn columns(&self) -> &ColumnMap {
        &self.columns
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Where a field sits in `ValidRow::values`.
    pub fn position(&self, field: &str) -> Option<usize> {
        self.rules.iter().position(|(name, _, _)| *name == field)
    }

    /// The key that makes two rows the same record: a lead's or client's email, a project's client and name
    /// (lowercased). Only a well-formed key counts, so a row claims its key even when another of its fields is
    /// wrong; that keeps the first occurrence the one every later copy is reported against.
    pub fn duplicate_key(&self, row: &SourceRow) -> Option<String> {
        let cell = |field: &str| self.columns.column(field).and_then(|column| row.cells.get(column));
        match self.entity {
            ImportEntity::Leads | ImportEntity::Clients => {
                email(cell("email")?.clone()).ok().flatten().map(|address| address.to_lowercase())
            }
            ImportEntity::Projects => {
                let client = cell("client")?.trim().to_lowercase();
                let name = cell("name")?.trim().to_lowercase();
                (!client.is_empty() && !name.is_empty()).then(|| format!("{client}\u{1f}{name}"))
            }
        }
    }

    pub fn validate(&self, row: &SourceRow) -> Result<ValidRow, Vec<Problem>> {
        if let Some(reason) = &row.malformed {
            return Err(vec![Problem::new(ErrorType::Validation, ErrorCode::MalformedRow, None, reason.clone())]);
        }
        let mut problems = Vec::new();
        for (column, cell) in row.cells.iter().enumerate() {
            if cell.len() > MAX_CELL_CHARS && cell.chars().count() > MAX_CELL_CHARS {
                let name = self.header.get(column).cloned().unwrap_or_default();
                let field = self.columns.fields.iter().find(|(_, c)| **c == column).map(|(f, _)| (*f).to_owned());
                problems.push(Problem {
                    error_type: ErrorType::Validation,
                    code: ErrorCode::ValueTooLong,
                    field: Some(field.unwrap_or(name.clone())),
                    message: format!("the cell in column {name:?} is longer than {MAX_CELL_CHARS} characters"),
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut values = Vec::with_capacity(self.rules.len());
        for (field, rule, column) in &self.rules {
            let raw = column.and_then(|column| row.cells.get(column)).cloned();
            let normalized = match raw {
                None => Ok(None),
                Some(raw) => self.apply(*rule, raw),
            };
            match normalized {
                Ok(value) => {
                    if value.is_none() && self.entity.required().contains(field) {
                        problems.push(Problem::new(
                            ErrorType::Validation,
                            ErrorCode::MissingRequired,
                            Some(field),
                            format!("{field} is required"),
                        ));
                    }
                    values.push(value);
                }
                Err(Invalid(code, message)) => {
                    problems.push(Problem::new(
                        ErrorType::Validation,
                        code,
                        Some(field),
                        format!("{field}: {message}"),
                    ));
                    values.push(None);
                }
            }
        }
        if self.entity == ImportEntity::Projects {
            let (start, close) = (self.position("start_date"), self.position("close_date"));
            if let (Some(Some(start)), Some(Some(close))) =
                (start.map(|i| values[i].as_deref()), close.map(|i| values[i].as_deref()))
                && close < start
            {
                problems.push(Problem::new(
                    ErrorType::Validation,
                    ErrorCode::InvalidDate,
                    Some("close_date"),
                    format!("close_date: {close} is before start_date {start}"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(ValidRow { index: row.index, row_number: row.row_number, values })
        } else {
            Err(problems)
        }
    }

    fn apply(&self, rule: Rule, raw: String) -> Normalized<String> {
        match rule {
            Rule::Text(max) => text(max)(raw),
            Rule::Email => email(raw),
            Rule::Phone => phone(&self.locale.default_region)(raw),
            Rule::LeadSource => canonical(LeadSource::parse, LeadSource::allowed, LeadSource::as_str, raw),
            Rule::LeadStatus => canonical(LeadStatus::parse, LeadStatus::allowed, LeadStatus::as_str, raw),
            Rule::ClientStatus => canonical(ClientStatus::parse, ClientStatus::allowed, ClientStatus::as_str, raw),
            Rule::ProjectStatus => canonical(ProjectStatus::parse, ProjectStatus::allowed, ProjectStatus::as_str, raw),
            Rule::Date => date(raw).map(|value| value.map(|day| day.format("%Y-%m-%d").to_string())),
            Rule::DateTime => datetime(self.locale.time_zone)(raw).map(|value| value.map(|moment| moment.to_rfc3339())),
            Rule::Money => money(raw).map(|value| value.map(|amount| amount.to_string())),
            Rule::UserEmail => match email(raw) {
                Ok(value) => Ok(value.map(|address| address.to_lowercase())),
                Err(Invalid(_, message)) => Err(Invalid(ErrorCode::UnknownUser, message)),
            },
            Rule::ClientRef => text(SHORT_TEXT_MAX)(raw).map(|value| value.map(|key| key.to_lowercase())),
        }
    }
}

/// Remembers which row first used each duplicate key. Keys are kept as 64-bit hashes, so a million-row file
/// costs about 16 MiB here, not the keys' own size.
#[derive(Debug, Default)]
pub struct DuplicateTracker {
    first_rows: HashMap<u64, u64>,
}

impl DuplicateTracker {
    /// The row that used `key` first, when it was not this one.
    pub fn claim(&mut self, key: &str, row_number: u64) -> Option<u64> {
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        let first = *self.first_rows.entry(hasher.finish()).or_insert(row_number);
        (first != row_number).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::headers::map_columns;

    fn validator(entity: ImportEntity, header: &[&str]) -> RowValidator {
        let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
        let columns = map_columns(entity, &header, None).expect("columns");
        RowValidator::new(entity, columns, header, TenantLocale::default())
    }

    fn row(cells: &[&str]) -> SourceRow {
        SourceRow {
            index: 1,
            row_number: 2,
            line_number: Some(2),
            cells: cells.iter().map(|c| (*c).to_owned()).collect(),
            malformed: None,
        }
    }

    fn codes(result: Result<ValidRow, Vec<Problem>>) -> Vec<(ErrorCode, Option<String>)> {
        result.expect_err("problems").into_iter().map(|p| (p.code, p.field)).collect()
    }

    #[test]
    fn a_good_lead_row_is_canonical() {
        let v =
            validator(ImportEntity::Leads, &["First Name", "Email", "Phone", "Lead Source", "Status", "Created At"]);
        let valid = v.validate(&row(&["Ada", "Ada@Example.com", "(415) 555-2671", "cold call", "", "03/31/2024"]));
        let values = valid.expect("valid").values;
        let get = |field: &str| values[v.position(field).expect("field")].clone();
        assert_eq!(get("first_name").as_deref(), Some("Ada"));
        assert_eq!(get("email").as_deref(), Some("Ada@Example.com"));
        assert_eq!(get("phone").as_deref(), Some("+14155552671"));
        assert_eq!(get("lead_source").as_deref(), Some("Cold Call"));
        assert_eq!(get("status"), None, "blank status is left to the table default, new");
        assert_eq!(get("created_at").as_deref(), Some("2024-03-31T00:00:00+00:00"));
    }

    #[test]
    fn every_problem_of_a_row_is_reported() {
        let v = validator(ImportEntity::Leads, &["first_name", "email", "phone", "status", "assigned_to"]);
        let found = codes(v.validate(&row(&["", "nope", "12", "hot", "boss"])));
        assert_eq!(
            found,
            [
                (ErrorCode::MissingRequired, Some("first_name".into())),
                (ErrorCode::InvalidEmail, Some("email".into())),
                (ErrorCode::InvalidPhone, Some("phone".into())),
                (ErrorCode::InvalidEnum, Some("status".into())),
                (ErrorCode::UnknownUser, Some("assigned_to".into())),
            ]
        );
    }

    #[test]
    fn projects_check_amounts_dates_and_their_order() {
        let v = validator(ImportEntity::Projects, &["client", "name", "value", "start_date", "close_date"]);
        assert_eq!(
            codes(v.validate(&row(&["Acme", "Site", "12,50.x", "", ""]))),
            [(ErrorCode::InvalidNumber, Some("value".into()))]
        );
        assert_eq!(
            codes(v.validate(&row(&["Acme", "Site", "", "2024-05-01", "2024-04-01"]))),
            [(ErrorCode::InvalidDate, Some("close_date".into()))]
        );
        let valid = v.validate(&row(&["ACME Corp", "Site", "$1,200", "", ""])).expect("valid");
        assert_eq!(valid.values[v.position("client").expect("client")].as_deref(), Some("acme corp"));
        assert_eq!(valid.values[v.position("value").expect("value")].as_deref(), Some("1200"));
    }

    #[test]
    fn a_cell_past_the_spreadsheet_limit_is_too_long_even_in_an_unread_column() {
        let v = validator(ImportEntity::Leads, &["first_name", "Remarks"]);
        let long = "y".repeat(MAX_CELL_CHARS + 1);
        assert_eq!(codes(v.validate(&row(&["Ada", &long]))), [(ErrorCode::ValueTooLong, Some("Remarks".into()))]);
        let at_limit = "y".repeat(MAX_CELL_CHARS);
        assert!(v.validate(&row(&["Ada", &at_limit])).is_ok());
    }

    #[test]
    fn duplicate_keys_are_claimed_by_the_first_row() {
        let v = validator(ImportEntity::Leads, &["first_name", "email"]);
        let mut tracker = DuplicateTracker::default();
        let key = v.duplicate_key(&row(&["", " ANN@example.com "])).expect("key");
        assert_eq!(tracker.claim(&key, 2), None);
        assert_eq!(tracker.claim(&v.duplicate_key(&row(&["Ann", "ann@example.com"])).expect("key"), 7), Some(2));
        assert_eq!(v.duplicate_key(&row(&["Ann", "not an email"])), None);
    }
}
