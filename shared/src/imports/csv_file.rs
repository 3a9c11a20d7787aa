//! CSV files: the encoding is detected and transcoded to UTF-8, line ends become LF and NUL bytes are dropped
//! as the bytes stream; records are parsed with `csv_core` into buffers this module bounds (one record at most
//! `MAX_RECORD_BYTES`, at most `MAX_COLUMNS` fields).
//!
//! A record ends at a CR, LF or CRLF outside quotes, mixed at will, and a line break inside a quoted cell
//! comes out as LF whichever it was. One kind of file needs telling apart: a writer that quotes only the cells
//! holding its own record end (Python's csv module with `lineterminator='\r'`) leaves a cell's LF unquoted in
//! a file whose records end with CR. Read the usual way, each such LF would split its record in two, silently:
//! both halves are rows of plausible cells. The first 64 KiB decide: when they hold lone CRs and lone LFs
//! outside quotes, and reading lone LFs as line breaks inside cells leaves fewer records whose width is not
//! the header's, the whole file is read that way.

use super::encoding;
use super::reader::{
    FileError, Header, MAX_COLUMNS, MAX_RECORD_BYTES, ReadSummary, RowShaper, SourceRow, header_names,
};
use super::sniff;
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::Path;

pub(crate) fn read_csv(
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
    encoding::utf8_reader(text_encoding, sample.as_slice())
        .read_to_string(&mut sample_text)
        .map_err(|_| FileError("the file's text could not be decoded".into()))?;
    let (record_ends, delimiter) = record_ends_and_delimiter(&sample_text);

    let file = File::open(path)?;
    let text =
        normalized_text(encoding::utf8_reader(text_encoding, BufReader::with_capacity(256 * 1024, file)), record_ends);
    let mut records = CsvRecords::new(text, delimiter);
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

/// Which line breaks outside quotes end a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordEnds {
    /// CR, LF and CRLF alike: every file but the next kind.
    AnyLineBreak,
    /// CR and CRLF; a lone LF is a line break inside a cell, quoted or not.
    CarriageReturn,
}

/// Stands for a line break inside a cell while `csv_core` parses, where an LF would end the record. NUL never
/// reaches the parser otherwise (it is dropped), and each one turns back into LF in the cell.
const BREAK_IN_CELL: u8 = 0;

/// Decides from the decoded sample (its line ends as they are) how records end, then the delimiter.
fn record_ends_and_delimiter(sample: &str) -> (RecordEnds, u8) {
    let sniffed = |record_ends| {
        let mut text = String::new();
        // Reading from memory cannot fail, and the sample is valid UTF-8, which line-end changes keep.
        let _ = normalized_text(sample.as_bytes(), record_ends).read_to_string(&mut text);
        sniff::sniff(&text)
    };
    let usual = sniffed(RecordEnds::AnyLineBreak);
    if has_lone_cr_and_lone_lf_outside_quotes(sample) {
        // Unquoted LFs in a CR file cut records into pieces of the wrong width; a file that mixes CR and LF
        // record ends read as a CR file glues records together into rows too wide.
        let cr_file = sniffed(RecordEnds::CarriageReturn);
        if cr_file.ragged < usual.ragged {
            return (RecordEnds::CarriageReturn, cr_file.delimiter);
        }
    }
    (RecordEnds::AnyLineBreak, usual.delimiter)
}

/// Whether records might end with CR while lone LFs sit in unquoted cells (or the file mixes CR and LF ends).
fn has_lone_cr_and_lone_lf_outside_quotes(text: &str) -> bool {
    let (mut lone_cr, mut lone_lf, mut quoted) = (false, false, false);
    let mut bytes = text.bytes().peekable();
    let mut after_cr = false;
    while let Some(byte) = bytes.next() {
        match byte {
            b'"' => quoted = !quoted,
            b'\r' if !quoted && bytes.peek() != Some(&b'\n') => lone_cr = true,
            b'\n' if !quoted && !after_cr => lone_lf = true,
            _ => {}
        }
        after_cr = byte == b'\r';
        if lone_cr && lone_lf {
            return true;
        }
    }
    false
}

/// UTF-8 text whose record ends are LF, with no NUL bytes (Postgres text cannot hold NUL).
fn normalized_text<R: Read>(utf8: R, record_ends: RecordEnds) -> impl Read {
    LineEnds { inner: utf8, record_ends, after_cr: false }
}

/// CR and CRLF become LF, so line numbers count the same whatever line ends the file uses; a lone LF stays LF
/// or, in a CR file, becomes `BREAK_IN_CELL`; NUL is dropped.
struct LineEnds<R> {
    inner: R,
    record_ends: RecordEnds,
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
                let normalized = match byte {
                    b'\n' if after_cr => continue,
                    0 => continue,
                    b'\n' if self.record_ends == RecordEnds::CarriageReturn => BREAK_IN_CELL,
                    b'\r' => b'\n',
                    other => other,
                };
                buf[kept] = normalized;
                kept += 1;
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
    /// Line breaks inside the cells of the records read so far, which are lines but not rows: the LFs (inside
    /// quotes), which the core counts as lines, and the `BREAK_IN_CELL` marks, which it does not.
    cell_lfs: u64,
    cell_marks: u64,
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
            cell_lfs: 0,
            cell_marks: 0,
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
        let (mut lfs_here, mut marks_here) = (0u64, 0u64);
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
            for byte in &self.output[out_len..out_len + written] {
                lfs_here += u64::from(*byte == b'\n');
                marks_here += u64::from(*byte == BREAK_IN_CELL);
            }
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
                    // The core counted the record's own LFs; step back to where it started. Blank lines
                    // before it (which the core skips) are lines and rows alike; the breaks inside earlier
                    // records' cells are lines only.
                    let terminator = u64::from(terminated_by_newline);
                    let core_line = self.core.line().saturating_sub(lfs_here + terminator).max(1);
                    let line_number = core_line + self.cell_marks;
                    let row_number = core_line.saturating_sub(self.cell_lfs).max(1);
                    self.cell_lfs += lfs_here;
                    self.cell_marks += marks_here;
                    let fields = if overflow.is_some() {
                        Vec::new()
                    } else {
                        let mut fields = Vec::with_capacity(ends_len);
                        let mut from = 0;
                        for &to in &self.ends[..ends_len] {
                            let mut field = String::from_utf8_lossy(&self.output[from..to]).into_owned();
                            if marks_here > 0 {
                                field = field.replace(char::from(BREAK_IN_CELL), "\n");
                            }
                            fields.push(field);
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
    use crate::imports::reader::{FileFormat, read_file};
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
        let path = std::env::temp_dir().join(format!("crm-csv-file-{}.csv", uuid::Uuid::new_v4()));
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

    /// A CSV writer that quotes only cells holding the delimiter, a quote or its CR record end, as Python's
    /// csv module does with `lineterminator='\r'`: an LF inside a cell goes out unquoted.
    fn cr_file_quoting_only_cr(records: &[Vec<String>], delimiter: u8) -> String {
        let delimiter = delimiter as char;
        let mut text = String::new();
        for record in records {
            let cells: Vec<String> = record
                .iter()
                .map(|cell| {
                    if cell.contains([delimiter, '"', '\r']) {
                        format!("\"{}\"", cell.replace('"', "\"\""))
                    } else {
                        cell.clone()
                    }
                })
                .collect();
            text.push_str(&cells.join(&delimiter.to_string()));
            text.push('\r');
        }
        text
    }

    #[test]
    fn a_cr_file_whose_cells_hold_unquoted_lfs_reads_one_record_per_row() {
        let (_, rows) = rows_of(b"first_name,notes\rAda,two\nlines\rBob,x\r").expect("read");
        assert_eq!(numbered(&rows), [(2, Some(2), cells(&["Ada", "two\nlines"])), (3, Some(4), cells(&["Bob", "x"]))]);
        for delimiter in sniff::CANDIDATES {
            let mut records = vec![cells(&["first_name", "email", "notes", "company"])];
            for i in 0..3_000 {
                let notes = match i % 4 {
                    0 => format!("called {i}\nsaid \"later\""),
                    1 => format!("line one\nline two\n{i}"),
                    _ => String::new(),
                };
                records.push(vec![format!("Zoë{i}"), format!("zoe{i}@example.com"), notes, "Acme, Inc.".into()]);
            }
            let (_, rows) = rows_of(cr_file_quoting_only_cr(&records, delimiter).as_bytes()).expect("read");
            assert_eq!(rows.len(), 3_000, "delimiter {:?}", delimiter as char);
            let mut line = 2;
            for (row, record) in rows.iter().zip(&records[1..]) {
                assert_eq!(row.cells, *record, "delimiter {:?}", delimiter as char);
                assert_eq!((row.row_number, row.line_number), (row.index + 1, Some(line)));
                assert_eq!(row.malformed, None);
                line += 1 + record[2].matches('\n').count() as u64;
            }
        }
    }

    #[test]
    fn a_file_mixing_lf_and_cr_record_ends_is_not_read_as_a_cr_file() {
        // Lone LFs and lone CRs outside quotes, as above, but here each ends a complete record.
        let (_, rows) = rows_of(b"first_name,notes\nAda,x\nBob,\"y\nz\"\rCy,w\r").expect("read");
        assert_eq!(
            numbered(&rows),
            [
                (2, Some(2), cells(&["Ada", "x"])),
                (3, Some(3), cells(&["Bob", "y\nz"])),
                (4, Some(5), cells(&["Cy", "w"]))
            ]
        );
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
    fn the_column_limit_is_a_whole_file_error() {
        let wide: String = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",") + "\n1\n";
        let error = rows_of(wide.as_bytes()).expect_err("too wide");
        assert!(error.0.contains("201 columns"), "{error}");
    }
}
