//! A real SMTP server for the tests: aiosmtpd (Debian's python3-aiosmtpd, installed by scripts/lib.sh) on a
//! port of its own, storing every message it accepts in a Maildir the test reads back.

use std::path::PathBuf;
use std::time::Duration;

pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    child: Option<tokio::process::Child>,
}

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    /// (file name, content type, bytes)
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let maildir = std::env::temp_dir().join(format!("crm-test-mail-{}", uuid::Uuid::new_v4().simple()));
        let mut server = SmtpServer { port: free_port(), maildir, child: None };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and Maildir.
    pub async fn resume(&mut self) {
        let python = if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        let child = tokio::process::Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&self.maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start aiosmtpd (python3-aiosmtpd; scripts/lib.sh installs it)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the SMTP server did not start on {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server: connections are refused until `resume`.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(folder)) else { continue };
            for entry in entries.flatten() {
                let bytes = std::fs::read(entry.path()).expect("read a message");
                out.push(parse(&bytes));
            }
        }
        out
    }

    /// Waits until at least `count` messages arrived (or `timeout`), and returns them all.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count || tokio::time::Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

fn parse(bytes: &[u8]) -> Received {
    use mailparse::MailHeaderMap;
    let mail = mailparse::parse_mail(bytes).expect("a MIME message");
    let header = |name: &str| mail.headers.get_first_value(name).unwrap_or_default();
    let mut received = Received {
        to: header("To"),
        subject: header("Subject"),
        message_id: header("Message-ID"),
        text: String::new(),
        html: String::new(),
        attachments: Vec::new(),
    };
    fn walk(part: &mailparse::ParsedMail, received: &mut Received) {
        if !part.subparts.is_empty() {
            for sub in &part.subparts {
                walk(sub, received);
            }
            return;
        }
        let disposition = part.get_content_disposition();
        let mime = part.ctype.mimetype.clone();
        if disposition.disposition == mailparse::DispositionType::Attachment {
            let name = disposition.params.get("filename").cloned().unwrap_or_default();
            received.attachments.push((name, mime, part.get_body_raw().expect("attachment body")));
        } else if mime == "text/plain" {
            received.text = part.get_body().expect("text body");
        } else if mime == "text/html" {
            received.html = part.get_body().expect("html body");
        }
    }
    walk(&mail, &mut received);
    received
}
