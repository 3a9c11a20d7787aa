//! Emails (contract §10): what kinds there are, and their text and HTML parts made from the templates in
//! `shared/templates/email/` (compiled in; a designer edits those files, not this code). A `.txt` template's
//! first line is `Subject: …`; the `.html` ones extend `layout.html` and are escaped as HTML.

use minijinja::Environment;
use serde_json::Value;
use std::sync::OnceLock;

/// Where a scheduled report's files are stored; they are deleted once their email is sent.
pub const REPORT_FILES_PREFIX: &str = "schedules/";

/// The largest file attached to an email; larger ones are linked (`download_url`).
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    ImportEnded,
    ExportReady,
    TicketCreated,
    TicketAssigned,
    TicketReplied,
    ScheduledReport,
    ScheduledExport,
}

impl EmailKind {
    pub const ALL: [EmailKind; 7] = [
        EmailKind::ImportEnded,
        EmailKind::ExportReady,
        EmailKind::TicketCreated,
        EmailKind::TicketAssigned,
        EmailKind::TicketReplied,
        EmailKind::ScheduledReport,
        EmailKind::ScheduledExport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::ImportEnded => "import_ended",
            EmailKind::ExportReady => "export_ready",
            EmailKind::TicketCreated => "ticket_created",
            EmailKind::TicketAssigned => "ticket_assigned",
            EmailKind::TicketReplied => "ticket_replied",
            EmailKind::ScheduledReport => "scheduled_report",
            EmailKind::ScheduledExport => "scheduled_export",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text.trim())
    }
}

/// Where links in emails point (`PUBLIC_URL`), set once by each process at start; unset, the default API address.
static PUBLIC_URL: OnceLock<String> = OnceLock::new();

pub fn set_public_url(url: &str) {
    let _ = PUBLIC_URL.set(url.trim_end_matches('/').to_owned());
}

pub fn public_url() -> &'static str {
    PUBLIC_URL.get().map_or("http://127.0.0.1:8080", String::as_str)
}

/// An email's subject and parts, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../templates/email/", $name)))),*]
    };
}

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let sources = templates![
            "layout.html",
            "import_ended.txt",
            "import_ended.html",
            "export_ready.txt",
            "export_ready.html",
            "ticket_created.txt",
            "ticket_created.html",
            "ticket_assigned.txt",
            "ticket_assigned.html",
            "ticket_replied.txt",
            "ticket_replied.html",
            "scheduled_report.txt",
            "scheduled_report.html",
            "scheduled_export.txt",
            "scheduled_export.html",
        ];
        for (name, source) in sources {
            if let Err(error) = environment.add_template(name, source) {
                // The templates ship with the binary and a unit test renders each; this cannot happen in a build
                // that passed its tests.
                tracing::error!(template = name, error = %error, "an email template does not parse");
            }
        }
        environment
    })
}

/// Renders `kind` with `context` (which must hold every variable its templates use, and `recipient`).
pub fn render(kind: EmailKind, context: &Value) -> Result<Rendered, String> {
    let environment = environment();
    let render = |suffix: &str| -> Result<String, String> {
        let name = format!("{}.{suffix}", kind.as_str());
        environment
            .get_template(&name)
            .and_then(|template| template.render(context))
            .map_err(|error| format!("email template {name}: {error}"))
    };
    let text = render("txt")?;
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let subject = first
        .strip_prefix("Subject:")
        .ok_or_else(|| format!("email template {}.txt must start with 'Subject:'", kind.as_str()))?
        .trim()
        // A header never holds a line break, whatever a record's name holds.
        .replace(['\r', '\n'], " ");
    Ok(Rendered { subject, text: rest.trim_start_matches('\n').to_owned(), html: render("html")? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(kind: EmailKind) -> Value {
        let common = json!({ "recipient": "rep@example.com", "name": "Rep <b>" });
        let mut context = match kind {
            EmailKind::ImportEnded => json!({ "file_name": "leads.csv", "status_words": "finished with errors",
                "processed": 3, "created": 2, "updated": 0, "failed": 1, "errors_url": "http://x/errors.csv" }),
            EmailKind::ExportReady => json!({ "entity": "leads", "rows": 2, "format": "csv",
                "expires_at": "2026-12-13", "download_url": "http://x/d" }),
            EmailKind::TicketCreated => json!({ "subject": "Printer", "priority": "high", "category": "bug",
                "description": "it jams", "ticket_url": "http://x/t" }),
            EmailKind::TicketAssigned => {
                json!({ "subject": "Printer", "priority": "high", "ticket_url": "http://x/t" })
            }
            EmailKind::TicketReplied => json!({ "subject": "Printer", "author": "a@x", "body": "done",
                "ticket_url": "http://x/t" }),
            EmailKind::ScheduledReport => json!({ "schedule_name": "Weekly", "report": "pipeline",
                "period": "all time", "file_name": "pipeline.pdf", "download_url": null }),
            EmailKind::ScheduledExport => json!({ "schedule_name": "Weekly", "entity": "leads", "rows": 2,
                "format": "csv", "attached": true, "file_name": "leads.csv", "expires_at": "x", "download_url": "y" }),
        };
        if let (Some(context), Some(common)) = (context.as_object_mut(), common.as_object()) {
            context.extend(common.clone());
        }
        context
    }

    #[test]
    fn every_template_renders_with_a_subject_and_escapes_html() {
        for kind in EmailKind::ALL {
            let rendered = render(kind, &context(kind)).unwrap_or_else(|error| panic!("{error}"));
            assert!(!rendered.subject.is_empty() && !rendered.text.is_empty(), "{kind:?}");
            assert!(rendered.html.contains("Rep &lt;b&gt;") || !rendered.html.contains("Rep"), "{kind:?} not escaped");
            assert!(!rendered.html.contains("<b>"), "{kind:?}: {}", rendered.html);
        }
    }

    #[test]
    fn a_missing_variable_is_an_error_not_a_blank() {
        assert!(render(EmailKind::ExportReady, &json!({ "recipient": "x" })).is_err());
    }
}
