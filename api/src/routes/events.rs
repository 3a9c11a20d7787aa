//! Live updates (contract §11): `GET /api/v1/events/stream`, server-sent events of the caller's tenant's jobs
//! (status and progress), fed by Postgres LISTEN, so a watcher on any replica sees work enqueued through any
//! other. Admins see every job of the tenant; everyone else the jobs they started. Events say what changed;
//! the page reads anything more through the API (a job hidden from the caller stays 404 there).
//!
//! The stream opens with a `ready` event (read the current state after it: nothing is missed in between) and
//! sends `resync` when events may have been lost (this replica's listener reconnected, or the watcher fell
//! behind): read the state again. A comment every 15 s keeps proxies from closing an idle stream.

use crate::auth::AuthCtx;
use crate::state::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use crm_shared::db::events::{Announcement, JobEvent};
use crm_shared::domain::enums::Role;
use futures::StreamExt;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Whether the caller may see a job's events.
fn visible(auth: &AuthCtx, event: &JobEvent) -> bool {
    event.tenant_id == auth.tenant_id.as_uuid()
        && (auth.role == Role::Admin || event.created_by == Some(auth.user_id.as_uuid()))
}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "jobs",
    responses((status = 200, description = "text/event-stream: `ready` once, then `job` events ({tenant_id, job_id, kind, \
        status, progress_done, progress_total, created_by, resource_type, resource_id}) and `resync` when events may \
        have been missed", content_type = "text/event-stream", body = JobEvent)))]
pub async fn stream(State(state): State<AppState>, auth: AuthCtx) -> impl IntoResponse {
    let receiver = state.events.subscribe();
    let ready = futures::stream::once(async { Ok::<_, Infallible>(Event::default().event("ready").data("{}")) });
    let events = futures::stream::unfold((receiver, auth), |(mut receiver, auth)| async move {
        loop {
            let event = match receiver.recv().await {
                Ok(Announcement::Job(job)) if visible(&auth, &job) => {
                    match Event::default().event("job").json_data(&job) {
                        Ok(event) => event,
                        Err(_) => continue,
                    }
                }
                Ok(Announcement::Job(_)) => continue,
                Ok(Announcement::Resync) | Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok::<_, Infallible>(event), (receiver, auth)));
        }
    });
    let stopping = state.stopping.clone();
    Sse::new(ready.chain(events).take_until(async move { stopping.cancelled().await }))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/api/v1/events/stream", get(stream))
}
