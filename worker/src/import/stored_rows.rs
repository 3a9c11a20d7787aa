//! Failed rows as `import_errors` keeps them (`row_data`, `row_error`), and a retry's rows rebuilt from them
//! with their corrections.

use crm_shared::db::imports::RowError;
use crm_shared::imports::reader;
use crm_shared::imports::rows::Problem;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A stored row with its corrections applied; corrections may name a file column or a field. Cells beyond the
/// header (kept as "column N" for a malformed row) still make the row malformed unless corrected to blank.
pub(super) fn merged_row(
    header: &[String],
    data: &Value,
    corrected: Option<&Value>,
    fields: &HashMap<String, usize>,
) -> (Vec<String>, Option<String>) {
    let cells = merged_cells(header, data, corrected, fields);
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    let extra = data.as_object().map_or(0, |object| {
        object
            .keys()
            .filter(|key| !header.contains(key))
            .filter(|key| {
                let correction = corrected.and_then(|c| c.get(key.as_str()));
                let value = if correction.is_some() { text(correction) } else { text(object.get(key.as_str())) };
                !value.is_empty()
            })
            .count()
    });
    let malformed = (extra > 0).then(|| {
        format!(
            "the row has {} fields but the header has {}; correct the extra cells to blank or fix the row",
            header.len() + extra,
            header.len()
        )
    });
    (cells, malformed)
}

/// The header's cells of a stored row, with corrections applied.
fn merged_cells(
    header: &[String],
    data: &Value,
    corrected: Option<&Value>,
    fields: &HashMap<String, usize>,
) -> Vec<String> {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut cells: Vec<String> = header.iter().map(|name| data.get(name).map(text).unwrap_or_default()).collect();
    if let Some(Value::Object(corrections)) = corrected {
        for (key, value) in corrections {
            let column = header.iter().position(|name| name == key).or_else(|| fields.get(key.as_str()).copied());
            if let Some(column) = column {
                cells[column] = text(value);
            }
        }
    }
    cells
}

/// A row as it was, for `import_errors.row_data`: `{"column": "value"}`; cells beyond the cell limit are cut.
fn row_data(header: &[String], cells: &[String]) -> Value {
    let mut object = Map::with_capacity(header.len());
    let extra_names: Vec<String> = (header.len()..cells.len()).map(|column| format!("column {}", column + 1)).collect();
    for (name, cell) in header.iter().chain(extra_names.iter()).zip(cells) {
        let value = if cell.chars().count() > reader::MAX_CELL_CHARS {
            cell.chars().take(reader::MAX_CELL_CHARS).collect()
        } else {
            cell.clone()
        };
        object.insert(name.clone(), Value::String(value));
    }
    Value::Object(object)
}

pub(super) fn row_error(
    header: &[String],
    row_number: u64,
    line_number: Option<u64>,
    cells: &[String],
    problems: &[Problem],
) -> RowError {
    let first = &problems[0];
    let message = if problems.len() == 1 {
        first.message.clone()
    } else {
        problems.iter().map(|problem| problem.message.as_str()).collect::<Vec<_>>().join("; ")
    };
    RowError {
        row_number: i64::try_from(row_number).unwrap_or(i64::MAX),
        line_number: line_number.map(|line| i64::try_from(line).unwrap_or(i64::MAX)),
        error_type: first.error_type.as_str(),
        code: first.code.as_str(),
        field: first.field.clone(),
        message,
        row_data: row_data(header, cells),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn corrections_name_a_column_or_a_field() {
        let header = vec!["E-mail".to_owned(), "First".to_owned()];
        let fields = HashMap::from([("email".to_owned(), 0usize), ("first_name".to_owned(), 1usize)]);
        let data = json!({"E-mail": "bad", "First": "Ann"});
        let by_field = merged_cells(&header, &data, Some(&json!({"email": "ann@example.com"})), &fields);
        assert_eq!(by_field, ["ann@example.com", "Ann"]);
        let by_column = merged_cells(&header, &data, Some(&json!({"First": "Annie"})), &fields);
        assert_eq!(by_column, ["bad", "Annie"]);
    }
}
