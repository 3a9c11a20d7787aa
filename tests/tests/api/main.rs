//! End-to-end tests of the API against real Postgres and Redis, and of the three binaries as processes.

mod bad_input;
mod dashboard;
mod emails;
mod export_entities;
mod export_faults;
mod exports;
mod formula_cells;
mod hostile;
mod import_files;
mod import_rights;
mod imports;
mod job_rights;
mod jobs;
mod openapi;
mod postgres_restart;
mod processes;
mod records;
mod reports;
mod roles;
mod rollups;
mod schedules;
mod seed;
mod sign_in;
mod stalls;
mod tenancy;
mod xlsx_limits;
