//! The OpenAPI 3.1 document. Paths and schemas come from the handlers' annotations; the error responses every
//! operation can give are added by rule (`ErrorResponses`), the same rules the middleware and extractors
//! follow, so the document cannot forget one.

use crate::error::ErrorBody;
use crate::routes::{
    auth, dashboard, emails, events, export_download, export_templates, exports, health, import_errors, import_preview,
    imports, jobs, record_kinds, reports, schedules, teams, ticket_replies, users,
};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CRM API",
        version = "1.0.0",
        description = "Multi-tenant CRM: records, users and teams. Every error answers \
            `{\"error\", \"code\", \"details\"}`; another tenant's record is always 404. Lists take `limit` (1-100, \
            default 25), `offset`, `include_total`, `sort` (`-created_at`), `q`, `deleted=true` for the trash, and the \
            entity's enumeration filters (comma-separated values)."
    ),
    paths(
        health::health, health::ready, health::metrics,
        auth::login, auth::logout, auth::me, auth::create_session, auth::delete_session,
        users::list_users, users::create_user, users::get_user, users::update_user, users::audit_log,
        teams::list_teams, teams::create_team, teams::set_members,
        record_kinds::lead_endpoints::list, record_kinds::lead_endpoints::create, record_kinds::lead_endpoints::get_one,
        record_kinds::lead_endpoints::update, record_kinds::lead_endpoints::delete, record_kinds::lead_endpoints::restore,
        record_kinds::client_endpoints::list, record_kinds::client_endpoints::create, record_kinds::client_endpoints::get_one,
        record_kinds::client_endpoints::update, record_kinds::client_endpoints::delete, record_kinds::client_endpoints::restore,
        record_kinds::project_endpoints::list, record_kinds::project_endpoints::create, record_kinds::project_endpoints::get_one,
        record_kinds::project_endpoints::update, record_kinds::project_endpoints::delete, record_kinds::project_endpoints::restore,
        record_kinds::interaction_endpoints::list, record_kinds::interaction_endpoints::create,
        record_kinds::interaction_endpoints::get_one, record_kinds::interaction_endpoints::update,
        record_kinds::interaction_endpoints::delete, record_kinds::interaction_endpoints::restore,
        record_kinds::ticket_endpoints::list, record_kinds::ticket_endpoints::create, record_kinds::ticket_endpoints::get_one,
        record_kinds::ticket_endpoints::update, record_kinds::ticket_endpoints::delete, record_kinds::ticket_endpoints::restore,
        ticket_replies::list_replies, ticket_replies::add_reply,
        jobs::list_jobs, jobs::get_job, jobs::cancel_job, jobs::retry_job, jobs::queues, jobs::create_probe,
        imports::create_import, import_preview::preview_import, imports::list_imports, imports::get_import, import_errors::list_errors,
        import_errors::errors_csv, import_errors::update_error, imports::retry_import, imports::cancel_import,
        exports::create_export, exports::list_exports, exports::get_export, exports::cancel_export,
        export_download::download_export, export_templates::list_templates, export_templates::create_template,
        export_templates::get_template, export_templates::update_template, export_templates::delete_template,
        export_templates::run_template,
        reports::pipeline, reports::lead_source, reports::conversion_rate, reports::revenue_by_client,
        reports::user_activity, reports::follow_ups, reports::client_retention, reports::project_performance,
        reports::upcoming_tasks, reports::revenue_forecast, dashboard::metrics,
        schedules::create_schedule, schedules::list_schedules, schedules::get_schedule, schedules::update_schedule,
        schedules::delete_schedule, schedules::run_schedule, schedules::list_runs,
        emails::list_emails, emails::list_system_schedules, emails::run_system_schedule,
        events::stream,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &ErrorResponses),
    tags(
        (name = "auth", description = "Sign in"),
        (name = "users", description = "Users and the audit log (admins)"),
        (name = "teams", description = "Teams (admins)"),
        (name = "leads"), (name = "clients"), (name = "projects"), (name = "interactions"), (name = "tickets"),
        (name = "jobs", description = "Background jobs: status, progress, cancel, retry. Admins see, cancel and retry \
            the tenant's jobs; everyone else the jobs they started and the jobs of their imports (another's is 404; \
            readonly may not cancel or retry). A job's `error` names what went wrong, never a raw database error."),
        (name = "imports", description = "Spreadsheet imports: upload, progress, failed rows, corrections, retry. \
            Admins, managers and sales import (readonly and support get 403); an import writes only what its importer may \
            write (an upsert match outside their rights fails `duplicate_existing`; a client they cannot see is \
            `unknown_client`). Admins see the tenant's imports, everyone else their own (404 for others'). \
            `row_number` is the row as a spreadsheet program shows the file: the header is row 1 and each record one \
            row, however many line breaks its quoted cells hold, so CSV and XLSX of the same data agree; \
            `line_number` is the CSV line the record starts on (null for XLSX). Each failed row has one error (the first problem's type, code and \
            field; the message lists every problem). Limits: IMPORT_MAX_BYTES, 1,048,576 data rows, 200 columns, \
            32,767 characters a cell; an .xlsx whose zip entries inflate past 2 GiB, or past 100:1 for entries over \
            100 KiB, or that has more than 10,000 entries, is refused without being inflated; so is one whose shared \
            strings would take more than 192 MiB of memory to read (save it as CSV). errors.csv puts a ' before any \
            cell a spreadsheet would run as a formula; an import takes it off again."),
        (name = "exports", description = "Exports of what a list shows, as CSV, XLSX or PDF, made in the background: \
            history, progress, cancel, download with a token or a signed link that expires. Admins, managers, sales \
            and support export what they may read; readonly may not. Admins see the tenant's exports, everyone else \
            their own."),
        (name = "schedules", description = "Cron schedules (admins: the tenant's; managers: their own) that email a \
            report or an export to users of the tenant, each computed with the recipient's own visibility, attached up \
            to 10 MiB (an export past that is linked). Each (schedule, time) fires exactly once however many schedulers \
            run; times missed while none ran fire once, for the latest (`trigger` and `skipped_reason`: `catch_up`). \
            With `send_if_data`, recipients with nothing to report get nothing (the run says `no_data`); deactivated \
            recipients are skipped."),
        (name = "emails", description = "The outbox and the built-in schedules (admins). Emails go out from the \
            `emails` queue over SMTP_URL (held without it, sent once a worker has it), retried with back-off while SMTP \
            is down and then `failed`; one email per event, its Message-ID its id. Notifications: an import's end (to \
            who started it), an export ready (its download link), a ticket created or assigned (to the assignee), a \
            reply (to the ticket's creator and assignee, not its author)."),
        (name = "reports", description = "The ten reports, each `{\"data\": ...}` from one snapshot over exactly \
            the records the caller's lists show (soft-deleted never count). Admins report on the tenant, managers on \
            their teams, sales and readonly on their own records; support gets 403. `start_date` and `end_date` \
            (`YYYY-MM-DD`, inclusive, days in the tenant's time zone) filter the date each report names; `user_id` \
            (admins: any user; managers: themselves or their teams' members; others 403) counts only what that user \
            sees as a sales rep. Rates are percentages rounded to 2 decimals (0 when nothing to divide by); money \
            has 2 decimals; averages are rounded to 2 decimals, `null` when nothing to average. A record's owner is \
            its assignee, or its creator when unassigned."),
        (name = "dashboard", description = "Dashboard metrics per role, cached in Redis per tenant and scope \
            (`DASHBOARD_CACHE_SECONDS`, default 60); any create, update, delete, restore or import of what they count \
            drops the tenant's entries at once. When Redis is unavailable the dashboard is computed every time."),
        (name = "operations", description = "Health, readiness, metrics, queues, probes"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") || path == "/api/v1/auth/login" {
                continue;
            }
            for operation in operations(item) {
                operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete]
        .into_iter()
        .filter_map(|operation| operation.as_mut())
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build();
    operation.responses.responses.entry(status.to_owned()).or_insert(response.into());
}

/// An error response that carries `Retry-After`.
fn add_limited(operation: &mut Operation, status: &str, description: &str) {
    let header = utoipa::openapi::HeaderBuilder::new()
        .schema(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Integer))
        .description(Some("Seconds to wait before trying again"))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .header("Retry-After", header)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build();
    operation.responses.responses.insert(status.to_owned(), response.into());
}

struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let has_id = path.contains('{');
            let is_login = path == "/api/v1/auth/login";
            let is_me = path == "/api/v1/auth/me";
            let may_conflict =
                ["/leads", "/clients", "/users", "/teams", "/export-templates"].iter().any(|p| path.contains(p));
            // Actions on something that may already be in another state.
            let changes_state = ["/restore", "/cancel", "/retry"].iter().any(|suffix| path.ends_with(suffix));
            for operation in operations(item) {
                let has_body = operation.request_body.is_some();
                let has_query = operation.parameters.as_ref().is_some_and(|params| {
                    params.iter().any(|param| matches!(param.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                });
                if has_body || has_id {
                    add_error(
                        operation,
                        "400",
                        "Malformed request: invalid JSON syntax, or an id that is not a UUID (`bad_request`, `malformed_json`, `invalid_path`)",
                    );
                }
                if is_login {
                    add_error(
                        operation,
                        "401",
                        "The email or password is incorrect, or the account is deactivated (`unauthorized`)",
                    );
                } else {
                    add_error(operation, "401", "No token, or a forged, expired or revoked one (`unauthorized`)");
                }
                if !is_login && !is_me {
                    add_error(operation, "403", "The caller's role may not do this (`forbidden`)");
                }
                if has_id {
                    add_error(
                        operation,
                        "404",
                        "No such record in the caller's tenant, or not visible to the caller (`not_found`)",
                    );
                }
                if (may_conflict && has_body) || changes_state {
                    add_error(
                        operation,
                        "409",
                        "A duplicate (email or name), the last admin, or a job or import that has already ended or \
                         has nothing to retry (`conflict`, `last_admin`)",
                    );
                }
                if has_body {
                    add_error(operation, "413", "The body is larger than 1 MiB (`payload_too_large`)");
                    add_error(operation, "415", "The body is not JSON (`unsupported_media_type`)");
                }
                if has_body || has_query {
                    add_error(
                        operation,
                        "422",
                        "Invalid fields: `details.fields` maps each field to its problem (`validation_failed`, `invalid_query`)",
                    );
                }
                if is_login {
                    add_limited(
                        operation,
                        "429",
                        "Too many sign-in attempts for this email or address (`rate_limited`)",
                    );
                    add_limited(
                        operation,
                        "503",
                        "Too many sign-ins are being checked at once (`busy`), or Postgres or Redis is unavailable \
                         (`service_unavailable`)",
                    );
                } else {
                    add_limited(
                        operation,
                        "429",
                        "The user's or tenant's request rate (USER_REQUESTS_PER_MINUTE, TENANT_REQUESTS_PER_MINUTE) or \
                         the tenant's concurrent requests (TENANT_MAX_CONCURRENT_REQUESTS) are used up (`rate_limited`)",
                    );
                    add_error(operation, "503", "Postgres or Redis is unavailable (`service_unavailable`)");
                }
            }
        }
    }
}
