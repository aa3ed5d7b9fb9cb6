//! Comment broadcast latency (`cargo bench --bench comments`): V WebSocket
//! viewers on one recording of a segcast process (the release binary, on
//! loopback), then P comments posted one after another over HTTP. For each
//! comment and each viewer: the time from sending the `POST` to that
//! viewer receiving the comment, which includes the fsync before the
//! `201`. The next comment is posted once every viewer has the previous
//! one, so the figures are fan-out, not queueing. Prints p50/p99/max.
//!
//! `--viewers V` (200), `--posts P` (50); `--check` exits non-zero when a
//! viewer got a comment later than issue 12's 1 s.

#[path = "support/check.rs"]
mod check;
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Longest a viewer may wait for one comment before the run fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn arg(flag: &str, default: usize) -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "| {name} | {} | {} | {} | {} |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
}

/// Connects one viewer; it reports (comment number, arrival) for every
/// comment it receives.
async fn viewer(url: String, arrivals: mpsc::UnboundedSender<(usize, Instant)>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("viewer connects");
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let arrived = Instant::now();
        let value: Value = serde_json::from_str(&text).unwrap();
        if value["type"] == "history" {
            let _ = arrivals.send((usize::MAX, arrived));
        } else if value["type"] == "comment" {
            let k = value["text"]
                .as_str()
                .unwrap()
                .trim_start_matches("bench ")
                .parse()
                .unwrap();
            let _ = arrivals.send((k, arrived));
        }
    }
}

#[tokio::main]
async fn main() {
    let (viewers, posts) = (arg("--viewers", 200), arg("--posts", 50));
    let data = tempfile::tempdir().unwrap();
    let sockets = (viewers + 10).to_string();
    // Every viewer comes from 127.0.0.1: the per-client caps, meant for
    // one real client, are lifted.
    let extra = [
        "--comment-rate",
        "1000000",
        "--comment-max-sockets",
        &sockets,
        "--max-connections-per-client",
        "100000",
        "--max-waiting-per-client",
        "100000",
    ];
    let (mut process, base) = common::spawn_server_process(data.path(), &extra);
    let api = common::Api::new(base.clone());
    let (id, _) = api.create("comments benchmark").await;
    let url = format!(
        "{}/api/recordings/{id}/comments/ws",
        base.replace("http://", "ws://")
    );

    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
    let connecting = Instant::now();
    for _ in 0..viewers {
        tokio::spawn(viewer(url.clone(), arrivals_tx.clone()));
    }
    drop(arrivals_tx);
    for _ in 0..viewers {
        let (k, _) = tokio::time::timeout(PATIENCE, arrivals.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(k, usize::MAX, "history first");
    }
    println!(
        "{viewers} viewers connected in {}",
        ms(connecting.elapsed())
    );

    let comments_url = api.url(&format!("/api/recordings/{id}/comments"));
    let (mut to_viewers, mut round_trips, mut spreads) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..posts {
        let body = json!({ "author": "bench", "text": format!("bench {k}"), "media_time_s": k });
        let sent = Instant::now();
        let resp = api
            .client
            .post(&comments_url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        round_trips.push(sent.elapsed());
        let (mut first, mut last) = (None::<Instant>, sent);
        for _ in 0..viewers {
            let (got, arrived) = tokio::time::timeout(PATIENCE, arrivals.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, k, "comments arrive in order");
            to_viewers.push(arrived - sent);
            first = Some(first.map_or(arrived, |f: Instant| f.min(arrived)));
            last = last.max(arrived);
        }
        spreads.push(last - first.unwrap());
    }

    println!();
    println!("| {viewers} viewers, {posts} comments | samples | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    summary("POST → 201 (fsync included)", round_trips);
    let slowest = to_viewers.iter().max().copied().unwrap_or_default();
    summary("POST sent → a viewer has it", to_viewers);
    summary("first → last viewer, per comment", spreads);
    process.kill();
    let mut targets = check::Targets::from_args();
    targets.expect(
        slowest <= Duration::from_secs(1),
        format!(
            "every viewer had every comment within {} (target ≤ 1 s)",
            ms(slowest)
        ),
    );
    targets.finish();
}
