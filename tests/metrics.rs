//! `GET /metrics` (docs/api.md "Metrics"): the exposition is read with an
//! OpenMetrics parser (`openmetrics-parser`, the grammar of the spec), and
//! its counters are shown to move with real work: a recording encoded by
//! the real ffmpeg, viewers waiting on it, a comment, HTTP requests.

mod common;

use std::time::{Duration, Instant};

use openmetrics_parser::{HistogramValue, MetricsExposition, OpenMetricsType, OpenMetricsValue};
use serde_json::json;

use common::{make_webm, Api, Server};

const READY_LIMIT: Duration = Duration::from_secs(90);

/// One scrape, parsed.
struct Scrape(MetricsExposition<OpenMetricsType, OpenMetricsValue>);

impl Scrape {
    async fn of(api: &Api) -> Self {
        let resp = api.get("/metrics").await;
        assert_eq!(resp.status(), 200);
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        let text = resp.text().await.unwrap();
        let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("not OpenMetrics text: {e:?}\n{text}"));
        Self(parsed)
    }

    /// A counter's or gauge's value for the samples whose labels include
    /// `labels` (summed over the rest); 0 when the family has no such
    /// sample yet. A family the server does not write at all fails: read
    /// as 0, a renamed metric would pass every `== 0.0`.
    fn value(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        let Some(family) = self.0.families.get(family) else {
            let mut written: Vec<_> = self.0.families.keys().collect();
            written.sort();
            panic!("no metric family {family}; written: {written:?}");
        };
        family
            .iter_samples()
            .filter(|s| {
                let set = s.get_labelset().unwrap();
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|s| match &s.value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Gauge(g) => g.as_f64(),
                other => panic!("{} is {other:?}", family.family_name),
            })
            .sum()
    }

    fn kind(&self, family: &str) -> OpenMetricsType {
        self.0.families[family].family_type
    }

    fn histogram(&self, family: &str) -> HistogramValue {
        let family = &self.0.families[family];
        let sample = family.iter_samples().next().expect("one series");
        match &sample.value {
            OpenMetricsValue::Histogram(h) => h.clone(),
            other => panic!("{} is {other:?}", family.family_name),
        }
    }

    /// Every label value of every series, to check that none is an id.
    fn label_values(&self) -> Vec<String> {
        self.0
            .families
            .values()
            .flat_map(|f| f.iter_samples())
            .flat_map(|s| {
                let set = s.get_labelset().unwrap();
                set.iter_values().cloned().collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Scrapes until `done` holds for a scrape; panics after `limit`.
async fn scrape_until(api: &Api, limit: Duration, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + limit;
    loop {
        let scrape = Scrape::of(api).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < deadline, "metrics never got there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const CHUNKS: &str = "segcast_chunks_received";
const CHUNK_ROUTE: &str = "/api/recordings/{id}/chunks/{seq}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_a_recording_its_viewers_and_a_comment() {
    let server = Server::start(|c| c.segment_target_ms = 1000).await;
    let source = std::fs::read(make_webm(server.data.path(), 5, "320x240")).unwrap();

    let before = Scrape::of(&server).await;
    assert_eq!(before.kind(CHUNKS), OpenMetricsType::Counter);
    assert_eq!(
        before.kind("segcast_publish_lag_seconds"),
        OpenMetricsType::Histogram
    );
    assert_eq!(
        before.kind("segcast_live_recordings"),
        OpenMetricsType::Gauge
    );
    assert_eq!(before.value("segcast_live_recordings", &[]), 0.0);
    assert_eq!(
        before.histogram("segcast_publish_lag_seconds").count,
        Some(0)
    );

    let (id, token) = server.create("metrics").await;
    let live = Scrape::of(&server).await;
    assert_eq!(live.value("segcast_live_recordings", &[]), 1.0);

    // A viewer waits for the first part before any media exists.
    let waiting = {
        let (client, url) = (
            server.client.clone(),
            server.url(&format!("/media/{id}/media.m3u8?_HLS_msn=0&_HLS_part=0")),
        );
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    };
    scrape_until(&server, Duration::from_secs(10), |s| {
        s.value("segcast_http_waiting_requests", &[]) == 1.0
    })
    .await;

    let pieces: Vec<Vec<u8>> = source
        .chunks(source.len() / 8 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    server.put_all_ok(&id, &token, &pieces).await;
    // A retry of the same bytes, and different bytes for a stored seq.
    assert_eq!(
        server.put(&id, &token, 1, pieces[1].clone()).await.status(),
        200
    );
    assert_eq!(
        server.put(&id, &token, 1, b"other".to_vec()).await.status(),
        409
    );
    assert_eq!(waiting.await.unwrap(), 200);

    let posted = server
        .client
        .post(server.url(&format!("/api/recordings/{id}/comments")))
        .json(&json!({ "author": "Ann", "text": "hello", "media_time_s": 0.5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    assert_eq!(server.get("/no/such/page").await.status(), 404);

    server.finish_ok(&id, &token, pieces.len() as u64).await;
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["state"] == "ready")
        .await;
    let segments = status["segments"].as_f64().unwrap();
    assert!(segments >= 3.0, "{status}");

    // Every stored chunk was listed by the last playlist at the latest.
    let n = pieces.len() as f64;
    let after = scrape_until(&server, Duration::from_secs(10), |s| {
        s.histogram("segcast_publish_lag_seconds").count == Some(pieces.len() as u64)
    })
    .await;
    assert_eq!(after.value(CHUNKS, &[("outcome", "stored")]), n);
    assert_eq!(after.value(CHUNKS, &[("outcome", "duplicate")]), 1.0);
    assert_eq!(after.value(CHUNKS, &[("outcome", "refused")]), 1.0);
    assert_eq!(after.value("segcast_chunk_bytes", &[]), source.len() as f64);
    assert_eq!(after.value("segcast_ffmpeg_starts", &[]), 1.0);
    assert_eq!(after.value("segcast_ffmpeg_failures", &[]), 0.0);
    assert_eq!(after.value("segcast_ffmpeg_restarts", &[]), 0.0);
    // Video and audio: every segment once per track; parts likewise, and
    // at least one part per segment.
    assert_eq!(
        after.value("segcast_segments_published", &[]),
        2.0 * segments
    );
    let parts = after.value("segcast_parts_published", &[]);
    assert!(
        parts >= 2.0 * segments,
        "{parts} parts for {segments} segments"
    );
    assert_eq!(after.value("segcast_live_recordings", &[]), 0.0);
    assert_eq!(after.value("segcast_http_waiting_requests", &[]), 0.0);
    assert_eq!(after.value("segcast_comments_posted", &[]), 1.0);

    let lag = after.histogram("segcast_publish_lag_seconds");
    let sum = lag.sum.expect("a sum").as_f64();
    assert!(sum > 0.0 && sum < n * READY_LIMIT.as_secs_f64(), "{lag:?}");
    let infinite = lag
        .buckets
        .iter()
        .find(|b| b.upper_bound.is_infinite())
        .unwrap();
    assert_eq!(infinite.count.as_f64(), n);

    // HTTP requests by route template and status class, never the path.
    let route = |route: &str, method: &str, status: &str| {
        after.value(
            "segcast_http_requests",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(route(CHUNK_ROUTE, "PUT", "2xx"), n + 1.0);
    assert_eq!(route(CHUNK_ROUTE, "PUT", "4xx"), 1.0);
    assert_eq!(route("/api/recordings", "POST", "2xx"), 1.0);
    assert_eq!(route("/api/recordings/{id}/comments", "POST", "2xx"), 1.0);
    assert_eq!(route("/media/{id}/{file}", "GET", "2xx"), 1.0);
    assert!(route("/api/recordings/{id}", "GET", "2xx") >= 1.0);
    assert_eq!(route("unmatched", "GET", "4xx"), 1.0);
    assert!(route("/metrics", "GET", "2xx") >= 3.0);
    let labels = after.label_values();
    assert!(
        labels.iter().all(|v| !v.contains(&id)),
        "an id as a label: {labels:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_them_apart_from_the_api() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = Server::start(|c| c.metrics_listen = Some(port)).await;
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(server.get("/metrics").await.status(), 404);

    let apart = Api::new(format!("http://{port}"));
    let scrape = Scrape::of(&apart).await;
    assert_dashboard_queries_exist(&scrape);
    // The API's 404 for /metrics was counted, and read on the other port.
    assert_eq!(
        scrape.value(
            "segcast_http_requests",
            &[("route", "unmatched"), ("status", "4xx")]
        ),
        1.0
    );
}

/// Every series docs/grafana-dashboard.json queries is one the server
/// writes (a renamed metric would leave a panel silently empty).
fn assert_dashboard_queries_exist(scrape: &Scrape) {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("segcast_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                queried.push(name);
            }
        }
    }
    assert!(queried.len() >= 14, "{queried:?}");
    for name in queried {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        let family = scrape.0.families.get(family);
        assert!(
            family.is_some(),
            "the dashboard queries {name}, which is not written"
        );
        let counter = family.unwrap().family_type == OpenMetricsType::Counter;
        assert_eq!(counter, name.ends_with("_total"), "{name}");
    }
}
