//! Which file column feeds which field. Headers match field names ignoring case, spaces and underscores
//! (contract §6), plus the names common exports use ("E-mail", "Phone number", "Lead source"); an explicit
//! mapping `{"file column": "field"}` overrides them.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportEntity {
    Leads,
    Clients,
    Projects,
}

impl ImportEntity {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "leads" => Some(ImportEntity::Leads),
            "clients" => Some(ImportEntity::Clients),
            "projects" => Some(ImportEntity::Projects),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImportEntity::Leads => "leads",
            ImportEntity::Clients => "clients",
            ImportEntity::Projects => "projects",
        }
    }

    /// The fields a file may fill, required ones first.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            ImportEntity::Leads => &[
                "first_name",
                "last_name",
                "email",
                "phone",
                "company",
                "lead_source",
                "status",
                "notes",
                "assigned_to",
                "created_at",
                "converted_at",
            ],
            ImportEntity::Clients => &["name", "email", "phone", "status", "industry", "assigned_to", "created_at"],
            ImportEntity::Projects => {
                &["client", "name", "status", "value", "start_date", "close_date", "assigned_to", "created_at"]
            }
        }
    }

    pub fn required(self) -> &'static [&'static str] {
        match self {
            ImportEntity::Leads => &["first_name"],
            ImportEntity::Clients => &["name"],
            ImportEntity::Projects => &["client", "name"],
        }
    }
}

/// Lowercase, without spaces, underscores or hyphens: "First Name", "first_name" and "FIRSTNAME" are one.
pub fn fold(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Other names exports give a field (already folded).
fn aliases(field: &str) -> &'static [&'static str] {
    match field {
        "first_name" => &["firstname", "givenname", "forename"],
        "last_name" => &["lastname", "surname", "familyname"],
        "email" => &["email", "emailaddress", "mail"],
        "phone" => &["phone", "phonenumber", "phone1", "telephone", "tel", "mobile"],
        "company" => &["company", "companyname", "organization", "organisation", "account"],
        "lead_source" => &["leadsource", "source"],
        "assigned_to" => &["assignedto", "owner", "owneremail", "assignee"],
        "name" => &["name", "clientname", "projectname"],
        "client" => &["client", "clientname", "clientemail", "customer"],
        _ => &[],
    }
}

/// Where each field comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    /// Field name → column index.
    pub fields: BTreeMap<&'static str, usize>,
    /// Columns no field reads (reported to the user, not an error).
    pub unmapped: Vec<String>,
}

impl ColumnMap {
    pub fn column(&self, field: &str) -> Option<usize> {
        self.fields.get(field).copied()
    }
}

/// Maps a file's header row to fields. The errors are whole-file problems: the import cannot start.
pub fn map_columns(
    entity: ImportEntity,
    headers: &[String],
    explicit: Option<&HashMap<String, String>>,
) -> Result<ColumnMap, String> {
    let fields = match_columns(entity, headers, explicit)?;
    if let Some(problem) = missing_required(entity, headers, &fields) {
        return Err(problem);
    }
    let used: Vec<usize> = fields.values().copied().collect();
    let unmapped = headers
        .iter()
        .enumerate()
        .filter(|(column, header)| !used.contains(column) && !header.trim().is_empty())
        .map(|(_, header)| header.clone())
        .collect();
    Ok(ColumnMap { fields, unmapped })
}

/// The field each column fills (field → column index), before the required fields are checked; an error when
/// the mapping names what the file or entity lacks, or two columns would fill one field.
pub fn match_columns(
    entity: ImportEntity,
    headers: &[String],
    explicit: Option<&HashMap<String, String>>,
) -> Result<BTreeMap<&'static str, usize>, String> {
    let known = entity.fields();
    let mut fields: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut claim = |field: &'static str, column: usize, header: &str| -> Result<(), String> {
        match fields.insert(field, column) {
            Some(previous) if previous != column => Err(format!(
                "two columns would fill {field:?} ({:?} and {header:?}); give a mapping to choose one",
                headers[previous]
            )),
            _ => Ok(()),
        }
    };
    match explicit {
        Some(mapping) => {
            for (column_name, field_name) in mapping {
                let field = known.iter().copied().find(|field| *field == field_name.trim()).ok_or_else(|| {
                    format!("the mapping names an unknown field {field_name:?}; the fields are: {}", known.join(", "))
                })?;
                let column = headers
                    .iter()
                    .position(|header| header.trim() == column_name.trim())
                    .or_else(|| headers.iter().position(|header| fold(header) == fold(column_name)))
                    .ok_or_else(|| format!("the mapping names a column {column_name:?} that the file does not have"))?;
                claim(field, column, &headers[column])?;
            }
        }
        None => {
            for (column, header) in headers.iter().enumerate() {
                let folded = fold(header);
                if folded.is_empty() {
                    continue;
                }
                let exact = known.iter().copied().find(|field| fold(field) == folded);
                let field =
                    exact.or_else(|| known.iter().copied().find(|field| aliases(field).contains(&folded.as_str())));
                if let Some(field) = field {
                    claim(field, column, header)?;
                }
            }
        }
    }
    Ok(fields)
}

/// Why the import cannot start when a required field has no column.
pub fn missing_required(
    entity: ImportEntity,
    headers: &[String],
    fields: &BTreeMap<&'static str, usize>,
) -> Option<String> {
    let missing: Vec<&str> = entity.required().iter().copied().filter(|field| !fields.contains_key(field)).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the file has no column for {} (headers are matched ignoring case, spaces and underscores; found: {})",
            missing.join(", "),
            headers.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn headers_match_ignoring_case_spaces_and_underscores() {
        let map = map_columns(
            ImportEntity::Leads,
            &headers(&["\u{feff}First Name", "LAST_NAME", "E-mail", "Phone Number", "Lead Source", "Favourite colour"]),
            None,
        )
        .expect("mapped");
        assert_eq!(map.column("first_name"), Some(0));
        assert_eq!(map.column("last_name"), Some(1));
        assert_eq!(map.column("email"), Some(2));
        assert_eq!(map.column("phone"), Some(3));
        assert_eq!(map.column("lead_source"), Some(4));
        assert_eq!(map.unmapped, ["Favourite colour"]);
    }

    #[test]
    fn a_missing_required_column_is_a_clear_error() {
        let error = map_columns(ImportEntity::Leads, &headers(&["Email", "Phone"]), None).expect_err("no first name");
        assert!(error.contains("first_name") && error.contains("\"Email\""), "{error}");
        let error = map_columns(ImportEntity::Projects, &headers(&["Name"]), None).expect_err("no client");
        assert!(error.contains("client"), "{error}");
    }

    #[test]
    fn an_explicit_mapping_overrides_and_is_checked() {
        let mapping =
            HashMap::from([("Given".to_owned(), "first_name".to_owned()), ("Mail".to_owned(), "email".to_owned())]);
        let map = map_columns(ImportEntity::Leads, &headers(&["Mail", "Given"]), Some(&mapping)).expect("mapped");
        assert_eq!((map.column("first_name"), map.column("email")), (Some(1), Some(0)));
        let unknown = HashMap::from([("Given".to_owned(), "nickname".to_owned())]);
        assert!(
            map_columns(ImportEntity::Leads, &headers(&["Given"]), Some(&unknown))
                .expect_err("unknown")
                .contains("nickname")
        );
        let absent = HashMap::from([("Nope".to_owned(), "first_name".to_owned())]);
        assert!(
            map_columns(ImportEntity::Leads, &headers(&["Given"]), Some(&absent)).expect_err("absent").contains("Nope")
        );
    }

    #[test]
    fn two_columns_for_one_field_must_be_resolved() {
        let error =
            map_columns(ImportEntity::Clients, &headers(&["Name", "Client Name"]), None).expect_err("ambiguous");
        assert!(error.contains("\"name\""), "{error}");
    }
}
