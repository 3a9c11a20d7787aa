//! Reading an import file as a stream of rows, CSV or XLSX, with every limit of contract §6 enforced while
//! reading, so no file can make the reader hold more than a bounded amount of memory:
//!
//! - CSV: the encoding is detected and transcoded to UTF-8, CR and CRLF line ends become LF and NUL bytes are
//!   dropped as the bytes stream; records are parsed with `csv_core` into buffers this module bounds (one
//!   record at most `MAX_RECORD_BYTES`, at most `MAX_COLUMNS` fields).
//! - XLSX: every zip entry is inflated into a counter before calamine sees the file (see `xlsx`), then cells
//!   are streamed from the first sheet.
//!
//! `row_number` is the row as a spreadsheet program shows the file: the first line is row 1 (the header, in
//! files that start with it), each record is one row however many line breaks its quoted cells hold, and a
//! blank line is a row too (spreadsheets show it as an empty row, and an XLSX sheet numbers it), so the same
//! data as CSV or XLSX gives the same row numbers. `line_number` is the physical line on which a CSV record
//! starts, for text editors: CR, LF and CRLF each end one line, inside quoted cells too. XLSX has no lines.

use super::encoding::{self, TextEncoding};
use super::sniff;
use super::xlsx;
use std::fs::File;
use std::io::{BufReader, Read};
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
        FileFormat::Csv => read_csv(path, on_header, on_row),
        FileFormat::Xlsx => xlsx::read_xlsx(path, on_header, on_row),
    }
}

/// Counts the data rows (the progress total) and checks the limits before any row is written; the summary also
/// says what was detected.
pub fn count_rows(path: &Path, format: FileFormat) -> Result<(Header, ReadSummary), FileError> {
    let mut header = None;
    let summary = read_file(
        path,
        format,
        |found| {
            header = Some(found.clone());
            Ok(())
        },
        |_| ControlFlow::Continue(()),
    )?;
    let header = header.ok_or_else(|| FileError("the file is empty: it has no header row".into()))?;
    Ok((header, summary))
}

/// Turns raw header cells into unique, non-blank column names.
pub fn header_names(cells: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(cells.len());
    for (column, cell) in cells.iter().enumerate() {
        let trimmed = cell.trim().trim_start_matches('\u{feff}').trim();
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

fn read_csv(
    path: &Path,
    on_header: impl FnOnce(&Header) -> Result<(), FileError>,
    mut on_row: impl FnMut(SourceRow) -> ControlFlow<()>,
) -> Result<ReadSummary, FileError> {
    let mut file = File::open(path)?;
    let mut sample = Vec::with_capacity(encoding::SAMPLE_BYTES);
    (&mut file).take(encoding::SAMPLE_BYTES as u64).read_to_end(&mut sample)?;
    if sample.is_empty() {
        return Err(FileError("the file is empty: it has no header row".into()));
    }
    if looks_binary(&sample) {
        return Err(FileError(
            "the file is not text: it looks like a binary file (a spreadsheet saved as .xls or .ods, or an archive); \
             save it as CSV (UTF-8) or .xlsx"
                .into(),
        ));
    }
    let text_encoding = encoding::detect(&sample);
    let mut sample_text = String::new();
    let mut sample_reader = normalized_text(text_encoding, sample.as_slice());
    sample_reader
        .read_to_string(&mut sample_text)
        .map_err(|_| FileError("the file's text could not be decoded".into()))?;
    let delimiter = sniff::delimiter(&sample_text);
    drop(sample_reader);

    let file = File::open(path)?;
    let mut records =
        CsvRecords::new(normalized_text(text_encoding, BufReader::with_capacity(256 * 1024, file)), delimiter);
    let header = loop {
        match records.next_record()? {
            None => return Err(FileError("the file is empty: it has no header row".into())),
            Some(record) => {
                if let Some(problem) = record.overflow {
                    return Err(FileError(format!("the header row cannot be read: {problem}")));
                }
                if record.fields.iter().all(|field| field.trim().is_empty()) {
                    continue;
                }
                if record.fields.len() > MAX_COLUMNS {
                    return Err(FileError(format!(
                        "the file has {} columns; at most {MAX_COLUMNS} are allowed",
                        record.fields.len()
                    )));
                }
                break Header { names: header_names(&record.fields), row_number: record.row_number };
            }
        }
    };
    on_header(&header)?;
    let mut shaper = RowShaper { width: header.names.len(), index: 0 };
    while let Some(record) = records.next_record()? {
        if let Some(row) = shaper.shape(record.row_number, Some(record.line_number), record.fields, record.overflow)?
            && on_row(row).is_break()
        {
            break;
        }
    }
    Ok(ReadSummary { data_rows: shaper.index, encoding: Some(text_encoding), delimiter: Some(delimiter) })
}

/// Zip archives, OLE documents (.xls) and other binaries: refused with a clear sentence instead of being parsed
/// as garbage text. UTF-16 text has zeros too, but never in both bytes of a pair.
fn looks_binary(sample: &[u8]) -> bool {
    if sample.starts_with(b"PK\x03\x04") || sample.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return true;
    }
    let zero_pairs = sample.chunks_exact(2).filter(|pair| pair[0] == 0 && pair[1] == 0).count();
    zero_pairs * 20 > sample.len() / 2 && sample.len() > 64
}

/// UTF-8 text with LF line ends only and no NUL bytes (Postgres text cannot hold NUL).
fn normalized_text<R: Read>(text_encoding: TextEncoding, bytes: R) -> impl Read {
    LineEnds { inner: encoding::utf8_reader(text_encoding, bytes), after_cr: false }
}

/// CR and CRLF become LF, so line numbers count the same whatever line ends the file uses; NUL is dropped.
struct LineEnds<R> {
    inner: R,
    after_cr: bool,
}

impl<R: Read> Read for LineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let read = self.inner.read(buf)?;
            if read == 0 {
                return Ok(0);
            }
            let mut kept = 0;
            for position in 0..read {
                let byte = buf[position];
                let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
                match byte {
                    b'\n' if after_cr => {}
                    0 => {}
                    b'\r' => {
                        buf[kept] = b'\n';
                        kept += 1;
                    }
                    _ => {
                        buf[kept] = byte;
                        kept += 1;
                    }
                }
            }
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

struct RawRecord {
    row_number: u64,
    line_number: u64,
    fields: Vec<String>,
    overflow: Option<String>,
}

/// CSV records from LF-terminated UTF-8 text, in bounded buffers.
struct CsvRecords<R> {
    core: csv_core::Reader,
    /// Line breaks inside the quoted cells of the records read so far: the lines that are not rows.
    breaks_inside_cells: u64,
    input: R,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    output: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> CsvRecords<R> {
    fn new(input: R, delimiter: u8) -> Self {
        let core =
            csv_core::ReaderBuilder::new().delimiter(delimiter).terminator(csv_core::Terminator::Any(b'\n')).build();
        Self {
            core,
            breaks_inside_cells: 0,
            input,
            buffer: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            eof: false,
            output: vec![0; 4096],
            ends: vec![0; 32],
        }
    }

    fn next_record(&mut self) -> Result<Option<RawRecord>, FileError> {
        let (mut out_len, mut ends_len) = (0usize, 0usize);
        let mut newlines_inside = 0u64;
        let mut overflow: Option<String> = None;
        loop {
            if self.start == self.end && !self.eof {
                self.end = self
                    .input
                    .read(&mut self.buffer)
                    .map_err(|error| FileError(format!("the file could not be read: {error}")))?;
                self.start = 0;
                self.eof = self.end == 0;
            }
            let input = &self.buffer[self.start..self.end];
            let (result, read, written, ended) =
                self.core.read_record(input, &mut self.output[out_len..], &mut self.ends[ends_len..]);
            let terminated_by_newline = read > 0 && input[read - 1] == b'\n';
            newlines_inside +=
                self.output[out_len..out_len + written].iter().filter(|byte| **byte == b'\n').count() as u64;
            self.start += read;
            out_len += written;
            ends_len += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    if self.output.len() >= MAX_RECORD_BYTES {
                        overflow.get_or_insert_with(|| {
                            format!(
                                "the row is larger than {} MiB; a quote is probably not closed",
                                MAX_RECORD_BYTES / (1024 * 1024)
                            )
                        });
                        out_len = 0;
                    } else {
                        let grown = (self.output.len() * 2).min(MAX_RECORD_BYTES);
                        self.output.resize(grown, 0);
                    }
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() > MAX_COLUMNS * 4 {
                        overflow.get_or_insert_with(|| format!("the row has more than {} fields", MAX_COLUMNS * 4));
                        ends_len = 0;
                    } else {
                        let grown = self.ends.len() * 2;
                        self.ends.resize(grown, 0);
                    }
                }
                csv_core::ReadRecordResult::Record => {
                    // The core counted the record's own line breaks; step back to where it started. Blank
                    // lines before it (which the core skips) are lines and rows alike; the breaks inside
                    // earlier records' cells are lines only.
                    let terminator = u64::from(terminated_by_newline);
                    let line_number = self.core.line().saturating_sub(newlines_inside + terminator).max(1);
                    let row_number = line_number - self.breaks_inside_cells;
                    self.breaks_inside_cells += newlines_inside;
                    let fields = if overflow.is_some() {
                        Vec::new()
                    } else {
                        let mut fields = Vec::with_capacity(ends_len);
                        let mut from = 0;
                        for &to in &self.ends[..ends_len] {
                            fields.push(String::from_utf8_lossy(&self.output[from..to]).into_owned());
                            from = to;
                        }
                        fields
                    };
                    return Ok(Some(RawRecord { row_number, line_number, fields, overflow }));
                }
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rows_of(bytes: &[u8]) -> Result<(Header, Vec<SourceRow>), FileError> {
        let mut file = tempfile_path();
        file.1.write_all(bytes).expect("write");
        let mut header = None;
        let mut rows = Vec::new();
        read_file(
            &file.0,
            FileFormat::Csv,
            |found| {
                header = Some(found.clone());
                Ok(())
            },
            |row| {
                rows.push(row);
                ControlFlow::Continue(())
            },
        )?;
        let _ = std::fs::remove_file(&file.0);
        file.0.clear();
        Ok((header.expect("header"), rows))
    }

    fn tempfile_path() -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("crm-reader-{}.csv", uuid::Uuid::new_v4()));
        let file = File::create(&path).expect("create");
        (path, file)
    }

    /// (row_number, line_number, cells) of each data row.
    fn numbered(rows: &[SourceRow]) -> Vec<(u64, Option<u64>, Vec<String>)> {
        rows.iter().map(|row| (row.row_number, row.line_number, row.cells.clone())).collect()
    }

    fn cells(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    #[test]
    fn line_ends_of_every_kind_give_the_same_rows_and_line_numbers() {
        let lf = "first_name,notes\nAda,\"two\nlines\"\n\nBob,x\n";
        let expected = rows_of(lf.as_bytes()).expect("lf");
        // Ada is row 2 over lines 2 and 3; the blank line is row 3 (line 4); Bob is row 4 on line 5.
        assert_eq!(
            numbered(&expected.1),
            [(2, Some(2), cells(&["Ada", "two\nlines"])), (4, Some(5), cells(&["Bob", "x"]))]
        );
        for variant in [lf.replace('\n', "\r\n"), lf.replace('\n', "\r")] {
            assert_eq!(rows_of(variant.as_bytes()).expect("variant"), expected);
        }
    }

    #[test]
    fn mac_files_with_cr_record_ends_and_lf_inside_quotes_read_one_record_per_row() {
        // What Excel for Mac writes: CR ends each record, a line break inside a cell is LF.
        for delimiter in sniff::CANDIDATES {
            let text = "first_name,notes\rAda,\"two\nlines\"\rBob,\"one\n\nthree\"\rCy,x\r"
                .replace(',', &(delimiter as char).to_string());
            let (header, rows) = rows_of(text.as_bytes()).expect("read");
            assert_eq!((header.names, header.row_number), (cells(&["first_name", "notes"]), 1));
            assert_eq!(
                numbered(&rows),
                [
                    (2, Some(2), cells(&["Ada", "two\nlines"])),
                    (3, Some(4), cells(&["Bob", "one\n\nthree"])),
                    (4, Some(7), cells(&["Cy", "x"])),
                ],
                "delimiter {:?}",
                delimiter as char
            );
        }
    }

    #[test]
    fn crlf_files_with_lf_inside_quotes_read_one_record_per_row() {
        // What Excel for Windows and Google Sheets write: CRLF ends each record, LF breaks a cell's lines.
        let text = "first_name,notes\r\nAda,\"two\nlines\"\r\n\r\nBob,\"say \"\"hi\"\"\nthen go\"\r\n";
        let (_, rows) = rows_of(text.as_bytes()).expect("read");
        assert_eq!(
            numbered(&rows),
            [(2, Some(2), cells(&["Ada", "two\nlines"])), (4, Some(5), cells(&["Bob", "say \"hi\"\nthen go"]))]
        );
    }

    #[test]
    fn every_line_end_mixed_in_one_file_reads_like_the_lf_file() {
        let lf = "first_name,notes\nAda,\"a\nb\"\nBob,\"c\nd\"\nCy,\"e\nf\"\nDee,g\n";
        // Record ends LF, CRLF, CR and CRLF; the breaks inside the cells CR, CRLF and LF.
        let mixed = "first_name,notes\nAda,\"a\rb\"\r\nBob,\"c\r\nd\"\rCy,\"e\nf\"\r\nDee,g";
        let expected = rows_of(lf.as_bytes()).expect("lf");
        assert_eq!(rows_of(mixed.as_bytes()).expect("mixed"), expected);
        assert_eq!(
            expected.1.iter().map(|row| (row.row_number, row.line_number)).collect::<Vec<_>>(),
            [(2, Some(2)), (3, Some(4)), (4, Some(6)), (5, Some(8))]
        );
        assert_eq!(expected.1[1].cells, ["Bob", "c\nd"], "every break inside a cell comes out as LF");
    }

    #[test]
    fn blank_lines_are_rows_but_not_data() {
        // Two blank lines before the header, one between records, an Excel empty row (delimiters only) and
        // blank lines at the end: a spreadsheet shows each as an empty row.
        let text = "\n\nfirst_name,notes\nAda,\"x\ny\"\n\n,\nBob,z\n\n\n";
        let (header, rows) = rows_of(text.as_bytes()).expect("read");
        assert_eq!(header.row_number, 3);
        assert_eq!(numbered(&rows), [(4, Some(4), cells(&["Ada", "x\ny"])), (7, Some(8), cells(&["Bob", "z"]))]);
        assert_eq!(rows.iter().map(|row| row.index).collect::<Vec<_>>(), [1, 2], "blank rows are not data rows");
    }

    #[test]
    fn a_large_mac_file_keeps_one_record_per_row_across_buffer_boundaries() {
        // Larger than the sample, the record buffer and the file buffer, so records and CRs straddle each.
        let mut text = String::from("first_name;email;notes;company\r");
        for i in 0..3_000 {
            let notes = if i % 3 == 0 { format!("\"called\n{i}; again\"") } else { format!("note {i}") };
            text.push_str(&format!(
                "Zoë{i};zoe{i}@example.com;{notes};Société Générale, 29 boulevard Haussmann, Paris\r"
            ));
        }
        assert!(text.len() > 256 * 1024);
        let (_, rows) = rows_of(text.as_bytes()).expect("read");
        assert_eq!(rows.len(), 3_000);
        let mut line = 2;
        for (i, row) in rows.iter().enumerate() {
            assert_eq!((row.row_number, row.line_number), (i as u64 + 2, Some(line)), "record {i}");
            assert_eq!(row.cells[1], format!("zoe{i}@example.com"));
            line += if i % 3 == 0 { 2 } else { 1 };
        }
        assert_eq!(rows[3].cells[2], "called\n3; again");
    }

    #[test]
    fn ragged_rows_are_malformed_and_blank_rows_skipped() {
        let (header, rows) = rows_of(b"a,b,c\n1,2,3,4\n,,\n1,2\n5,6,7,,\n").expect("read");
        assert_eq!(header.names, ["a", "b", "c"]);
        assert_eq!(rows.len(), 3);
        assert!(rows[0].malformed.is_some());
        assert_eq!(
            (rows[1].row_number, rows[1].cells.clone(), rows[1].malformed.clone()),
            (4, vec!["1".into(), "2".into(), String::new()], None)
        );
        assert_eq!(rows[2].malformed, None, "empty trailing fields are not extra data");
        assert_eq!(rows.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn an_unclosed_quote_is_one_bounded_malformed_row() {
        let mut text = b"first_name,notes\nAda,\"never closed\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        let (_, rows) = rows_of(&text).expect("read");
        assert_eq!(rows.len(), 1);
        assert!(rows[0].malformed.as_deref().is_some_and(|m| m.contains("quote")), "{:?}", rows[0].malformed);
    }

    #[test]
    fn binary_files_and_empty_files_are_refused_clearly() {
        let error = rows_of(b"PK\x03\x04 rest of a zip").expect_err("zip");
        assert!(error.0.contains("not text"), "{error}");
        let error = rows_of(b"").expect_err("empty");
        assert!(error.0.contains("empty"), "{error}");
    }

    #[test]
    fn the_column_and_row_limits_are_whole_file_errors() {
        let wide: String = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",") + "\n1\n";
        let error = rows_of(wide.as_bytes()).expect_err("too wide");
        assert!(error.0.contains("201 columns"), "{error}");
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
