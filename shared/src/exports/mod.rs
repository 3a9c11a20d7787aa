//! Exports: the columns each entity exports, the cell values rows are read into, and the file writers (CSV,
//! XLSX, PDF). Writers are synchronous and write to a local file: the job streams rows to them from a
//! blocking thread, then stores the finished file.

pub mod columns;
pub mod csv_file;
pub mod pdf_file;
pub mod xlsx_file;

use crate::domain::access::Entity;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

/// One value of an exported row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
    Money(Decimal),
}

impl Cell {
    /// As text, the way CSV and PDF write it: ISO 8601 with the tenant's UTC offset, `YYYY-MM-DD`, two decimals.
    pub fn to_text(&self, zone: Tz) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Timestamp(at) => at.with_timezone(&zone).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            Cell::Date(date) => date.format("%Y-%m-%d").to_string(),
            Cell::Money(amount) => format!("{:.2}", amount.round_dp(2)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
    Pdf,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [ExportFormat::Csv, ExportFormat::Xlsx, ExportFormat::Pdf];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
            ExportFormat::Pdf => "pdf",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.as_str() == text.trim().to_ascii_lowercase())
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ExportFormat::Pdf => "application/pdf",
        }
    }
}

/// The entities that export, by the names the API uses (`leads` …).
pub fn entity_by_name(name: &str) -> Option<Entity> {
    match name.trim().to_ascii_lowercase().as_str() {
        "leads" => Some(Entity::Lead),
        "clients" => Some(Entity::Client),
        "projects" => Some(Entity::Project),
        "interactions" => Some(Entity::Interaction),
        "tickets" => Some(Entity::Ticket),
        _ => None,
    }
}

pub fn entity_name(entity: Entity) -> &'static str {
    match entity {
        Entity::Lead => "leads",
        Entity::Client => "clients",
        Entity::Project => "projects",
        Entity::Interaction => "interactions",
        Entity::Ticket => "tickets",
    }
}

/// `leads` → `Leads`, for file titles.
pub fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What a PDF's title block says.
#[derive(Debug, Clone)]
pub struct Title {
    /// e.g. "Leads".
    pub heading: String,
    /// The filters and sort, as the caller gave them.
    pub filters: String,
    pub made_for: String,
    pub made_at: DateTime<Utc>,
    pub row_count: i64,
}

/// A file being written, row by row.
pub trait ExportWriter: Send {
    fn write_row(&mut self, cells: &[Cell]) -> anyhow::Result<()>;
    /// Completes the file (an XLSX's zip, a PDF's pages).
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Opens the writer for `format` at `path`, with the header already written.
pub fn writer(
    format: ExportFormat,
    path: &std::path::Path,
    header: &[&str],
    zone: Tz,
    title: Title,
) -> anyhow::Result<Box<dyn ExportWriter>> {
    Ok(match format {
        ExportFormat::Csv => Box::new(csv_file::CsvExport::create(path, header, zone)?),
        ExportFormat::Xlsx => Box::new(xlsx_file::XlsxExport::create(path, header, zone)?),
        ExportFormat::Pdf => Box::new(pdf_file::PdfExport::create(path, header, zone, title)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_the_contract_writes_them() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T15:04:05Z").expect("time").with_timezone(&Utc);
        assert_eq!(Cell::Timestamp(at).to_text(chrono_tz::America::New_York), "2026-03-01T10:04:05-05:00");
        assert_eq!(Cell::Timestamp(at).to_text(chrono_tz::UTC), "2026-03-01T15:04:05+00:00");
        assert_eq!(Cell::Money(Decimal::new(12345, 1)).to_text(chrono_tz::UTC), "1234.50");
        let date = NaiveDate::from_ymd_opt(2026, 1, 9).expect("date");
        assert_eq!(Cell::Date(date).to_text(chrono_tz::UTC), "2026-01-09");
    }
}
