//! CSV exports: UTF-8 with a byte order mark (so Excel reads accents right), comma, CRLF, RFC 4180 quoting, and
//! the formula rule of §6 through `SafeCsvWriter` (an import takes the guard off again).

use super::{Cell, ExportWriter};
use crate::csv_safety::SafeCsvWriter;
use chrono_tz::Tz;
use std::io::{BufWriter, Write};

pub struct CsvExport {
    writer: SafeCsvWriter<BufWriter<std::fs::File>>,
    zone: Tz,
    line: Vec<String>,
}

impl CsvExport {
    pub fn create(path: &std::path::Path, header: &[&str], zone: Tz) -> anyhow::Result<Self> {
        let mut file = BufWriter::with_capacity(256 * 1024, std::fs::File::create(path)?);
        file.write_all("\u{feff}".as_bytes())?;
        let mut writer = SafeCsvWriter::new(file);
        writer.write_record(header.iter())?;
        Ok(Self { writer, zone, line: Vec::with_capacity(header.len()) })
    }
}

impl ExportWriter for CsvExport {
    fn write_row(&mut self, cells: &[Cell]) -> anyhow::Result<()> {
        self.line.clear();
        self.line.extend(cells.iter().map(|cell| cell.to_text(self.zone)));
        self.writer.write_record(self.line.iter())?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let mut file = self.writer.into_inner()?;
        file.flush()?;
        file.into_inner().map_err(|error| error.into_error())?.sync_all()?;
        Ok(())
    }
}
