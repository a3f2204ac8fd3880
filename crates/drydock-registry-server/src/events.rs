//! Registry events: every push, delete and mount, on an in-process bus (for the pipeline
//! engine's `image` trigger) and to configured webhooks.

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Push,
    Delete,
    Mount,
}

/// What the event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTarget {
    Manifest,
    Blob,
    Tag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique id (also the webhook delivery id).
    pub id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub action: EventAction,
    pub target: EventTarget,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The user or token name; `None` for anonymous requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// For mounts: the repository the blob came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_repository: Option<String>,
}

impl Event {
    pub fn new(action: EventAction, target: EventTarget, repository: &str) -> Self {
        Self {
            id: crate::random_hex(16),
            timestamp: rfc3339(std::time::SystemTime::now()),
            action,
            target,
            repository: repository.to_string(),
            tag: None,
            digest: None,
            media_type: None,
            size: None,
            actor: None,
            from_repository: None,
        }
    }
}

/// The bus. Cloning shares it. Subscribers that fall behind by more than the capacity lose the
/// oldest events (`RecvError::Lagged`), they never slow the registry down.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn publish(&self, event: Event) {
        tracing::info!(
            action = ?event.action,
            target = ?event.target,
            repository = %event.repository,
            tag = event.tag.as_deref().unwrap_or(""),
            digest = event.digest.as_deref().unwrap_or(""),
            actor = event.actor.as_deref().unwrap_or("anonymous"),
            "registry event"
        );
        let _ = self.tx.send(event);
    }
}

/// Formats a time as RFC 3339 in UTC with second precision (a time before the epoch as the
/// epoch).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    drydock_content::image::rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }

    #[tokio::test]
    async fn subscribers_receive_events() {
        let bus = EventBus::new(8);
        let mut rx = bus.subscribe();
        bus.publish(Event::new(EventAction::Push, EventTarget::Manifest, "a/b"));
        let e = rx.recv().await.unwrap();
        assert_eq!(e.repository, "a/b");
    }
}
