//! The live recording: its upload at real-time pace, what the benchmark
//! reads from its playlist (plain and blocking reloads), the live rows
//! measured meanwhile, and the wake-up spread of requests blocked on the
//! next part. Also [`fetch`], the single request every check makes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cells::{measure, measure_pair, Row, Server};
use crate::{common, Ctx};

/// Media per uploaded chunk, like the record page's MediaRecorder slices.
pub(crate) const CHUNK_MS: u64 = 250;

/// Uploads `chunks` at real-time pace until `hurry`, then the rest at once,
/// and finishes the recording. Returns when finish was answered.
pub(crate) async fn upload(
    base: String,
    id: String,
    token: String,
    chunks: Arc<Vec<Vec<u8>>>,
    hurry: Arc<AtomicBool>,
) {
    let api = common::Api::new(base);
    let start = tokio::time::Instant::now();
    for (seq, chunk) in chunks.iter().enumerate() {
        if !hurry.load(Ordering::Relaxed) {
            // Sent once its last media would have been recorded.
            let due = start + Duration::from_millis(CHUNK_MS * (seq as u64 + 1));
            tokio::time::sleep_until(due).await;
        }
        let answer = api.put(&id, &token, seq as u64, chunk.clone()).await;
        assert!(answer.status().is_success(), "chunk {seq}: {answer:?}");
    }
    let finished = api.finish(&id, &token, chunks.len() as u64).await;
    assert!(finished.status().is_success(), "finish: {finished:?}");
}

pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) bytes: Bytes,
    /// Answers from disk carry `Last-Modified`; those from memory do not.
    pub(crate) from_disk: bool,
}

pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    range: Option<(u64, u64)>,
) -> Fetched {
    let mut request = client.get(url);
    if let Some((first, last)) = range {
        request = request.header("range", format!("bytes={first}-{last}"));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let from_disk = response.headers().contains_key("last-modified");
    let bytes = response.bytes().await.unwrap();
    Fetched {
        status,
        bytes,
        from_disk,
    }
}

/// What the benchmark reads from a live media playlist.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    media_sequence: u64,
    pub(crate) segments: Vec<String>,
    /// `EXT-X-PART`s after the last segment: the open segment's parts.
    open_parts: u64,
    newest_part: Option<String>,
    pub(crate) ended: bool,
}

impl Listing {
    fn parse(text: &str) -> Self {
        let mut listing = Self::default();
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                listing.media_sequence = n.trim().parse().unwrap_or(0);
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
                listing.open_parts += 1;
                listing.newest_part = attrs
                    .split("URI=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(String::from);
            } else if line == "#EXT-X-ENDLIST" {
                listing.ended = true;
            } else if !line.is_empty() && !line.starts_with('#') {
                listing.segments.push(line.to_string());
                listing.open_parts = 0;
            }
        }
        listing
    }

    /// Media sequence number of the open segment (the next to close).
    fn open_msn(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }

    /// The segment the newest part belongs to.
    fn newest_part_msn(&self) -> u64 {
        if self.open_parts > 0 {
            self.open_msn()
        } else {
            self.open_msn() - 1
        }
    }
}

/// The media playlist once it holds segment `msn` (or its part `part`):
/// a blocking reload, asked again if the server says 503 (not yet).
async fn blocking_listing(ctx: &Ctx, media: &str, msn: u64, part: Option<u64>) -> Listing {
    let mut url = format!("{media}media.m3u8?_HLS_msn={msn}");
    if let Some(part) = part {
        url.push_str(&format!("&_HLS_part={part}"));
    }
    for _ in 0..5 {
        let answer = fetch(&ctx.client, &url, None).await;
        match answer.status {
            200 => return Listing::parse(&String::from_utf8_lossy(&answer.bytes)),
            503 => continue,
            other => panic!("GET {url}: {other}"),
        }
    }
    panic!("GET {url}: never satisfied")
}

pub(crate) async fn listing(ctx: &Ctx, media: &str) -> Listing {
    let answer = fetch(&ctx.client, &format!("{media}media.m3u8"), None).await;
    assert_eq!(answer.status, 200, "the live playlist");
    Listing::parse(&String::from_utf8_lossy(&answer.bytes))
}

/// The live rows, measured while the recording uploads at real-time pace.
pub(crate) async fn live_rows(ctx: &Arc<Ctx>, base: &str, id: &str) -> Vec<Row> {
    let media = format!("{base}/media/{id}/");
    let nginx_media = format!("{}/{id}/hls/", ctx.nginx);
    let (nginx, segcast) = (Server::Nginx, Server::Segcast);
    let mut rows = Vec::new();

    let mut row = Row::new("live media playlist", false);
    let (url, nginx_url) = (
        format!("{media}media.m3u8"),
        format!("{nginx_media}media.m3u8"),
    );
    for level in 0..2 {
        let sides = [
            (nginx, nginx_url.as_str(), None),
            (segcast, url.as_str(), None),
        ];
        measure_pair(ctx, &mut row, level, sides, ctx.round_s).await;
    }
    rows.push(row);

    let msn = listing(ctx, &media).await.open_msn() - 1;
    let name = "blocking reload, satisfied (_HLS_msn=<closed>&_HLS_part=0)";
    let mut row = Row::new(name, false);
    let url = format!("{media}media.m3u8?_HLS_msn={msn}&_HLS_part=0");
    for level in 0..2 {
        measure(ctx, &mut row, (segcast, level), &url, ctx.cell_s).await;
    }
    rows.push(row);

    let mut row = Row::new("part (nginx: its bytes as a Range of the segment)", true);
    for level in 0..2 {
        part_cells(ctx, &mut row, level, (&media, &nginx_media), id).await;
    }
    rows.push(row);

    let mut row = Row::new("live segment, the newest", true);
    for level in 0..2 {
        // Just closed: it stays in memory while 4 more segments close.
        let open = listing(ctx, &media).await.open_msn();
        let newest = blocking_listing(ctx, &media, open, None).await;
        let uri = newest.segments.last().expect("a closed segment").clone();
        let url = format!("{media}{uri}");
        check_memory(ctx, &url, &uri, "before").await;
        let nginx_url = format!("{nginx_media}{uri}");
        let sides = [
            (segcast, url.as_str(), None),
            (nginx, nginx_url.as_str(), None),
        ];
        measure_pair(ctx, &mut row, level, sides, ctx.edge_round_s).await;
        check_memory(ctx, &url, &uri, "after").await;
    }
    rows.push(row);
    rows
}

/// Notes it if segcast answers `url` from disk: the cell was meant to
/// measure its memory.
async fn check_memory(ctx: &Ctx, url: &str, what: &str, when: &str) {
    if fetch(&ctx.client, url, None).await.from_disk {
        ctx.note(format!("{what} came from disk {when} its cell"));
    }
}

/// A part from segcast's memory, then the same bytes from nginx as a range
/// of the segment file they end up in.
async fn part_cells(
    ctx: &Arc<Ctx>,
    row: &mut Row,
    level: usize,
    (media, nginx_media): (&str, &str),
    id: &str,
) {
    // The first part of a new segment: in memory while 5 more segments start.
    let open = listing(ctx, media).await.open_msn();
    let fresh = blocking_listing(ctx, media, open + 1, Some(0)).await;
    let uri = fresh.newest_part.clone().expect("a listed part");
    let url = format!("{media}{uri}");
    check_memory(ctx, &url, &uri, "before").await;
    let bytes = fetch(&ctx.client, &url, None).await.bytes;
    // Its segment is on disk once closed; the part is a slice of it.
    // segcast's name for the segment's file (and nginx's URL of it).
    let segment = format!("seg-{:05}.m4s", fresh.newest_part_msn());
    let path = ctx.hls_dir(id).join(&segment);
    let deadline = Instant::now() + Duration::from_secs(20);
    let offset = loop {
        let found = std::fs::read(&path)
            .ok()
            .and_then(|file| file.windows(bytes.len()).position(|w| w == &bytes[..]));
        if let Some(offset) = found {
            break offset as u64;
        }
        assert!(Instant::now() < deadline, "{uri} not in {segment}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let range = Some((offset, offset + bytes.len() as u64 - 1));
    let nginx_url = format!("{nginx_media}{segment}");
    let sides = [
        (Server::Segcast, url.as_str(), None),
        (Server::Nginx, nginx_url.as_str(), range),
    ];
    let [ours, theirs] = measure_pair(ctx, row, level, sides, ctx.edge_round_s).await;
    check_memory(ctx, &url, &uri, "after").await;
    assert_eq!(ours, bytes, "{uri} did not change");
    assert_eq!(theirs, bytes, "nginx's range is {uri}");
}

/// K requests blocked on the next part; for each of `rounds` parts, the
/// time from the first answer to the last. Also the shortest wait, which
/// shows whether every request was really blocked.
pub(crate) async fn wake_up(
    ctx: &Ctx,
    media: &str,
    waiters: usize,
    rounds: usize,
) -> (Vec<Duration>, Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2 * waiters)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // Every waiter gets its connection first.
    let warm: Vec<_> = (0..waiters)
        .map(|_| tokio::spawn(client.get(format!("{media}media.m3u8")).send()))
        .collect();
    for request in warm {
        request.await.unwrap().unwrap().bytes().await.unwrap();
    }
    let (mut spreads, mut shortest) = (Vec::new(), Duration::MAX);
    for _ in 0..rounds {
        // Right after a part appears, the next is a whole part away.
        let now = listing(ctx, media).await;
        let next = blocking_listing(ctx, media, now.open_msn(), Some(now.open_parts)).await;
        let url = format!(
            "{media}media.m3u8?_HLS_msn={}&_HLS_part={}",
            next.open_msn(),
            next.open_parts
        );
        let asked = Instant::now();
        let answers: Vec<_> = (0..waiters)
            .map(|_| {
                let request = client.get(&url).send();
                tokio::spawn(async move {
                    let response = request.await.unwrap();
                    let status = response.status().as_u16();
                    response.bytes().await.unwrap();
                    (status, Instant::now())
                })
            })
            .collect();
        let mut times = Vec::new();
        for answer in answers {
            let (status, at) = answer.await.unwrap();
            assert_eq!(status, 200, "{url}");
            times.push(at);
        }
        let (first, last) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        spreads.push(last - first);
        shortest = shortest.min(first - asked);
    }
    (spreads, shortest)
}
