//! Reading import files: the text encoding, the CSV delimiter, and which column feeds which field. Pure
//! functions over bytes and strings, shared by the upload check in the API and the import job in the worker.

pub mod encoding;
pub mod headers;
pub mod sniff;
