//! Reading import files: the text encoding, the CSV delimiter, rows of CSV and XLSX within the contract's
//! limits, which column feeds which field, and each row's validation. Pure functions over files and strings,
//! shared by the upload check in the API and the import job in the worker.

mod csv_file;
pub mod encoding;
pub mod file_name;
pub mod headers;
pub mod reader;
pub mod rows;
pub mod sniff;
pub mod xlsx;
pub mod xlsx_check;
