//! Wakes idle queue consumers as soon as jobs are pushed, instead of at their next poll. Every push publishes
//! on its queue's `wake_channel` (`crm_shared::jobs::push_to_redis`); one Redis subscription per process turns
//! those messages into a stream apalis polls on (`Strategy::stream`), beside a slower interval that still finds
//! work if a message is lost or the subscription is down.

use futures::StreamExt;
use futures::task::AtomicWaker;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A wake-up flag with the consumer's waker: any number of signals before the consumer looks are one wake-up.
/// (apalis-redis' `Pubsub` is the same flag, but only its `RedisStorageFactory` can signal it, and that factory
/// listens to the per-task events we turn off, on a connection without our timeouts.)
#[derive(Clone, Default)]
pub struct Wake(Arc<WakeState>);

#[derive(Default)]
struct WakeState {
    waker: AtomicWaker,
    signalled: AtomicBool,
}

impl Wake {
    pub fn signal(&self) {
        self.0.signalled.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

impl futures::Stream for Wake {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.0.signalled.swap(false, Ordering::AcqRel) {
            return Poll::Ready(Some(()));
        }
        // Registered before the second look, so a signal in between is not lost.
        self.0.waker.register(cx.waker());
        if self.0.signalled.swap(false, Ordering::AcqRel) { Poll::Ready(Some(())) } else { Poll::Pending }
    }
}

/// Subscribes to the channels and signals each one's wake on every message, until `stop`. After a dropped
/// subscription it signals every wake (pushes may have gone unheard) and subscribes again.
pub async fn listen(client: redis::Client, channels: Vec<(String, Wake)>, stop: CancellationToken) {
    loop {
        match subscribe(&client, &channels).await {
            Ok(mut pubsub) => {
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let channel = message.get_channel_name();
                            if let Some((_, wake)) = channels.iter().find(|(name, _)| name == channel) {
                                wake.signal();
                            }
                        }
                    }
                }
                tracing::warn!("the wake-up subscription ended; subscribing again");
            }
            Err(error) => tracing::warn!(error = %error, "could not subscribe to wake-ups; workers poll meanwhile"),
        }
        for (_, wake) in &channels {
            wake.signal();
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn subscribe(client: &redis::Client, channels: &[(String, Wake)]) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    for (channel, _) in channels {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn signals_before_a_look_are_one_wake_up_and_none_is_lost() {
        let mut wake = Wake::default();
        assert_eq!(wake.next().now_or_never(), None, "nothing signalled yet");
        let from_another_task = wake.clone();
        from_another_task.signal();
        from_another_task.signal();
        assert_eq!(wake.next().now_or_never(), Some(Some(())), "a signal wakes the consumer");
        assert_eq!(wake.next().now_or_never(), None, "two signals before the look are one wake-up");
        from_another_task.signal();
        assert_eq!(wake.next().now_or_never(), Some(Some(())), "a later signal wakes it again");
    }
}
