//! The `email` job: sends one email of the outbox over SMTP (lettre's pooled async transport).
//!
//! - No `SMTP_URL`: the email is `held` with that reason; a worker started with SMTP finds held emails and
//!   queues them again (`release_held`).
//! - SMTP down or refusing for now: the attempt is recorded and the job retried with back-off; after the last
//!   attempt, or at once for a permanent refusal (5xx), the email is `failed`.
//! - Never sent twice: the job's claim fences the attempt (no two workers send one email at once), an email
//!   already `sent` is not sent again, and its Message-ID is its id, so a send that succeeded just before a
//!   worker died and is repeated by the next attempt is the same message to every mail system.

use crate::runtime::{JobContext, JobError};
use crm_shared::db::emails::{self, EmailRow, SendOutcome};
use crm_shared::{DomainError, TenantId};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    /// The right-hand side of every Message-ID (`<email id@domain>`).
    domain: String,
}

impl Mailer {
    pub fn from_settings(settings: &crm_shared::config::Settings) -> anyhow::Result<Mailer> {
        let from: Mailbox = settings
            .mail_from
            .parse()
            .map_err(|error| anyhow::anyhow!("MAIL_FROM {:?}: {error}", settings.mail_from))?;
        let domain = from.email.domain().to_owned();
        let transport = match &settings.smtp_url {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|error| anyhow::anyhow!("SMTP_URL: {error}"))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
        };
        Ok(Mailer { transport, from, domain })
    }

    /// A mailer that holds every email (no settings given: tests and tools building a runtime by hand).
    pub fn unconfigured() -> Mailer {
        Mailer {
            transport: None,
            from: Mailbox::new(None, lettre::Address::new("crm", "localhost").expect("a valid address")),
            domain: "localhost".into(),
        }
    }

    pub fn can_send(&self) -> bool {
        self.transport.is_some()
    }
}

pub async fn run(context: &JobContext) -> Result<Option<Value>, JobError> {
    let job = &context.job;
    let email_id = context.payload_id("email_id")?;
    let tenant = TenantId(job.tenant_id);
    let email = {
        let mut tx = context.begin().await?;
        let email = emails::get(&mut tx, tenant, email_id).await?;
        tx.commit().await.map_err(DomainError::from)?;
        email.ok_or_else(|| JobError::Permanent("the email no longer exists".into()))?
    };
    if email.status == "sent" || email.status == "failed" {
        return Ok(Some(json!({ "email_status": email.status })));
    }
    context.checkpoint()?;
    let mailer = &context.runtime.mailer;
    let Some(transport) = &mailer.transport else {
        record(context, tenant, email.id, &SendOutcome::Held("SMTP_URL is not set; held until a worker has it".into()))
            .await?;
        return Ok(Some(json!({ "email_status": "held" })));
    };
    let message = build(context, mailer, &email).await?;
    match transport.send(message).await {
        Ok(_) => {
            record(context, tenant, email.id, &SendOutcome::Sent).await?;
            tracing::info!(email_id = %email.id, kind = email.kind, "email sent");
            forget_report_files(context, &email).await;
            Ok(Some(json!({ "email_status": "sent" })))
        }
        Err(error) => {
            let last = error.is_permanent() || job.attempts >= job.max_attempts;
            let reason = format!("SMTP: {error}");
            record(context, tenant, email.id, &SendOutcome::NotSent { error: reason.clone(), last }).await?;
            tracing::warn!(email_id = %email.id, attempt = job.attempts, last, error = %error, "email not sent");
            if last {
                forget_report_files(context, &email).await;
                Err(JobError::Permanent(reason))
            } else {
                Err(JobError::Transient(reason))
            }
        }
    }
}

/// A scheduled report's file exists only to be attached: once its email is sent (or given up on) it goes.
/// Exports' files stay until their own expiry (their download link is in other emails).
async fn forget_report_files(context: &JobContext, email: &EmailRow) {
    for attachment in email.attachments.as_array().into_iter().flatten() {
        let Some(key) = attachment.get("storage_key").and_then(Value::as_str) else { continue };
        if key.starts_with(crm_shared::email::REPORT_FILES_PREFIX)
            && let Err(error) = context.runtime.storage.delete(key).await
        {
            tracing::warn!(key, error = %error, "a sent report's file was not deleted");
        }
    }
}

async fn record(context: &JobContext, tenant: TenantId, id: Uuid, outcome: &SendOutcome) -> Result<(), JobError> {
    let mut tx = context.begin().await?;
    emails::record(&mut tx, tenant, id, outcome).await?;
    context.commit(tx, None).await
}

async fn build(context: &JobContext, mailer: &Mailer, email: &EmailRow) -> Result<Message, JobError> {
    let to: Mailbox = email
        .to_address
        .parse()
        .map_err(|error| JobError::Permanent(format!("the recipient address is not valid: {error}")))?;
    let body = MultiPart::alternative_plain_html(email.text_body.clone(), email.html_body.clone());
    let mut parts = MultiPart::mixed().multipart(body);
    for attachment in email.attachments.as_array().into_iter().flatten() {
        let text = |name: &str| attachment.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let file = context.runtime.storage.local_copy(&text("storage_key")).await.map_err(|error| match error {
            DomainError::NotFound(_) => JobError::Permanent("the attached file is gone (expired?)".into()),
            other => JobError::from(other),
        })?;
        let bytes = tokio::fs::read(&file.path)
            .await
            .map_err(|error| JobError::Transient(format!("the attached file could not be read: {error}")))?;
        let content_type = ContentType::parse(&text("content_type")).unwrap_or(ContentType::TEXT_PLAIN);
        parts = parts.singlepart(Attachment::new(text("file_name")).body(bytes, content_type));
    }
    Message::builder()
        .from(mailer.from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}@{}>", email.id, mailer.domain)))
        .multipart(if email.attachments.as_array().is_some_and(|list| !list.is_empty()) {
            parts
        } else {
            MultiPart::alternative_plain_html(email.text_body.clone(), email.html_body.clone())
        })
        .map_err(|error| JobError::Permanent(format!("the email could not be built: {error}")))
}

/// Queues again what was held while no worker could send, every `interval`, on workers that can send.
pub async fn release_held(pool: sqlx::PgPool, interval: Duration, stop: tokio_util::sync::CancellationToken) {
    loop {
        match emails::release_held(&pool, 200).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "held emails queued again now that SMTP is configured"),
            Err(error) => tracing::warn!(error = %error, "held emails not released; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
