//! XLSX files: the zip is checked entry by entry before calamine opens it (`xlsx_check`: a bomb or a file
//! whose shared strings, styles or cells calamine could not hold in bounded memory is refused unopened), then
//! the first sheet's cells are streamed into rows.

use super::reader::{FileError, Header, MAX_COLUMNS, ReadSummary, RowShaper, SourceRow, header_names};
use super::xlsx_check::check_zip;
use calamine::{DataRef, Reader, Xlsx};
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::Path;

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
    use std::io::Write;

    /// The smallest workbook calamine reads: one sheet of inline strings, one row a `Vec`.
    fn workbook(rows: &[&[&str]]) -> std::path::PathBuf {
        let escape = |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('\r', "_x000D_");
        let mut sheet =
            String::from("<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>");
        for (row, cells) in rows.iter().enumerate() {
            sheet.push_str(&format!("<row r=\"{}\">", row + 1));
            for (column, cell) in cells.iter().enumerate() {
                let reference = format!("{}{}", char::from(b'A' + column as u8), row + 1);
                sheet.push_str(&format!(
                    "<c r=\"{reference}\" t=\"inlineStr\"><is><t xml:space=\"preserve\">{}</t></is></c>",
                    escape(cell)
                ));
            }
            sheet.push_str("</row>");
        }
        sheet.push_str("</sheetData></worksheet>");
        let relationship = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
        let parts = [
            (
                "_rels/.rels",
                format!(
                    "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"{relationship}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
                ),
            ),
            (
                "xl/workbook.xml",
                format!(
                    "<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"{relationship}\"><sheets><sheet name=\"Leads\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"
                ),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                format!(
                    "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"{relationship}/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>"
                ),
            ),
            ("xl/worksheets/sheet1.xml", sheet),
        ];
        let path = std::env::temp_dir().join(format!("crm-xlsx-{}.xlsx", uuid::Uuid::new_v4()));
        let mut writer = zip::ZipWriter::new(File::create(&path).expect("create"));
        for (name, text) in parts {
            writer.start_file(name, zip::write::SimpleFileOptions::default()).expect("entry");
            writer.write_all(text.as_bytes()).expect("write");
        }
        writer.finish().expect("finish");
        path
    }

    #[test]
    fn guarded_formula_cells_and_header_names_read_back_without_their_guard() {
        let path = workbook(&[
            &["first_name", "'=Remarks", "notes"],
            &["'=HYPERLINK(\"http://evil.test/\",\"x\")", "'\rlead", "''+quoted"],
            &["'+14155550100", "-12.5", "O'Brien"],
        ]);
        let mut header = None;
        let mut rows = Vec::new();
        let summary = read_xlsx(
            &path,
            |found| {
                header = Some(found.names.clone());
                Ok(())
            },
            |row| {
                rows.push(row.cells);
                ControlFlow::Continue(())
            },
        );
        let _ = std::fs::remove_file(&path);
        assert_eq!(summary.expect("read").data_rows, 2);
        assert_eq!(header.expect("header"), ["first_name", "=Remarks", "notes"]);
        assert_eq!(rows[0], ["=HYPERLINK(\"http://evil.test/\",\"x\")", "\rlead", "'+quoted"]);
        assert_eq!(rows[1], ["+14155550100", "-12.5", "O'Brien"]);
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
