//! The CRM's domain: enumerations, validation and normalisation shared by the API and the importer, and the
//! access rules of each role.

pub mod access;
pub mod enums;
pub mod records;
pub mod validation;
