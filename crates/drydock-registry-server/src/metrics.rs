//! Prometheus metrics, in the text exposition format, without a metrics library.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub blobs_pushed: AtomicU64,
    pub manifests_pushed: AtomicU64,
    pub mounts: AtomicU64,
    pub deletes: AtomicU64,
    pub rate_limited: AtomicU64,
    pub gc_runs: AtomicU64,
    pub gc_blobs_removed: AtomicU64,
    pub gc_manifests_removed: AtomicU64,
    pub gc_bytes_reclaimed: AtomicU64,
    pub webhook_ok: AtomicU64,
    pub webhook_failed: AtomicU64,
    pub webhook_dropped: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &'static str, status: u16, elapsed: Duration) {
        {
            let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            *r.entry((method.to_string(), route, status)).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let h = d.entry(route).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The exposition text. `gauges` are point-in-time values supplied by the caller.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP drydock_registry_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE drydock_registry_http_requests_total counter\n");
        for ((m, r, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "drydock_registry_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP drydock_registry_http_request_duration_seconds Request latency by route.\n",
        );
        out.push_str("# TYPE drydock_registry_http_request_duration_seconds histogram\n");
        for (r, h) in self
            .durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "drydock_registry_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "drydock_registry_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "drydock_registry_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "drydock_registry_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "drydock_registry_received_bytes_total",
                "Request body bytes stored.",
                &self.bytes_received,
            ),
            (
                "drydock_registry_sent_bytes_total",
                "Blob and manifest bytes served.",
                &self.bytes_sent,
            ),
            (
                "drydock_registry_blobs_pushed_total",
                "Blob uploads completed.",
                &self.blobs_pushed,
            ),
            (
                "drydock_registry_manifests_pushed_total",
                "Manifests pushed.",
                &self.manifests_pushed,
            ),
            (
                "drydock_registry_mounts_total",
                "Cross-repository blob mounts.",
                &self.mounts,
            ),
            (
                "drydock_registry_deletes_total",
                "Manifests, tags and blobs deleted.",
                &self.deletes,
            ),
            (
                "drydock_registry_rate_limited_total",
                "Requests refused by the rate limit.",
                &self.rate_limited,
            ),
            (
                "drydock_registry_gc_runs_total",
                "Garbage collections.",
                &self.gc_runs,
            ),
            (
                "drydock_registry_gc_blobs_removed_total",
                "Blobs removed by garbage collection.",
                &self.gc_blobs_removed,
            ),
            (
                "drydock_registry_gc_manifests_removed_total",
                "Untagged manifests removed by garbage collection.",
                &self.gc_manifests_removed,
            ),
            (
                "drydock_registry_gc_reclaimed_bytes_total",
                "Bytes reclaimed by garbage collection.",
                &self.gc_bytes_reclaimed,
            ),
            (
                "drydock_registry_webhook_deliveries_total",
                "Webhook deliveries that succeeded.",
                &self.webhook_ok,
            ),
            (
                "drydock_registry_webhook_failures_total",
                "Webhook deliveries abandoned after all retries.",
                &self.webhook_failed,
            ),
            (
                "drydock_registry_webhook_dropped_total",
                "Events a lagging webhook missed.",
                &self.webhook_dropped,
            ),
        ];
        for (name, help, v) in counters.iter() {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

/// Resident memory of this process in bytes (from /proc), for the gauge and the benchmark.
pub fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
