//! Reading an import file as a stream of rows, CSV or XLSX, with every limit of contract §6 enforced while
//! reading, so no file can make the reader hold more than a bounded amount of memory:
//!
//! - CSV: the encoding is detected and transcoded to UTF-8 and records are parsed in bounded buffers as the
//!   bytes stream (see `csv_file`).
//! - XLSX: every zip entry is inflated into a counter before calamine sees the file (see `xlsx`), then cells
//!   are streamed from the first sheet.
//!
//! `row_number` is the row as a spreadsheet program shows the file: the first line is row 1 (the header, in
//! files that start with it), each record is one row however many line breaks its quoted cells hold, and a
//! blank line is a row too (spreadsheets show it as an empty row, and an XLSX sheet numbers it), so the same
//! data as CSV or XLSX gives the same row numbers. `line_number` is the physical line on which a CSV record
//! starts, for text editors: CR, LF and CRLF each end one line, inside quoted cells too. XLSX has no lines.

use super::encoding::TextEncoding;
use super::{csv_file, xlsx};
use crate::csv_safety;
use std::ops::ControlFlow;
use std::path::Path;

/// Excel's own row limit: the largest sheet anyone can export.
pub const MAX_DATA_ROWS: u64 = 1_048_576;
pub const MAX_COLUMNS: usize = 200;
/// Excel's cell limit.
pub const MAX_CELL_CHARS: usize = 32_767;
/// Larger than any legitimate row (200 full cells); a larger "row" is an unclosed quote swallowing the file.
pub const MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Xlsx,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Xlsx => "xlsx",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(FileFormat::Csv),
            "xlsx" => Some(FileFormat::Xlsx),
            _ => None,
        }
    }
}

/// A whole-file problem: the import cannot go on, and this sentence says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

impl From<std::io::Error> for FileError {
    fn from(error: std::io::Error) -> Self {
        FileError(format!("the file could not be read: {error}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header cells, trimmed; blank and repeated names are made unique ("column 3", "Notes (2)") so each
    /// names one column in stored rows.
    pub names: Vec<String>,
    /// The header's spreadsheet row: 1, unless blank rows come first.
    pub row_number: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    /// 1 for the first data row; blank rows are not counted. Resuming skips rows up to a checkpoint by it.
    pub index: u64,
    /// The spreadsheet row (see the module's comment).
    pub row_number: u64,
    /// The physical line a CSV record starts on; `None` for XLSX, which has no lines.
    pub line_number: Option<u64>,
    /// One cell per header column (missing cells are empty).
    pub cells: Vec<String>,
    /// Why the row cannot be read as a record of the header's shape (`malformed_row`).
    pub malformed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    pub data_rows: u64,
    pub encoding: Option<TextEncoding>,
    pub delimiter: Option<u8>,
}

/// Reads the header, then every data row, in order. `on_header` may refuse the file (no usable columns);
/// `on_row` may stop the reading early.
pub fn read_file(
    path: &Path,
    format: FileFormat,
    on_header: impl FnOnce(&Header) -> Result<(), FileError>,
    on_row: impl FnMut(SourceRow) -> ControlFlow<()>,
) -> Result<ReadSummary, FileError> {
    match format {
        FileFormat::Csv => csv_file::read_csv(path, on_header, on_row),
        FileFormat::Xlsx => xlsx::read_xlsx(path, on_header, on_row),
    }
}

/// Counts the data rows (the progress total) and checks the limits before any row is written; the summary also
/// says what was detected.
pub fn count_rows(path: &Path, format: FileFormat) -> Result<(Header, ReadSummary), FileError> {
    read_with_header(path, format, |_| ControlFlow::Continue(()))
}

/// Reads the file, handing each row to `on_row`, and answers its header (an error when it has none).
fn read_with_header(
    path: &Path,
    format: FileFormat,
    on_row: impl FnMut(SourceRow) -> ControlFlow<()>,
) -> Result<(Header, ReadSummary), FileError> {
    let mut header = None;
    let summary = read_file(
        path,
        format,
        |found| {
            header = Some(found.clone());
            Ok(())
        },
        on_row,
    )?;
    let header = header.ok_or_else(|| FileError("the file is empty: it has no header row".into()))?;
    Ok((header, summary))
}

/// The header and the first `rows` data rows, for a look at a file before it is imported; the rest is not read.
pub fn preview(
    path: &Path,
    format: FileFormat,
    rows: usize,
) -> Result<(Header, Vec<SourceRow>, ReadSummary), FileError> {
    let mut first = Vec::with_capacity(rows);
    let (header, summary) = read_with_header(path, format, |row| {
        first.push(row);
        if first.len() >= rows { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })?;
    Ok((header, first, summary))
}

/// Turns raw header cells into unique, non-blank column names.
pub fn header_names(cells: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(cells.len());
    for (column, cell) in cells.iter().enumerate() {
        // errors.csv guards header names too (§6 formula rule), so a re-imported file maps them back.
        let trimmed = csv_safety::strip_formula_guard(cell.trim().trim_start_matches('\u{feff}').trim());
        let base = if trimmed.is_empty() { format!("column {}", column + 1) } else { trimmed.to_owned() };
        let mut name = base.clone();
        let mut copy = 2;
        while names.contains(&name) {
            name = format!("{base} ({copy})");
            copy += 1;
        }
        names.push(name);
    }
    names
}

/// Builds data rows of the header's width from raw cells, and counts them against the limits.
pub(crate) struct RowShaper {
    pub width: usize,
    pub index: u64,
}

impl RowShaper {
    pub fn shape(
        &mut self,
        row_number: u64,
        line_number: Option<u64>,
        mut cells: Vec<String>,
        malformed: Option<String>,
    ) -> Result<Option<SourceRow>, FileError> {
        // Every CSV and XLSX cell passes here: the `'` a CSV writer put before a formula character goes (§6).
        cells.iter_mut().for_each(csv_safety::strip_formula_guard_in_place);
        if malformed.is_none() && cells.iter().all(|cell| cell.trim().is_empty()) {
            return Ok(None);
        }
        self.index += 1;
        if self.index > MAX_DATA_ROWS {
            return Err(FileError(format!(
                "the file has more than {MAX_DATA_ROWS} data rows (the most a spreadsheet holds); split it into smaller files"
            )));
        }
        let mut malformed = malformed;
        if malformed.is_none() && cells.len() > self.width {
            let extra = cells[self.width..].iter().filter(|cell| !cell.trim().is_empty()).count();
            if extra > 0 {
                malformed = Some(format!(
                    "the row has {} fields but the header has {}; check for an unquoted delimiter or a missing quote",
                    cells.len(),
                    self.width
                ));
            }
        }
        // A malformed row keeps its extra cells, so the stored row shows them and a retry still sees them.
        if malformed.is_none() || cells.len() < self.width {
            cells.resize(self.width, String::new());
        }
        Ok(Some(SourceRow { index: self.index, row_number, line_number, cells, malformed }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_limit_is_a_whole_file_error() {
        // The row count is checked as rows are shaped: the one past Excel's limit stops the file.
        let mut shaper = RowShaper { width: 1, index: MAX_DATA_ROWS - 1 };
        assert!(shaper.shape(10, Some(10), vec!["last".into()], None).expect("the last allowed row").is_some());
        let error = shaper.shape(11, Some(11), vec!["one too many".into()], None).expect_err("past the limit");
        assert!(error.0.contains("1048576 data rows"), "{error}");
    }

    #[test]
    fn header_names_are_unique_and_never_blank() {
        let names = header_names(&["Email".into(), " ".into(), "Email".into(), "\u{feff}Name".into()]);
        assert_eq!(names, ["Email", "column 2", "Email (2)", "Name"]);
    }
}
