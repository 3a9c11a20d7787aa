//! Live job events (contract §11) across API replicas: two `crm-api` processes with no sticky routing; a
//! watcher on one sees the progress of an import enqueued through the other, and nobody sees another
//! tenant's jobs.

use crm_tests::{Session, TestApp};
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// A server-sent-event stream, read as (event, data) pairs.
struct Watcher {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Watcher {
    async fn open(app: &TestApp, session: &Session) -> Watcher {
        let response = app
            .client
            .get(format!("{}/api/v1/events/stream", app.address))
            .bearer_auth(&session.token)
            .send()
            .await
            .expect("stream");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().expect("type").to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Watcher { stream: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next event within `timeout` (keep-alive comments skipped), or None.
    async fn next(&mut self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.trim());
                    }
                }
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk")));
        }
    }
}

#[tokio::test]
async fn a_watcher_on_one_api_process_sees_an_import_enqueued_through_the_other() {
    let (first, _first_api) = TestApp::spawn_process(&[]).await;
    let (second, _second_api) =
        TestApp::spawn_process_on(first.database_url.clone(), first.redis_prefix.clone(), &[]).await;
    let admin = first.tenant().await;
    let stranger = first.tenant().await;
    let mut watcher = Watcher::open(&second, &admin).await;
    let mut outsider = Watcher::open(&second, &stranger).await;
    for stream in [&mut watcher, &mut outsider] {
        assert_eq!(stream.next(Duration::from_secs(10)).await.map(|(event, _)| event).as_deref(), Some("ready"));
    }

    let _worker = first.start_worker(&["--queues", "imports"]).await;
    let rows = 60_000;
    let upload =
        first.upload(&admin, "many.csv", crm_tests::valid_leads_csv(rows, "events"), &[("entity", "leads")]).await;
    assert_eq!(upload.status, reqwest::StatusCode::ACCEPTED, "{}", upload.body);
    let job: Uuid = upload.data()["job_id"].as_str().expect("job id").parse().expect("uuid");

    let mut seen = Vec::new();
    loop {
        let (event, data) = watcher.next(Duration::from_secs(120)).await.expect("events until the import ends");
        if event != "job" || data["job_id"] != job.to_string() {
            continue;
        }
        let status = data["status"].as_str().expect("status").to_owned();
        seen.push((status.clone(), data["progress_done"].as_i64().expect("done"), data["progress_total"].as_i64()));
        if status == "succeeded" {
            break;
        }
    }
    let statuses: Vec<&str> = seen.iter().map(|(status, _, _)| status.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"queued"), "{seen:?}");
    assert!(statuses.contains(&"running"), "{seen:?}");
    let last = seen.last().expect("an event");
    assert_eq!((last.1, last.2), (rows as i64, Some(rows as i64)), "the bar reaches 100%: {seen:?}");
    assert!(
        seen.iter().any(|(status, done, _)| status == "running" && *done > 0 && *done < rows as i64),
        "progress in between: {seen:?}"
    );
    let dones: Vec<i64> = seen.iter().map(|(_, done, _)| *done).collect();
    assert!(dones.windows(2).all(|pair| pair[0] <= pair[1]), "progress only grows: {dones:?}");

    // The other tenant's watcher saw none of it.
    while let Some((event, data)) = outsider.next(Duration::from_secs(2)).await {
        assert_ne!(event, "job", "another tenant's job reached this watcher: {data}");
    }
}
