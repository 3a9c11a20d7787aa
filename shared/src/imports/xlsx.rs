//! XLSX files: the zip is checked entry by entry before calamine opens it, then the first sheet's cells are
//! streamed into rows.
//!
//! The check inflates each entry into a counter (nothing is kept) and stops the moment a bound is passed, so
//! a zip bomb costs at most the budget's worth of inflating and no memory. Declared sizes in zip headers are
//! not trusted: the counted bytes are. calamine reads the shared strings into memory and reserves space for
//! the count the file declares, so that count is bounded too.

use super::reader::{FileError, Header, MAX_COLUMNS, ReadSummary, RowShaper, SourceRow, header_names};
use calamine::{DataRef, Reader, Xlsx};
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::Path;

/// Total inflated bytes of all entries.
pub const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;
/// Entries inflating past this size may not inflate more than `MAX_RATIO` times their compressed size.
pub const RATIO_CHECKED_ABOVE: u64 = 100 * 1024;
pub const MAX_RATIO: u64 = 100;
pub const MAX_ENTRIES: usize = 10_000;
/// Strings calamine will hold (and reserve room for) from the shared-strings table.
pub const MAX_SHARED_STRINGS: u64 = 4_000_000;
/// calamine holds the whole shared-strings table in memory: its XML may inflate to this much (about 1,000,000
/// rows of unique names and emails). Larger sheets import as CSV, which streams.
pub const MAX_SHARED_STRINGS_BYTES: u64 = 128 * 1024 * 1024;

/// What the check found: the sizes an operator may want to see in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipReport {
    pub entries: usize,
    pub inflated_bytes: u64,
}

pub fn check_zip(path: &Path) -> Result<ZipReport, FileError> {
    let file = File::open(path)?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|error| FileError(format!("the .xlsx file is not a readable zip archive ({error})")))?;
    if archive.len() > MAX_ENTRIES {
        return Err(FileError(format!(
            "the .xlsx file has {} entries; at most {MAX_ENTRIES} are allowed",
            archive.len()
        )));
    }
    let mut inflated_total = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| FileError(format!("the .xlsx file has an entry that cannot be read ({error})")))?;
        let name = entry.name().map(|name| name.into_owned()).unwrap_or_else(|_| format!("entry {index}"));
        if entry.encrypted() {
            return Err(FileError(
                "the .xlsx file is password-protected; remove the password and upload it again".into(),
            ));
        }
        let compressed = entry.compressed_size();
        let ratio_cap = RATIO_CHECKED_ABOVE.max(compressed.saturating_mul(MAX_RATIO));
        let budget = MAX_INFLATED_BYTES - inflated_total;
        let cap = ratio_cap.min(budget);
        let mut head = Vec::new();
        let counted = count_inflated(&mut entry, cap + 1, &mut head)
            .map_err(|error| FileError(format!("the .xlsx entry {name:?} cannot be inflated ({error})")))?;
        if counted > ratio_cap {
            return Err(FileError(format!(
                "the .xlsx entry {name:?} inflates more than {MAX_RATIO} times its compressed size ({compressed} bytes); \
                 the file looks like a zip bomb and was not opened"
            )));
        }
        if counted > budget {
            return Err(FileError(format!(
                "the .xlsx file inflates past {} MiB; it was not opened (save large sheets as CSV)",
                MAX_INFLATED_BYTES / (1024 * 1024)
            )));
        }
        inflated_total += counted;
        if name.eq_ignore_ascii_case("xl/sharedStrings.xml") {
            check_shared_strings(counted, MAX_SHARED_STRINGS_BYTES, &head)?;
        }
    }
    Ok(ZipReport { entries: archive.len(), inflated_bytes: inflated_total })
}

/// Inflates into a counter, keeping the first 4 KiB (where the shared-strings count is declared).
fn count_inflated(entry: &mut impl Read, limit: u64, head: &mut Vec<u8>) -> std::io::Result<u64> {
    let mut limited = entry.take(limit);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = limited.read(&mut buffer)?;
        if read == 0 {
            return Ok(total);
        }
        if head.len() < 4096 {
            let wanted = (4096 - head.len()).min(read);
            head.extend_from_slice(&buffer[..wanted]);
        }
        total += read as u64;
    }
}

fn check_shared_strings(inflated: u64, max_bytes: u64, head: &[u8]) -> Result<(), FileError> {
    if inflated > max_bytes {
        return Err(FileError(format!(
            "the .xlsx file's shared strings inflate to {} MiB, more than the {} MiB an import holds in memory; \
             save the sheet as CSV and upload that",
            inflated / (1024 * 1024),
            max_bytes / (1024 * 1024)
        )));
    }
    let text = String::from_utf8_lossy(head);
    for attribute in ["uniqueCount=\"", "count=\""] {
        if let Some(start) = text.find(attribute) {
            let digits: String = text[start + attribute.len()..].chars().take_while(char::is_ascii_digit).collect();
            let count = digits.parse::<u64>().unwrap_or(u64::MAX);
            if count > MAX_SHARED_STRINGS {
                return Err(FileError(format!(
                    "the .xlsx file declares {digits} shared strings; at most {MAX_SHARED_STRINGS} are allowed"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn read_xlsx(
    path: &Path,
    on_header: impl FnOnce(&Header) -> Result<(), FileError>,
    mut on_row: impl FnMut(SourceRow) -> ControlFlow<()>,
) -> Result<ReadSummary, FileError> {
    check_zip(path)?;
    let file = File::open(path)?;
    let mut workbook: Xlsx<_> = Xlsx::new(BufReader::new(file))
        .map_err(|error| FileError(format!("the .xlsx file cannot be read: {error}")))?;
    let sheet =
        workbook.sheet_names().first().cloned().ok_or_else(|| FileError("the .xlsx file has no sheet".into()))?;
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(|error| FileError(format!("the sheet {sheet:?} cannot be read: {error}")))?;

    let mut on_header = Some(on_header);
    let mut shaper: Option<RowShaper> = None;
    let mut current: Option<(u32, Vec<String>, Option<String>)> = None;
    let mut stopped = false;
    // Hands one assembled sheet row on: the first non-blank one is the header.
    let mut emit = |row: u32, values: Vec<String>, malformed: Option<String>| -> Result<ControlFlow<()>, FileError> {
        let row_number = u64::from(row) + 1;
        match shaper.as_mut() {
            None => {
                if values.iter().all(|value| value.trim().is_empty()) {
                    return Ok(ControlFlow::Continue(()));
                }
                if malformed.is_some() {
                    return Err(FileError(format!("the header row has more than {MAX_COLUMNS} columns")));
                }
                let header = Header { names: header_names(&values), row_number };
                if let Some(on_header) = on_header.take() {
                    on_header(&header)?;
                }
                shaper = Some(RowShaper { width: header.names.len(), index: 0 });
                Ok(ControlFlow::Continue(()))
            }
            Some(shaper) => match shaper.shape(row_number, None, values, malformed)? {
                Some(row) => Ok(on_row(row)),
                None => Ok(ControlFlow::Continue(())),
            },
        }
    };
    loop {
        let cell =
            cells.next_cell().map_err(|error| FileError(format!("the sheet {sheet:?} cannot be read: {error}")))?;
        let Some(cell) = cell else { break };
        let (row, column) = cell.get_position();
        let column = column as usize;
        if current.as_ref().is_some_and(|(current_row, _, _)| *current_row != row)
            && let Some((done_row, values, malformed)) = current.take()
            && emit(done_row, values, malformed)?.is_break()
        {
            stopped = true;
            break;
        }
        let (_, values, malformed) = current.get_or_insert_with(|| (row, Vec::new(), None));
        let text = cell_text(cell.get_value());
        if column >= MAX_COLUMNS {
            if !text.trim().is_empty() {
                malformed.get_or_insert_with(|| format!("the row has a value beyond column {MAX_COLUMNS}"));
            }
            continue;
        }
        if values.len() <= column {
            values.resize(column + 1, String::new());
        }
        values[column] = text;
    }
    if !stopped && let Some((done_row, values, malformed)) = current.take() {
        let _ = emit(done_row, values, malformed)?;
    }
    match shaper {
        None => Err(FileError("the sheet is empty: it has no header row".into())),
        Some(shaper) => Ok(ReadSummary { data_rows: shaper.index, encoding: None, delimiter: None }),
    }
}

/// A cell as the text a user would type: whole numbers without ".0", dates as ISO 8601.
fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Empty => String::new(),
        DataRef::String(text) => text.clone(),
        DataRef::SharedString(text) => (*text).to_owned(),
        DataRef::Int(number) => number.to_string(),
        DataRef::Float(number) => {
            if number.fract() == 0.0 && number.abs() < 1e15 {
                format!("{number:.0}")
            } else {
                number.to_string()
            }
        }
        DataRef::Bool(flag) => if *flag { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(datetime) => match datetime.as_datetime() {
            Some(moment) if moment.time() == chrono::NaiveTime::MIN => moment.format("%Y-%m-%d").to_string(),
            Some(moment) => moment.format("%Y-%m-%dT%H:%M:%S").to_string(),
            None => datetime.as_f64().to_string(),
        },
        DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => text.clone(),
        DataRef::Error(error) => format!("#{error:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_shared_string_count_past_the_bound_is_refused() {
        let small = br#"<?xml version="1.0"?><sst xmlns="x" count="10" uniqueCount="8">"#;
        assert_eq!(check_shared_strings(1000, MAX_SHARED_STRINGS_BYTES, small), Ok(()));
        let huge = br#"<?xml version="1.0"?><sst xmlns="x" count="4000000001" uniqueCount="4000000001">"#;
        let error = check_shared_strings(1000, MAX_SHARED_STRINGS_BYTES, huge).expect_err("too many");
        assert!(error.0.contains("4000000001 shared strings"), "{error}");
        let error = check_shared_strings(3 * 1024 * 1024, 2 * 1024 * 1024, small).expect_err("too large");
        assert!(error.0.contains("save the sheet as CSV"), "{error}");
    }

    #[test]
    fn cells_read_as_a_user_typed_them() {
        assert_eq!(cell_text(&DataRef::Float(4155552671.0)), "4155552671");
        assert_eq!(cell_text(&DataRef::Float(12.5)), "12.5");
        assert_eq!(cell_text(&DataRef::Bool(true)), "TRUE");
        assert_eq!(cell_text(&DataRef::SharedString("Ada")), "Ada");
        assert_eq!(cell_text(&DataRef::Empty), "");
    }
}
