//! Writing an import batch's valid rows into their table, in the batch's transaction (the caller commits it
//! with the batch's errors, counts and checkpoint, fenced by the job's lease).

use crate::error::DomainError;
use crate::ids::TenantId;
use crate::imports::headers::ImportEntity;
use sqlx::PgConnection;
use std::collections::HashSet;
use uuid::Uuid;

/// How an import's rows map onto a table.
pub struct ImportTable {
    pub table: &'static str,
    /// Per field of `ImportEntity::fields()`, in that order: the column and its SQL type.
    pub columns: &'static [(&'static str, &'static str)],
    pub default_status: &'static str,
}

pub fn import_table(entity: ImportEntity) -> ImportTable {
    match entity {
        ImportEntity::Leads => ImportTable {
            table: "leads",
            columns: &[
                ("first_name", "text"),
                ("last_name", "text"),
                ("email", "text"),
                ("phone", "text"),
                ("company", "text"),
                ("lead_source", "text"),
                ("status", "text"),
                ("notes", "text"),
                ("assigned_to_user_id", "uuid"),
                ("created_at", "timestamptz"),
                ("converted_at", "timestamptz"),
            ],
            default_status: "new",
        },
        ImportEntity::Clients => ImportTable {
            table: "clients",
            columns: &[
                ("name", "text"),
                ("email", "text"),
                ("phone", "text"),
                ("status", "text"),
                ("industry", "text"),
                ("assigned_to_user_id", "uuid"),
                ("created_at", "timestamptz"),
            ],
            default_status: "new",
        },
        ImportEntity::Projects => ImportTable {
            table: "projects",
            columns: &[
                ("client_id", "uuid"),
                ("name", "text"),
                ("status", "text"),
                ("value", "numeric"),
                ("start_date", "date"),
                ("close_date", "date"),
                ("assigned_to_user_id", "uuid"),
                ("created_at", "timestamptz"),
            ],
            default_status: "active",
        },
    }
}

/// What a valid row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowWrite {
    Insert,
    /// An upsert's match, by id.
    Update(Uuid),
}

/// A valid row ready to write: its values in `ImportTable::columns` order (references already resolved to ids).
#[derive(Debug, Clone, Copy)]
pub struct StagedRow<'a> {
    pub row_number: u64,
    /// The id an insert gets.
    pub id: Uuid,
    pub write: RowWrite,
    pub values: &'a [Option<String>],
}

/// Writes a batch's valid rows: COPY into a staging table, then one INSERT (ON CONFLICT DO NOTHING: a
/// duplicate is left out and reported by the caller) and one UPDATE for upserts. Returns the ids inserted and
/// the row numbers updated.
pub async fn write_rows(
    tx: &mut PgConnection,
    tenant: TenantId,
    created_by: Option<Uuid>,
    table: &ImportTable,
    rows: &[StagedRow<'_>],
) -> Result<(HashSet<Uuid>, HashSet<i64>), DomainError> {
    let columns = table.columns;
    let stage_columns: Vec<String> = (0..columns.len()).map(|i| format!("c{i} text")).collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TEMP TABLE import_stage (row_number bigint, op text, id uuid, target_id uuid, {}) ON COMMIT DROP",
        stage_columns.join(", ")
    )))
    .execute(&mut *tx)
    .await?;
    let mut buffer = Vec::with_capacity(rows.len() * 160);
    for row in rows {
        let (op, target) = match row.write {
            RowWrite::Insert => ("insert", None),
            RowWrite::Update(id) => ("update", Some(id)),
        };
        buffer.extend_from_slice(row.row_number.to_string().as_bytes());
        buffer.push(b'\t');
        buffer.extend_from_slice(op.as_bytes());
        buffer.push(b'\t');
        buffer.extend_from_slice(row.id.to_string().as_bytes());
        buffer.push(b'\t');
        copy_field(&mut buffer, target.map(|id| id.to_string()).as_deref());
        for value in row.values {
            buffer.push(b'\t');
            copy_field(&mut buffer, value.as_deref());
        }
        buffer.push(b'\n');
    }
    let mut copy = tx.copy_in_raw("COPY import_stage FROM STDIN").await?;
    copy.send(buffer).await?;
    copy.finish().await?;

    let table_name = table.table;
    let mut insert_columns = vec!["id", "tenant_id", "created_by", "updated_at"];
    let mut insert_values = vec!["s.id".to_owned(), "$1".into(), "$2".into(), "now()".into()];
    let mut assignments = vec!["updated_at = now()".to_owned()];
    for (i, (column, kind)) in columns.iter().enumerate() {
        let value = if *kind == "text" { format!("s.c{i}") } else { format!("s.c{i}::{kind}") };
        insert_columns.push(column);
        insert_values.push(match *column {
            "status" => format!("COALESCE({value}, '{}')", table.default_status),
            "created_at" => format!("COALESCE({value}, now())"),
            _ => value.clone(),
        });
        if *column != "created_at" {
            assignments.push(format!("{column} = COALESCE({value}, t.{column})"));
        }
    }
    let insert = format!(
        "INSERT INTO {table_name} ({}) SELECT {} FROM import_stage s WHERE s.op = 'insert' ORDER BY s.row_number \
             ON CONFLICT DO NOTHING RETURNING id",
        insert_columns.join(", "),
        insert_values.join(", ")
    );
    let inserted: Vec<Uuid> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(insert)).bind(tenant).bind(created_by).fetch_all(&mut *tx).await?;
    let updated: Vec<i64> = if rows.iter().any(|row| matches!(row.write, RowWrite::Update(_))) {
        let update = format!(
            "UPDATE {table_name} t SET {} FROM import_stage s \
                 WHERE s.op = 'update' AND t.tenant_id = $1 AND t.id = s.target_id AND t.deleted_at IS NULL \
                 RETURNING s.row_number",
            assignments.join(", ")
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(update)).bind(tenant).fetch_all(&mut *tx).await?
    } else {
        Vec::new()
    };
    Ok((inserted.into_iter().collect(), updated.into_iter().collect()))
}

/// A value in COPY's text format.
fn copy_field(buffer: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        buffer.extend_from_slice(b"\\N");
        return;
    };
    for byte in value.bytes() {
        match byte {
            b'\\' => buffer.extend_from_slice(b"\\\\"),
            b'\t' => buffer.extend_from_slice(b"\\t"),
            b'\n' => buffer.extend_from_slice(b"\\n"),
            b'\r' => buffer.extend_from_slice(b"\\r"),
            other => buffer.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_what_copy_text_format_reserves() {
        let mut buffer = Vec::new();
        copy_field(&mut buffer, Some("a\tb\nc\\d\re"));
        buffer.push(b'|');
        copy_field(&mut buffer, None);
        assert_eq!(String::from_utf8_lossy(&buffer), "a\\tb\\nc\\\\d\\re|\\N");
    }
}
