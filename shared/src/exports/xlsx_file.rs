//! XLSX exports with rust_xlsxwriter in constant-memory mode: only the row being written is in memory (the
//! rest goes to a temporary file per sheet and is streamed into the zip on save). A bold, frozen header row
//! with an autofilter; text always as a string cell (never a formula, whatever it starts with), money as
//! numbers, timestamps and dates as date cells. Past 1,048,575 data rows the rows go on to the next sheet.

use super::{Cell, ExportWriter};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_xlsxwriter::{Format, Workbook};

/// Rows of a sheet, the header included.
const SHEET_ROWS: u32 = 1_048_576;

pub struct XlsxExport {
    workbook: Workbook,
    path: std::path::PathBuf,
    header: Vec<String>,
    zone: Tz,
    bold: Format,
    timestamp: Format,
    date: Format,
    money: Format,
    sheet: usize,
    /// The next row to write in the current sheet.
    row: u32,
}

impl XlsxExport {
    pub fn create(path: &std::path::Path, header: &[&str], zone: Tz) -> anyhow::Result<Self> {
        let mut workbook = Workbook::new();
        if let Some(dir) = path.parent() {
            workbook.set_tempdir(dir)?;
        }
        let mut export = Self {
            workbook,
            path: path.to_owned(),
            header: header.iter().map(|name| (*name).to_owned()).collect(),
            zone,
            bold: Format::new().set_bold(),
            timestamp: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            money: Format::new().set_num_format("0.00"),
            sheet: 0,
            row: 0,
        };
        export.start_sheet()?;
        Ok(export)
    }

    fn start_sheet(&mut self) -> anyhow::Result<()> {
        let name = if self.sheet == 0 { "Export".to_owned() } else { format!("Export {}", self.sheet + 1) };
        let sheet = self.workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(name)?;
        for (column, name) in self.header.iter().enumerate() {
            let column = u16::try_from(column)?;
            sheet.write_string_with_format(0, column, name, &self.bold)?;
            sheet.set_column_width(column, 18)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        self.row = 1;
        Ok(())
    }

    /// The autofilter spans the rows written, so it is set when a sheet is full or the file is done.
    fn close_sheet(&mut self) -> anyhow::Result<()> {
        let last_column = u16::try_from(self.header.len().saturating_sub(1))?;
        let last_row = self.row.saturating_sub(1);
        let sheet = self.workbook.worksheet_from_index(self.sheet)?;
        sheet.autofilter(0, 0, last_row, last_column)?;
        Ok(())
    }
}

impl ExportWriter for XlsxExport {
    fn write_row(&mut self, cells: &[Cell]) -> anyhow::Result<()> {
        if self.row == SHEET_ROWS {
            self.close_sheet()?;
            self.sheet += 1;
            self.start_sheet()?;
        }
        let row = self.row;
        let zone = self.zone;
        let sheet = self.workbook.worksheet_from_index(self.sheet)?;
        for (column, cell) in cells.iter().enumerate() {
            let column = u16::try_from(column)?;
            match cell {
                Cell::Empty => {}
                Cell::Text(text) => {
                    sheet.write_string(row, column, text)?;
                }
                Cell::Timestamp(at) => {
                    sheet.write_datetime_with_format(
                        row,
                        column,
                        at.with_timezone(&zone).naive_local(),
                        &self.timestamp,
                    )?;
                }
                Cell::Date(date) => {
                    sheet.write_datetime_with_format(row, column, *date, &self.date)?;
                }
                Cell::Money(amount) => {
                    sheet.write_number_with_format(row, column, amount.to_f64().unwrap_or_default(), &self.money)?;
                }
            }
        }
        self.row += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.close_sheet()?;
        self.workbook.save(&self.path)?;
        Ok(())
    }
}
