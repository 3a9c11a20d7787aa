//! Field normalisers and the error vocabulary shared by the API (JSON bodies) and the importer (spreadsheet
//! rows): the same rule gives the same code and message whichever way a value arrives.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// Stable codes of validation problems (contract §6); never rename one, add new ones at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MissingRequired,
    InvalidEmail,
    InvalidPhone,
    InvalidEnum,
    InvalidDate,
    InvalidNumber,
    ValueTooLong,
    DuplicateInFile,
    DuplicateExisting,
    UnknownUser,
    UnknownClient,
    MalformedRow,
    UnknownLead,
    UnknownTeam,
    InvalidValue,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MissingRequired => "missing_required",
            ErrorCode::InvalidEmail => "invalid_email",
            ErrorCode::InvalidPhone => "invalid_phone",
            ErrorCode::InvalidEnum => "invalid_enum",
            ErrorCode::InvalidDate => "invalid_date",
            ErrorCode::InvalidNumber => "invalid_number",
            ErrorCode::ValueTooLong => "value_too_long",
            ErrorCode::DuplicateInFile => "duplicate_in_file",
            ErrorCode::DuplicateExisting => "duplicate_existing",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::UnknownClient => "unknown_client",
            ErrorCode::MalformedRow => "malformed_row",
            ErrorCode::UnknownLead => "unknown_lead",
            ErrorCode::UnknownTeam => "unknown_team",
            ErrorCode::InvalidValue => "invalid_value",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: ErrorCode,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { field: field.into(), code, message: message.into() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn one(error: FieldError) -> Self {
        Self(vec![error])
    }

    /// `{"field": "message"}`; the first problem of a field wins.
    pub fn messages(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for error in &self.0 {
            map.entry(error.field.clone()).or_insert_with(|| error.message.clone());
        }
        map
    }
}

/// A problem with one value, before it is attached to a field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub ErrorCode, pub String);

pub type Normalized<T> = Result<Option<T>, Invalid>;

/// A field of a PATCH body: absent (leave as is), `null` (clear) or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Missing,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(deserializer)?.map_or(Patch::Null, Patch::Value))
    }
}

/// Collects every problem of an input, so the user sees all of them at once.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, field: &str, code: ErrorCode, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, message));
    }

    /// A create field: normalises a present value; a missing or blank required value is an error.
    pub fn field<T, U>(
        &mut self,
        field: &str,
        value: Option<T>,
        required: bool,
        normalize: impl FnOnce(T) -> Normalized<U>,
    ) -> Option<U> {
        let normalized = match value {
            None => None,
            Some(value) => match normalize(value) {
                Ok(normalized) => normalized,
                Err(Invalid(code, message)) => {
                    self.push(field, code, message);
                    return None;
                }
            },
        };
        if normalized.is_none() && required {
            self.push(field, ErrorCode::MissingRequired, "is required");
        }
        normalized
    }

    /// A PATCH field: `None` leaves the stored value alone, `Some(None)` clears it.
    pub fn patch<T, U>(
        &mut self,
        field: &str,
        value: Patch<T>,
        required: bool,
        normalize: impl FnOnce(T) -> Normalized<U>,
    ) -> Option<Option<U>> {
        let normalized = match value {
            Patch::Missing => return None,
            Patch::Null => None,
            Patch::Value(value) => match normalize(value) {
                Ok(normalized) => normalized,
                Err(Invalid(code, message)) => {
                    self.push(field, code, message);
                    return None;
                }
            },
        };
        if normalized.is_none() && required {
            self.push(field, ErrorCode::MissingRequired, "is required and cannot be cleared");
            return None;
        }
        Some(normalized)
    }

    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.errors.is_empty() { Ok(()) } else { Err(FieldErrors(self.errors)) }
    }
}

/// Longest value of a short text field (names, subjects, companies).
pub const SHORT_TEXT_MAX: usize = 255;
/// Longest value of a long text field (notes, descriptions): a spreadsheet cell's limit.
pub const LONG_TEXT_MAX: usize = 32_767;

/// Trims; blank is absent; longer than `max` characters is `value_too_long`.
pub fn text(max: usize) -> impl Fn(String) -> Normalized<String> {
    move |value| {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let length = trimmed.chars().count();
        if length > max {
            return Err(Invalid(ErrorCode::ValueTooLong, format!("must be at most {max} characters (got {length})")));
        }
        Ok(Some(trimmed.to_owned()))
    }
}

pub fn email(value: String) -> Normalized<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.len() > SHORT_TEXT_MAX {
        return Err(Invalid(ErrorCode::ValueTooLong, format!("must be at most {SHORT_TEXT_MAX} characters")));
    }
    // RFC 5322 allows quoted local parts and comments that no CRM user means; require the plain form.
    let plain = trimmed.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    });
    if plain && !trimmed.contains(char::is_whitespace) && email_address::EmailAddress::is_valid(trimmed) {
        Ok(Some(trimmed.to_owned()))
    } else {
        Err(Invalid(ErrorCode::InvalidEmail, format!("{trimmed:?} is not a valid email address")))
    }
}

/// Parses a phone number and stores it as E.164; numbers without a country code use `region`.
pub fn phone(region: &str) -> impl Fn(String) -> Normalized<String> + '_ {
    move |value| {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let invalid = || Invalid(ErrorCode::InvalidPhone, format!("{trimmed:?} is not a valid phone number"));
        let country = phonenumber::country::Id::from_str(region).ok();
        let number = phonenumber::parse(country, trimmed).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Some(number.format().mode(phonenumber::Mode::E164).to_string()))
    }
}

/// Matches a value of a text enumeration case-insensitively.
pub fn enumeration<E: Copy>(parse: fn(&str) -> Option<E>, allowed: fn() -> String) -> impl Fn(String) -> Normalized<E> {
    move |value| {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        parse(trimmed)
            .map(Some)
            .ok_or_else(|| Invalid(ErrorCode::InvalidEnum, format!("{trimmed:?} is not one of: {}", allowed())))
    }
}

/// A date: ISO 8601 (`2024-03-31`) or a common spreadsheet form (`03/31/2024`, `31.03.2024`, `2024/03/31`).
pub fn date(value: String) -> Normalized<NaiveDate> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    parse_date(trimmed)
        .or_else(|| parse_naive_datetime(trimmed).map(|datetime| datetime.date()))
        .or_else(|| DateTime::parse_from_rfc3339(trimmed).ok().map(|datetime| datetime.date_naive()))
        .map(Some)
        .ok_or_else(|| Invalid(ErrorCode::InvalidDate, format!("{trimmed:?} is not a date (use YYYY-MM-DD)")))
}

/// A point in time: RFC 3339 with an offset, or a naive date/time read in the tenant's time zone.
pub fn datetime(time_zone: Tz) -> impl Fn(String) -> Normalized<DateTime<Utc>> {
    move |value| {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if let Ok(datetime) = DateTime::parse_from_rfc3339(trimmed) {
            return Ok(Some(datetime.with_timezone(&Utc)));
        }
        let naive = parse_naive_datetime(trimmed).or_else(|| parse_date(trimmed).and_then(|d| d.and_hms_opt(0, 0, 0)));
        naive.and_then(|naive| local_to_utc(time_zone, naive)).map(Some).ok_or_else(|| {
            Invalid(
                ErrorCode::InvalidDate,
                format!("{trimmed:?} is not a date/time (use ISO 8601, e.g. 2024-03-31T14:00:00Z)"),
            )
        })
    }
}

/// A wall-clock time in `time_zone`. An ambiguous one (the hour repeated when clocks go back) is the earlier
/// instant; one that does not exist (skipped when clocks go forward: spreadsheets hold such values, e.g. times
/// written in UTC without a zone) is read with the offset in effect before the jump, as Postgres reads it.
fn local_to_utc(time_zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(local) = time_zone.from_local_datetime(&naive).earliest() {
        return Some(local.with_timezone(&Utc));
    }
    [3, 27].into_iter().find_map(|hours| {
        let before = time_zone.from_local_datetime(&(naive - chrono::Duration::hours(hours))).earliest()?;
        let offset = chrono::Duration::seconds(i64::from(before.offset().fix().local_minus_utc()));
        Some(DateTime::from_naive_utc_and_offset(naive - offset, Utc))
    })
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    const FORMATS: [&str; 7] = ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%m-%d-%Y", "%d-%b-%Y"];
    FORMATS.iter().find_map(|format| NaiveDate::parse_from_str(text, format).ok())
}

fn parse_naive_datetime(text: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 8] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
    ];
    FORMATS.iter().find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

/// A money amount with at most two decimal places, not negative.
pub fn money(value: String) -> Normalized<Decimal> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let cleaned: String = trimmed.chars().filter(|c| !matches!(c, ',' | '$' | ' ' | '€' | '£')).collect();
    let invalid = || Invalid(ErrorCode::InvalidNumber, format!("{trimmed:?} is not an amount (e.g. 1250.00)"));
    let amount = Decimal::from_str(&cleaned).map_err(|_| invalid())?;
    if amount.is_sign_negative() {
        return Err(Invalid(ErrorCode::InvalidNumber, "must not be negative".into()));
    }
    if amount.scale() > 2 && amount.round_dp(2) != amount {
        return Err(Invalid(ErrorCode::InvalidNumber, "must have at most two decimal places".into()));
    }
    if amount >= Decimal::from(1_000_000_000_000i64) {
        return Err(Invalid(ErrorCode::InvalidNumber, "is too large".into()));
    }
    Ok(Some(amount.round_dp(2)))
}

/// A JSON amount may come as a number or a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Number(serde_json::Number),
    Text(String),
}

impl Amount {
    pub fn into_text(self) -> String {
        match self {
            Amount::Number(number) => number.to_string(),
            Amount::Text(text) => text,
        }
    }
}

pub fn parse_time_zone(name: &str) -> Option<Tz> {
    Tz::from_str(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_become_e164_in_the_given_region() {
        let us = phone("US");
        assert_eq!(us("(415) 555-2671".into()), Ok(Some("+14155552671".into())));
        assert_eq!(us("+44 20 7946 0958".into()), Ok(Some("+442079460958".into())));
        assert_eq!(phone("GB")("020 7946 0958".into()), Ok(Some("+442079460958".into())));
        assert_eq!(us("   ".into()), Ok(None));
        assert_eq!(us("12".into()).map_err(|e| e.0), Err(ErrorCode::InvalidPhone));
        assert_eq!(us("call me".into()).map_err(|e| e.0), Err(ErrorCode::InvalidPhone));
    }

    #[test]
    fn emails_must_be_plain_addresses() {
        assert_eq!(email(" Ann@Example.com ".into()), Ok(Some("Ann@Example.com".into())));
        for bad in ["ann", "ann@", "@example.com", "ann@example", "ann smith@example.com", "ann@.com"] {
            assert_eq!(email(bad.into()).map_err(|e| e.0), Err(ErrorCode::InvalidEmail), "{bad}");
        }
    }

    #[test]
    fn dates_accept_iso_and_spreadsheet_forms() {
        let expected = NaiveDate::from_ymd_opt(2024, 3, 31);
        for text in ["2024-03-31", "03/31/2024", "31/03/2024", "31.03.2024", "2024/03/31", "2024-03-31 10:00"] {
            assert_eq!(date(text.into()), Ok(expected), "{text}");
        }
        assert_eq!(date("31st of March".into()).map_err(|e| e.0), Err(ErrorCode::InvalidDate));
    }

    #[test]
    fn a_wall_clock_time_skipped_by_daylight_saving_reads_as_postgres_reads_it() {
        let new_york = parse_time_zone("America/New_York").expect("zone");
        let parse = datetime(new_york);
        // 02:38 did not happen on 2023-03-12 in New York: read with the standard-time offset (UTC-5).
        let skipped = parse("2023-03-12 02:38:32".into()).expect("read").expect("a time");
        assert_eq!(skipped.to_rfc3339(), "2023-03-12T07:38:32+00:00");
        // 01:30 happened twice on 2023-11-05: the earlier one (EDT, UTC-4).
        let repeated = parse("2023-11-05 01:30:00".into()).expect("read").expect("a time");
        assert_eq!(repeated.to_rfc3339(), "2023-11-05T05:30:00+00:00");
    }

    #[test]
    fn naive_times_are_read_in_the_tenant_time_zone() {
        let berlin = datetime(chrono_tz::Europe::Berlin);
        let parsed = berlin("2024-01-15 09:30".into()).ok().flatten().map(|d| d.to_rfc3339());
        assert_eq!(parsed.as_deref(), Some("2024-01-15T08:30:00+00:00"));
        let explicit = berlin("2024-01-15T09:30:00Z".into()).ok().flatten().map(|d| d.to_rfc3339());
        assert_eq!(explicit.as_deref(), Some("2024-01-15T09:30:00+00:00"));
    }

    #[test]
    fn money_has_two_places_and_no_sign() {
        assert_eq!(money("$1,250.5".into()), Ok(Some(Decimal::new(125050, 2))));
        assert_eq!(money("-3".into()).map_err(|e| e.0), Err(ErrorCode::InvalidNumber));
        assert_eq!(money("1.234".into()).map_err(|e| e.0), Err(ErrorCode::InvalidNumber));
        assert_eq!(money("abc".into()).map_err(|e| e.0), Err(ErrorCode::InvalidNumber));
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text(5)("  Ann  ".into()), Ok(Some("Ann".into())));
        assert_eq!(text(5)("   ".into()), Ok(None));
        assert_eq!(text(5)("Annabel".into()).map_err(|e| e.0), Err(ErrorCode::ValueTooLong));
    }

    #[test]
    fn validator_collects_every_problem() {
        let mut validator = Validator::new();
        let first_name = validator.field("first_name", None::<String>, true, text(10));
        let mail = validator.field("email", Some("nope".to_string()), false, email);
        let cleared = validator.patch("last_name", Patch::<String>::Null, false, text(10));
        let untouched = validator.patch("company", Patch::<String>::Missing, false, text(10));
        assert_eq!((first_name, mail, cleared, untouched), (None, None, Some(None), None));
        let errors = validator.finish().expect_err("two problems");
        let codes: Vec<_> = errors.0.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(codes, [("first_name", ErrorCode::MissingRequired), ("email", ErrorCode::InvalidEmail)]);
    }
}
