//! A validated list query kept as JSON (an export's `query`), and read back for the job that runs it. Column
//! names come back only as one of the compile-time names of the table, so nothing stored can inject SQL.

use super::{Filter, ListQuery, RecordTable, Sort};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every column a list filter may name, across the entities (besides each table's sort and owner columns).
const FILTER_COLUMNS: &[&str] = &[
    "status",
    "lead_source",
    "industry",
    "category",
    "priority",
    "queue",
    "type",
    "client_id",
    "lead_id",
    "user_id",
    "created_at",
    "assigned_to_user_id",
];

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredFilter {
    TextIn { column: String, values: Vec<String> },
    UuidEq { column: String, value: Uuid },
    From { column: String, at: DateTime<Utc> },
    To { column: String, at: DateTime<Utc> },
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredQuery {
    sort: String,
    descending: bool,
    search: Option<String>,
    trash: bool,
    filters: Vec<StoredFilter>,
}

impl ListQuery {
    /// The query as JSON (paging left out: an export takes every page).
    pub fn to_stored(&self) -> serde_json::Value {
        let filters = self
            .filters
            .iter()
            .map(|filter| match filter {
                Filter::TextIn(column, values) => {
                    StoredFilter::TextIn { column: (*column).to_owned(), values: values.clone() }
                }
                Filter::UuidEq(column, value) => StoredFilter::UuidEq { column: (*column).to_owned(), value: *value },
                Filter::From(column, at) => StoredFilter::From { column: (*column).to_owned(), at: *at },
                Filter::To(column, at) => StoredFilter::To { column: (*column).to_owned(), at: *at },
            })
            .collect();
        let stored = StoredQuery {
            sort: self.sort.column.to_owned(),
            descending: self.sort.descending,
            search: self.search.clone(),
            trash: self.trash,
            filters,
        };
        serde_json::to_value(stored).unwrap_or_default()
    }

    /// Reads back what `to_stored` wrote for `table`; `Err` names what does not belong to it.
    pub fn from_stored(table: &RecordTable, value: &serde_json::Value) -> Result<ListQuery, String> {
        let stored: StoredQuery = serde_json::from_value(value.clone()).map_err(|error| error.to_string())?;
        let column = |name: &str| -> Result<&'static str, String> {
            table
                .sort_columns
                .iter()
                .chain(table.search_columns)
                .chain(FILTER_COLUMNS)
                .chain(std::iter::once(&table.owner_column))
                .find(|known| **known == name)
                .copied()
                .ok_or_else(|| format!("{name:?} is not a column of {}", table.table))
        };
        let sort_column = table
            .sort_columns
            .iter()
            .find(|known| **known == stored.sort)
            .copied()
            .ok_or_else(|| format!("{:?} is not a sort column of {}", stored.sort, table.table))?;
        let mut filters = Vec::with_capacity(stored.filters.len());
        for filter in stored.filters {
            filters.push(match filter {
                StoredFilter::TextIn { column: name, values } => Filter::TextIn(column(&name)?, values),
                StoredFilter::UuidEq { column: name, value } => Filter::UuidEq(column(&name)?, value),
                StoredFilter::From { column: name, at } => Filter::From(column(&name)?, at),
                StoredFilter::To { column: name, at } => Filter::To(column(&name)?, at),
            });
        }
        Ok(ListQuery {
            limit: 0,
            offset: 0,
            include_total: false,
            sort: Sort { column: sort_column, descending: stored.descending },
            search: stored.search,
            trash: stored.trash,
            filters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::records::leads::LEADS;

    #[test]
    fn a_query_survives_being_stored_and_foreign_columns_do_not() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let query = ListQuery {
            limit: 25,
            offset: 0,
            include_total: false,
            sort: Sort { column: "last_name", descending: true },
            search: Some("acme".into()),
            trash: false,
            filters: vec![
                Filter::TextIn("status", vec!["new".into(), "lost".into()]),
                Filter::UuidEq("assigned_to_user_id", Uuid::nil()),
                Filter::From("created_at", at),
            ],
        };
        let stored = query.to_stored();
        let back = ListQuery::from_stored(&LEADS, &stored).expect("read back");
        assert_eq!(back.sort, query.sort);
        assert_eq!(back.search, query.search);
        assert_eq!(format!("{:?}", back.filters), format!("{:?}", query.filters));

        let mut forged = stored.clone();
        forged["filters"][0]["column"] = "status; DROP TABLE leads".into();
        assert!(ListQuery::from_stored(&LEADS, &forged).is_err());
        forged = stored;
        forged["sort"] = "password_hash".into();
        assert!(ListQuery::from_stored(&LEADS, &forged).is_err());
    }
}
