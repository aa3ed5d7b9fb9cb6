//! What an operator's Prometheus scrapes (`GET /metrics`, docs/api.md
//! "Metrics"; contract section "Operations").
//!
//! One [`Metrics`] per server, not a process-wide recorder: the tests run
//! several servers in one process, and each must count only its own work.
//! The encoding is `prometheus-client`'s (OpenMetrics 1.0 text, which
//! Prometheus reads natively); nothing here formats text by hand.
//!
//! Every label set is bounded: outcomes, route *templates* (the
//! router's matched path, never the raw path), methods and status classes. A
//! recording id is never a label: one series per recording would grow
//! without end.

use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the publish-lag buckets, in seconds: from a part's
/// worth (0.2 s) to a stalled encoder.
const LAG_BUCKETS_S: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// What became of a chunk upload that reached its recording's task.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Stored and acknowledged.
    Stored,
    /// Already stored with the same bytes (a retry).
    Duplicate,
    /// Refused: conflicting bytes, over a limit, wrong format, no space.
    Refused,
}

impl ChunkOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Refused => "refused",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `stored`, `duplicate` or `refused`.
    outcome: &'static str,
}

/// A request's method, folded to the ones the API uses.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    GET,
    HEAD,
    PUT,
    POST,
    DELETE,
    OTHER,
}

impl Method {
    /// The label of a request method, by its name (`GET`, …).
    pub fn from_name(name: &str) -> Self {
        match name {
            "GET" => Self::GET,
            "HEAD" => Self::HEAD,
            "PUT" => Self::PUT,
            "POST" => Self::POST,
            "DELETE" => Self::DELETE,
            _ => Self::OTHER,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// The route template (`/api/recordings/{id}`), or `unmatched`.
    route: std::borrow::Cow<'static, str>,
    method: Method,
    /// `2xx`, `3xx`, `4xx`, `5xx` (1xx answers are not counted apart).
    status: &'static str,
}

/// The status class label of a status code.
pub fn status_class(code: u16) -> &'static str {
    match code {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// A server's metrics; clones share the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: std::sync::Arc<Registry>,
    chunks: Family<OutcomeLabels, Counter>,
    pub chunk_bytes: Counter,
    pub ffmpeg_starts: Counter,
    pub ffmpeg_restarts: Counter,
    pub ffmpeg_failures: Counter,
    pub segments_published: Counter,
    pub parts_published: Counter,
    pub publish_lag: Histogram,
    http: Family<HttpLabels, Counter>,
    pub waiting_requests: Gauge,
    pub comments_posted: Counter,
    pub import_queue: Gauge,
    /// Set from the library when scraped.
    pub live_recordings: Gauge,
    /// Set from the file cache when scraped.
    pub media_cache_bytes: Gauge,
    /// `--store`: objects and bytes uploaded, failed passes, recordings
    /// waiting for a pass.
    pub store_uploads: Counter,
    pub store_upload_bytes: Counter,
    pub store_failures: Counter,
    pub store_pending: Gauge,
    /// `--store`: objects deleted with their recording, and deleted
    /// recordings whose objects are still to be deleted.
    pub store_deletes: Counter,
    pub store_pending_deletes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("segcast");
        let metrics = Self {
            registry: Default::default(),
            chunks: Family::default(),
            chunk_bytes: Counter::default(),
            ffmpeg_starts: Counter::default(),
            ffmpeg_restarts: Counter::default(),
            ffmpeg_failures: Counter::default(),
            segments_published: Counter::default(),
            parts_published: Counter::default(),
            publish_lag: Histogram::new(LAG_BUCKETS_S),
            http: Family::default(),
            waiting_requests: Gauge::default(),
            comments_posted: Counter::default(),
            import_queue: Gauge::default(),
            live_recordings: Gauge::default(),
            media_cache_bytes: Gauge::default(),
            store_uploads: Counter::default(),
            store_upload_bytes: Counter::default(),
            store_failures: Counter::default(),
            store_pending: Gauge::default(),
            store_deletes: Counter::default(),
            store_pending_deletes: Gauge::default(),
        };
        // Every outcome from zero, so a rate over them exists from the start.
        for outcome in [
            ChunkOutcome::Stored,
            ChunkOutcome::Duplicate,
            ChunkOutcome::Refused,
        ] {
            let labels = OutcomeLabels {
                outcome: outcome.label(),
            };
            let _ = metrics.chunks.get_or_create(&labels);
        }
        metrics.register(&mut registry);
        Self {
            registry: std::sync::Arc::new(registry),
            ..metrics
        }
    }

    fn register(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "live_recordings",
            "Recordings being uploaded now",
            m.live_recordings.clone(),
        );
        r.register(
            "chunks_received",
            "Chunk uploads by outcome",
            m.chunks.clone(),
        );
        r.register(
            "chunk_bytes",
            "Bytes of chunks stored",
            m.chunk_bytes.clone(),
        );
        r.register(
            "ffmpeg_starts",
            "ffmpeg processes started (live and imports)",
            m.ffmpeg_starts.clone(),
        );
        r.register(
            "ffmpeg_restarts",
            "ffmpeg runs started again after a failure",
            m.ffmpeg_restarts.clone(),
        );
        r.register(
            "ffmpeg_failures",
            "ffmpeg runs that failed (crash, bad input, cannot start)",
            m.ffmpeg_failures.clone(),
        );
        r.register(
            "segments_published",
            "Media segments written and listed (per track)",
            m.segments_published.clone(),
        );
        r.register(
            "parts_published",
            "LL-HLS parts listed (per track)",
            m.parts_published.clone(),
        );
        r.register(
            "publish_lag_seconds",
            "From a chunk's acknowledgement to the first listing of media after it reached ffmpeg",
            m.publish_lag.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status class",
            m.http.clone(),
        );
        r.register(
            "http_waiting_requests",
            "Blocking playlist and part requests waiting for media",
            m.waiting_requests.clone(),
        );
        r.register(
            "comments_posted",
            "Comments accepted (HTTP and WebSocket)",
            m.comments_posted.clone(),
        );
        r.register(
            "import_queue_depth",
            "Imports waiting for a job slot (--import-jobs)",
            m.import_queue.clone(),
        );
        r.register(
            "media_cache_bytes",
            "Bytes of finished media files held in memory (--media-cache-mb)",
            m.media_cache_bytes.clone(),
        );
        r.register(
            "store_uploads",
            "Objects uploaded to the --store bucket",
            m.store_uploads.clone(),
        );
        r.register(
            "store_upload_bytes",
            "Bytes uploaded to the --store bucket",
            m.store_upload_bytes.clone(),
        );
        r.register(
            "store_failures",
            "Mirror passes that failed and will be retried with backoff (the bucket is down or refuses)",
            m.store_failures.clone(),
        );
        r.register(
            "store_pending_recordings",
            "Recordings with files not yet mirrored to the --store bucket",
            m.store_pending.clone(),
        );
        r.register(
            "store_deletes",
            "Objects deleted from the --store bucket with their recording",
            m.store_deletes.clone(),
        );
        r.register(
            "store_pending_deletes",
            "Deleted recordings whose objects are still to be deleted from the --store bucket",
            m.store_pending_deletes.clone(),
        );
    }

    pub fn chunk(&self, outcome: ChunkOutcome, bytes: u64) {
        let labels = OutcomeLabels {
            outcome: outcome.label(),
        };
        self.chunks.get_or_create(&labels).inc();
        if outcome == ChunkOutcome::Stored {
            self.chunk_bytes.inc_by(bytes);
        }
    }

    pub fn http_request(
        &self,
        route: impl Into<std::borrow::Cow<'static, str>>,
        method: Method,
        status: u16,
    ) {
        let labels = HttpLabels {
            route: route.into(),
            method,
            status: status_class(status),
        };
        self.http.get_or_create(&labels).inc();
    }

    /// Counts `gauge` up until the guard is dropped.
    pub fn hold(gauge: &Gauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }

    /// The exposition, OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Holds one unit of a gauge; gives it back when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Chunks acknowledged and handed to ffmpeg whose media is not listed yet,
/// oldest first. The lag observed is a lower bound of "chunk received →
/// its media listed": a chunk counts as listed at the first listing after
/// it reached ffmpeg, so the time ffmpeg holds its last frames (up to one
/// part) is not in it; waits before ffmpeg (planning, a gap in the
/// sequence, a restart) are.
#[derive(Debug, Default)]
pub struct LagQueue {
    acknowledged: Vec<Instant>,
    fed: Vec<Instant>,
}

impl LagQueue {
    /// A chunk was acknowledged at `at` (not yet fed, maybe).
    pub fn acknowledged(&mut self, at: Instant) {
        self.acknowledged.push(at);
    }

    /// Every chunk acknowledged so far is now with ffmpeg.
    pub fn fed(&mut self) {
        self.fed.append(&mut self.acknowledged);
    }

    /// Media was listed at `now`: the lags of the chunks fed before it.
    pub fn listed(&mut self, now: Instant) -> Vec<f64> {
        self.fed
            .drain(..)
            .map(|at| now.duration_since(at).as_secs_f64())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_counts_only_once_it_is_fed() {
        let mut queue = LagQueue::default();
        let t0 = Instant::now();
        queue.acknowledged(t0);
        assert!(queue
            .listed(t0 + std::time::Duration::from_secs(1))
            .is_empty());
        queue.fed();
        let lags = queue.listed(t0 + std::time::Duration::from_millis(1500));
        assert_eq!(lags, vec![1.5]);
        assert!(queue
            .listed(t0 + std::time::Duration::from_secs(3))
            .is_empty());
    }

    #[test]
    fn labels_are_bounded_and_render_as_openmetrics() {
        let metrics = Metrics::new();
        metrics.chunk(ChunkOutcome::Stored, 10);
        metrics.chunk(ChunkOutcome::Refused, 99);
        metrics.http_request("/api/recordings/{id}", Method::from_name("GET"), 404);
        let text = metrics.render();
        assert!(
            text.contains("segcast_chunks_received_total{outcome=\"stored\"} 1"),
            "{text}"
        );
        assert!(text.contains("segcast_chunk_bytes_total 10\n"), "{text}");
        assert!(
            text.contains("route=\"/api/recordings/{id}\",method=\"GET\",status=\"4xx\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
