//! Delivery of registry events to HTTP webhooks: a JSON body (one [`Event`]), signed with
//! HMAC-SHA256 of the body in `X-Drydock-Signature-256: sha256=<hex>`, retried with exponential
//! backoff. Each webhook has its own task and its own place on the event bus: a slow receiver
//! delays nothing but its own deliveries.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::events::{Event, EventBus};
use crate::metrics::Metrics;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    pub url: String,
    /// Key of the HMAC-SHA256 signature; unsigned when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Only events of repositories matching this pattern (default: all).
    #[serde(default)]
    pub repositories: Option<String>,
    /// Attempts per event, first one included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry; doubled at each further retry (capped at 5 minutes).
    #[serde(default = "default_backoff", with = "millis")]
    pub initial_backoff: Duration,
    #[serde(default = "default_timeout", with = "millis")]
    pub timeout: Duration,
}

fn default_attempts() -> u32 {
    6
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>, secret: Option<String>) -> Self {
        Self {
            url: url.into(),
            secret,
            repositories: None,
            max_attempts: default_attempts(),
            initial_backoff: default_backoff(),
            timeout: default_timeout(),
        }
    }
}

/// The signature header value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// Starts one delivery task per webhook. Must be called within a tokio runtime.
pub fn spawn(hooks: &[WebhookConfig], bus: &EventBus, metrics: Arc<Metrics>) {
    for hook in hooks {
        let hook = hook.clone();
        let mut rx = bus.subscribe();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(hook.timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(url = %hook.url, error = %e, "webhook client");
                    return;
                }
            };
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if hook
                            .repositories
                            .as_deref()
                            .is_some_and(|p| !crate::names::pattern_matches(p, &event.repository))
                        {
                            continue;
                        }
                        deliver(&client, &hook, &event, &metrics).await;
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(url = %hook.url, missed = n, "webhook fell behind; events dropped");
                        metrics
                            .webhook_dropped
                            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
}

async fn deliver(client: &reqwest::Client, hook: &WebhookConfig, event: &Event, metrics: &Metrics) {
    use std::sync::atomic::Ordering::Relaxed;
    let body = serde_json::to_vec(event).expect("event serialises");
    let action = serde_json::to_value(event.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut backoff = hook.initial_backoff;
    for attempt in 1..=hook.max_attempts.max(1) {
        let mut req = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("user-agent", "drydock-registry")
            .header("x-drydock-event", &action)
            .header("x-drydock-delivery", &event.id)
            .body(body.clone());
        if let Some(secret) = &hook.secret {
            req = req.header("x-drydock-signature-256", signature(secret, &body));
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                metrics.webhook_ok.fetch_add(1, Relaxed);
                return;
            }
            Ok(resp) => {
                tracing::warn!(url = %hook.url, status = resp.status().as_u16(), attempt, "webhook refused the event");
            }
            Err(e) => {
                tracing::warn!(url = %hook.url, error = %e, attempt, "webhook delivery failed");
            }
        }
        if attempt < hook.max_attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(300));
        }
    }
    metrics.webhook_failed.fetch_add(1, Relaxed);
    tracing::error!(url = %hook.url, event = %event.id, "webhook gave up after {} attempts", hook.max_attempts);
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2
        let s = super::signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
