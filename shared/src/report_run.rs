//! A report of §8 run by name for a scheduled email: its parameters checked when the schedule is saved, its
//! figures computed with the recipient's own visibility (the same repository calls as `GET /api/v1/reports/…`),
//! and the result laid out as one table for the PDF, XLSX and CSV writers.

use crate::db::Tx;
use crate::db::reports::{self, DayRange, FIRST_DAY, LAST_DAY, ReportScope, activity, leads, projects};
use crate::domain::enums::Role;
use crate::error::DomainError;
use crate::exports::Cell;
use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{Map, Value, json};

pub const REPORT_NAMES: [&str; 10] = [
    "pipeline",
    "lead-source",
    "conversion-rate",
    "revenue-by-client",
    "user-activity",
    "follow-ups",
    "client-retention",
    "project-performance",
    "upcoming-tasks",
    "revenue-forecast",
];

/// Days relative to the run, in the recipient's time zone: what a weekly or monthly email wants.
pub const PERIODS: [&str; 6] = ["today", "yesterday", "last_7_days", "last_30_days", "previous_week", "previous_month"];

/// A report and its parameters, as a schedule stores them (`params` of the report action).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRequest {
    pub name: &'static str,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    period: Option<&'static str>,
    limit: i64,
    inactive_days: i64,
    days_ahead: i64,
}

impl ReportRequest {
    /// Checks a report name and its `params`; each problem is (field, message).
    pub fn parse(name: &str, params: &Value) -> Result<Self, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let Some(name) = REPORT_NAMES.iter().find(|known| **known == name) else {
            return Err(vec![(
                "action.report".into(),
                format!("no such report; the reports are: {}", REPORT_NAMES.join(", ")),
            )]);
        };
        let empty = Map::new();
        let params = match params {
            Value::Null => &empty,
            Value::Object(map) => map,
            _ => return Err(vec![("action.params".into(), "must be an object".into())]),
        };
        let known = ["start_date", "end_date", "period", "limit", "inactive_days", "days_ahead"];
        for key in params.keys().filter(|key| !known.contains(&key.as_str())) {
            problems.push((format!("action.params.{key}"), format!("unknown parameter; known: {}", known.join(", "))));
        }
        let mut day = |field: &str| -> Option<NaiveDate> {
            let text = params.get(field)?.as_str().map(str::trim);
            match text.and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()) {
                Some(day) if (FIRST_DAY..=LAST_DAY).contains(&day) => Some(day),
                _ => {
                    problems.push((format!("action.params.{field}"), "must be a day (YYYY-MM-DD)".into()));
                    None
                }
            }
        };
        let (start_date, end_date) = (day("start_date"), day("end_date"));
        let period = match params.get("period") {
            None | Some(Value::Null) => None,
            Some(value) => match PERIODS.iter().find(|period| Some(**period) == value.as_str()) {
                Some(period) => Some(*period),
                None => {
                    problems.push(("action.params.period".into(), format!("must be one of {}", PERIODS.join(", "))));
                    None
                }
            },
        };
        if period.is_some() && (start_date.is_some() || end_date.is_some()) {
            problems.push(("action.params.period".into(), "give a period or start_date/end_date, not both".into()));
        }
        if let (Some(start), Some(end)) = (start_date, end_date)
            && end < start
        {
            problems.push(("action.params.end_date".into(), "must not be before start_date".into()));
        }
        let mut bounded = |field: &str, default: i64, max: i64| -> i64 {
            match params.get(field) {
                None | Some(Value::Null) => default,
                Some(value) => match value.as_i64().filter(|value| (1..=max).contains(value)) {
                    Some(value) => value,
                    None => {
                        problems.push((format!("action.params.{field}"), format!("must be between 1 and {max}")));
                        default
                    }
                },
            }
        };
        let request = ReportRequest {
            name,
            start_date,
            end_date,
            period,
            limit: bounded("limit", 25, 100),
            inactive_days: bounded("inactive_days", 30, 3650),
            days_ahead: bounded("days_ahead", 7, 90),
        };
        if problems.is_empty() { Ok(request) } else { Err(problems) }
    }

    /// The days counted when run on `today` (the recipient's today at the scheduled time).
    pub fn range(&self, today: NaiveDate) -> DayRange {
        let days = |start: NaiveDate, end: NaiveDate| DayRange { start: Some(start), end: Some(end) };
        match self.period {
            None => DayRange { start: self.start_date, end: self.end_date },
            Some("today") => days(today, today),
            Some("yesterday") => days(today - Duration::days(1), today - Duration::days(1)),
            Some("last_7_days") => days(today - Duration::days(6), today),
            Some("last_30_days") => days(today - Duration::days(29), today),
            Some("previous_week") => {
                let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
                days(monday - Duration::days(7), monday - Duration::days(1))
            }
            Some(_) => {
                let first = today.with_day(1).unwrap_or(today);
                let last_month_end = first - Duration::days(1);
                days(last_month_end.with_day(1).unwrap_or(last_month_end), last_month_end)
            }
        }
    }

    /// Whether a role may receive this report (support has none; user activity is for admins and managers).
    pub fn allowed_for(&self, role: Role) -> bool {
        match role {
            Role::Support => false,
            Role::Admin | Role::Manager => true,
            Role::Sales | Role::Readonly => self.name != "user-activity",
        }
    }

    /// Computes the report as `GET /api/v1/reports/{name}` would for the scope's viewer.
    pub async fn compute(&self, tx: &mut Tx, scope: &ReportScope, today: NaiveDate) -> Result<Value, DomainError> {
        let range = self.range(today);
        let value = match self.name {
            "pipeline" => {
                let groups = leads::lead_groups(tx, scope, range, leads::LeadPerson::Nobody).await?;
                let projects = projects::by_status(tx, scope, range).await?;
                json!({ "leads": leads::by_status(&groups), "projects": projects })
            }
            "lead-source" => {
                let groups = leads::lead_groups(tx, scope, range, leads::LeadPerson::Nobody).await?;
                json!(leads::lead_sources(&groups))
            }
            "conversion-rate" => {
                let groups = leads::lead_groups(tx, scope, range, leads::LeadPerson::Owner).await?;
                let emails = reports::user_emails(tx, scope.tenant).await?;
                json!(leads::conversion(&groups, &emails))
            }
            "revenue-by-client" => json!(projects::revenue_by_client(tx, scope, range, self.limit).await?),
            "user-activity" => json!(activity::user_activity(tx, scope, range).await?),
            "follow-ups" => json!(activity::follow_ups(tx, scope, self.inactive_days as i32).await?),
            "client-retention" => {
                let range = if range.is_all_time() {
                    DayRange { start: Some(today - Duration::days(29)), end: Some(today) }
                } else {
                    range
                };
                json!(activity::client_retention(tx, scope, range).await?)
            }
            "project-performance" => json!(projects::performance(tx, scope, range).await?),
            "upcoming-tasks" => json!(activity::upcoming_tasks(tx, scope, self.days_ahead as i32).await?),
            _ => json!(projects::revenue_forecast(tx, scope, range).await?),
        };
        Ok(value)
    }

    /// The range as words for the file's title.
    pub fn describe(&self, today: NaiveDate) -> String {
        let range = self.range(today);
        let day = |day: Option<NaiveDate>, open: &str| day.map_or_else(|| open.to_owned(), |day| day.to_string());
        if range.is_all_time() {
            "all time".into()
        } else {
            format!("{} to {}", day(range.start, "the beginning"), day(range.end, "today"))
        }
    }
}

/// A report laid out as one table: a `section` column (which list of the report a row comes from, or
/// `summary` for its single figures), then every field that occurs, nested objects as `a.b`.
pub struct ReportTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

pub fn to_table(report: &Value) -> ReportTable {
    let mut header: Vec<String> = vec!["section".into()];
    let mut records: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut summary: Vec<(String, String)> = Vec::new();
    if let Value::Object(fields) = report {
        for (key, value) in fields {
            match value {
                Value::Array(items) => {
                    for item in items {
                        let mut flat = Vec::new();
                        flatten("", item, &mut flat);
                        // What a row is about (a status, a name) before its figures; JSON objects come in
                        // alphabetical order, which would put `count` before `status`.
                        flat.sort_by_key(|(name, _)| {
                            !item.pointer(&format!("/{}", name.replace('.', "/"))).is_some_and(Value::is_string)
                        });
                        records.push((key.clone(), flat));
                    }
                }
                other => flatten(key, other, &mut summary),
            }
        }
    }
    if !summary.is_empty() {
        records.insert(0, ("summary".into(), summary));
    }
    for (_, fields) in &records {
        for (name, _) in fields {
            if !header.contains(name) {
                header.push(name.clone());
            }
        }
    }
    let rows = records
        .into_iter()
        .map(|(section, fields)| {
            let mut row = vec![Cell::Empty; header.len()];
            row[0] = Cell::Text(section);
            for (name, value) in fields {
                if let Some(at) = header.iter().position(|column| *column == name) {
                    row[at] = Cell::Text(value);
                }
            }
            row
        })
        .collect();
    ReportTable { header, rows }
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let name = |key: &str| if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                flatten(&name(key), value, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), String::new())),
        Value::String(text) => out.push((prefix.to_owned(), text.clone())),
        Value::Array(items) => out.push((prefix.to_owned(), format!("{} items", items.len()))),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// Whether a report has anything to say (`send_if_data`): some count or amount that is not zero, or a listed
/// record (an overdue follow-up, a client: something with its own id). Fixed categories with zero figures (a
/// pipeline's statuses, a user's empty activity row) are no data.
pub fn has_data(report: &Value) -> bool {
    fn any(value: &Value) -> bool {
        match value {
            Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
            Value::Object(fields) => {
                fields.iter().any(|(key, value)| names_a_record(key) && value.is_string()) || fields.values().any(any)
            }
            Value::Array(items) => items.iter().any(any),
            _ => false,
        }
    }
    fn names_a_record(key: &str) -> bool {
        (key == "id" || key.ends_with("_id")) && key != "user_id"
    }
    any(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_named() {
        assert!(ReportRequest::parse("pipeline", &Value::Null).is_ok());
        let problems = ReportRequest::parse("nope", &json!({})).expect_err("unknown report");
        assert_eq!(problems[0].0, "action.report");
        let problems = ReportRequest::parse(
            "follow-ups",
            &json!({"start_date": "2025-13-01", "inactive_days": 0, "period": "forever", "x": 1}),
        )
        .expect_err("bad parameters");
        let fields: Vec<&str> = problems.iter().map(|(field, _)| field.as_str()).collect();
        for field in
            ["action.params.x", "action.params.start_date", "action.params.period", "action.params.inactive_days"]
        {
            assert!(fields.contains(&field), "{field} not named in {fields:?}");
        }
    }

    #[test]
    fn periods_are_whole_days_before_the_run() {
        let today = NaiveDate::from_ymd_opt(2025, 3, 12).expect("a day"); // a Wednesday
        let request = |period: &str| ReportRequest::parse("pipeline", &json!({ "period": period })).expect("valid");
        let day = |text: &str| Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a day"));
        assert_eq!(
            request("previous_week").range(today),
            DayRange { start: day("2025-03-03"), end: day("2025-03-09") }
        );
        assert_eq!(
            request("previous_month").range(today),
            DayRange { start: day("2025-02-01"), end: day("2025-02-28") }
        );
        assert_eq!(request("last_7_days").range(today), DayRange { start: day("2025-03-06"), end: day("2025-03-12") });
    }

    #[test]
    fn a_report_becomes_one_table_and_zeros_are_no_data() {
        let report = json!({
            "leads": [{"status": "new", "count": 2}, {"status": "lost", "count": 0}],
            "projects": [{"status": "active", "count": 1, "total_value": 10.5}],
        });
        let table = to_table(&report);
        assert_eq!(table.header, ["section", "status", "count", "total_value"]);
        assert_eq!(table.rows.len(), 3);
        assert_eq!(table.rows[2][3], Cell::Text("10.5".into()));
        assert!(has_data(&report));
        assert!(!has_data(&json!({"leads": [{"status": "new", "count": 0}], "total": 0})));
        assert!(has_data(&json!({"overdue": [{"client_id": "0190", "client_name": "Acme", "days": 0}]})));
        assert!(!has_data(&json!({"users": [{"user_id": "0190", "calls": 0}]})));
    }
}
