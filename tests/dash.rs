//! MPEG-DASH from the same files as HLS: the manifest of a recording while
//! it is recorded and once it is ready, played by ffmpeg and VLC, and its
//! timeline kept across a restart. Real ffmpeg, real HTTP.

mod common;

use std::time::Duration;

use common::{decode_errors, make_h264_mkv, make_webm, Server};
use serde_json::Value;

const READY_LIMIT: Duration = Duration::from_secs(90);
/// Seconds of the live manifest ffmpeg reads (of a 10 s recording, started
/// once two 2 s segments are listed).
const FOLLOW_S: &str = "8";

/// Every `<S t d r>` of every adaptation set, expanded to (start, duration).
fn timelines(mpd: &str) -> Vec<Vec<(u64, u64)>> {
    let attribute = |element: &str, name: &str| -> Option<u64> {
        let at = element.find(&format!(" {name}=\""))? + name.len() + 3;
        element[at..].split('"').next()?.parse().ok()
    };
    mpd.split("<SegmentTimeline>")
        .skip(1)
        .map(|set| {
            let body = set.split("</SegmentTimeline>").next().unwrap();
            let mut out = Vec::new();
            let mut next = 0;
            for element in body.split("<S").skip(1) {
                let d = attribute(element, "d").expect("d");
                let mut t = attribute(element, "t").unwrap_or(next);
                for _ in 0..=attribute(element, "r").unwrap_or(0) {
                    out.push((t, d));
                    t += d;
                }
                next = t;
            }
            out
        })
        .collect()
}

/// The manifest read by an independent implementation of the ISO/IEC
/// 23009-1 data model (dash-mpd-core, whose types follow `DASH-MPD.xsd`):
/// every element and attribute must be one it knows (nothing ignored), each
/// value of its schema type, its conformity checks clean, and what the
/// schema requires present. The schema file itself is not in any registry
/// this project builds from (docs/architecture.md), so xmllint cannot run.
fn assert_conforms(mpd: &str) {
    let mut ignored = Vec::new();
    let reader = &mut quick_xml::de::Deserializer::from_str(mpd);
    let parsed: dash_mpd_core::MPD =
        serde_ignored::deserialize(reader, |path| ignored.push(path.to_string()))
            .unwrap_or_else(|e| panic!("not a DASH MPD: {e}\n{mpd}"));
    assert!(
        ignored.is_empty(),
        "unknown to the schema: {ignored:?}\n{mpd}"
    );
    let errors = dash_mpd_core::check_conformity(&parsed);
    assert!(errors.is_empty(), "{errors:?}\n{mpd}");
    // MPDtype's required attributes, and Representation's (xs:use="required").
    assert!(parsed.profiles.is_some() && parsed.minBufferTime.is_some());
    assert!(matches!(
        parsed.mpdtype.as_deref(),
        Some("static" | "dynamic")
    ));
    assert!(!parsed.periods.is_empty());
    for period in &parsed.periods {
        assert!(!period.adaptations.is_empty(), "{mpd}");
        for set in &period.adaptations {
            for r in &set.representations {
                assert!(r.id.is_some() && r.bandwidth.is_some(), "{mpd}");
            }
        }
    }
}

#[test]
fn golden_manifests_conform_and_a_stray_attribute_does_not() {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for name in [
        "manifest-live.mpd",
        "manifest-live-ll.mpd",
        "manifest-ended.mpd",
    ] {
        assert_conforms(&std::fs::read_to_string(golden.join(name)).unwrap());
    }
    let live = std::fs::read_to_string(golden.join("manifest-live.mpd")).unwrap();
    let misspelt = live.replace("minimumUpdatePeriod=", "minimumUpdatePeriode=");
    let caught = std::panic::catch_unwind(|| assert_conforms(&misspelt));
    assert!(caught.is_err(), "a misspelt attribute must not pass");
}

/// ffmpeg reading the live MPD at `url` into `file`, in the background.
fn follow_live(
    url: String,
    file: std::path::PathBuf,
    extra: &'static [&'static str],
) -> tokio::task::JoinHandle<std::path::PathBuf> {
    tokio::task::spawn_blocking(move || {
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-i", &url])
            .args(["-map", "0", "-c", "copy"])
            .args(extra)
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg following the live MPD");
        file
    })
}

/// What a live follower wrote, once it ended with the recording: both
/// tracks, no hole in the video; its duration, in seconds.
async fn followed_whole(follower: tokio::task::JoinHandle<std::path::PathBuf>) -> f64 {
    let followed = tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("ffmpeg ends with the recording")
        .unwrap();
    let mut kinds = common::stream_kinds(&followed);
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"], "ffmpeg followed both sets");
    let gap_s = common::longest_video_gap_s(&followed);
    assert!(gap_s < 0.2, "ffmpeg skipped {gap_s} s of the live manifest");
    common::probe_duration_s(&followed)
}

/// Encoded video has its keyframes on a fixed grid: the manifest addresses
/// segments by number, announced a part after they start (low-latency
/// DASH), and a player that goes by the clock (ffmpeg) follows it live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_recording_is_addressed_by_number_and_followed_live() {
    let server = Server::start(|_| {}).await;
    let out = tempfile::tempdir().unwrap();
    let source = std::fs::read(make_webm(server.data.path(), 8, "320x240")).unwrap();
    let (id, token) = server.create("grid").await;
    let mpd_url = server.url(&format!("/media/{id}/manifest.mpd"));
    let chunks: Vec<Vec<u8>> = source
        .chunks(source.len().div_ceil(32))
        .map(<[u8]>::to_vec)
        .collect();
    let mut next_at = tokio::time::Instant::now();
    let (mut live_mpd, mut follower) = (String::new(), None);
    for (seq, chunk) in chunks.iter().enumerate() {
        tokio::time::sleep_until(next_at).await;
        next_at += Duration::from_millis(250);
        server.put_ok(&id, &token, seq as u64, chunk.clone()).await;
        if live_mpd.is_empty() && server.status(&id).await["segments"].as_u64() >= Some(1) {
            live_mpd = server.text(&format!("/media/{id}/manifest.mpd")).await;
            let file = out.path().join("follower.mkv");
            follower = Some(follow_live(mpd_url.clone(), file, &[]));
        }
    }
    assert_conforms(&live_mpd);
    assert!(!live_mpd.contains("<SegmentTimeline>"), "{live_mpd}");
    assert!(
        live_mpd.contains("availabilityTimeComplete=\"false\""),
        "{live_mpd}"
    );
    assert!(live_mpd.contains("<Latency target="), "{live_mpd}");
    server.finish_ok(&id, &token, chunks.len() as u64).await;
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["state"] == "ready")
        .await;
    assert_eq!(status["video"], "transcode", "{status}");
    // ffmpeg joins a number-addressed stream at its live edge.
    let followed_s = followed_whole(follower.unwrap()).await;
    assert!(followed_s > 2.0, "ffmpeg followed {followed_s} s live");

    // Finished: the exact timeline, whose entries are the segments the live
    // manifest implied (one segment duration each but the last).
    let mpd = server.text(&format!("/media/{id}/manifest.mpd")).await;
    assert_conforms(&mpd);
    assert!(
        mpd.contains("type=\"static\"") && !mpd.contains("availabilityTimeOffset"),
        "{mpd}"
    );
    let live_d = |m: &str| {
        m.split("duration=\"")
            .nth(1)
            .map(|s| s.split('"').next().unwrap().parse::<u64>().unwrap())
    };
    let segment_ticks = live_d(&live_mpd).expect("the live SegmentTemplate@duration");
    let video = &timelines(&mpd)[0];
    assert!(video.len() >= 4, "{mpd}");
    // Within a frame of the grid (90 kHz: 25 ms is 2250 ticks): players
    // place media by its own decode times.
    let origin = video[0].0;
    for (k, &(t, d)) in video[..video.len() - 1].iter().enumerate() {
        let grid_t = origin + k as u64 * segment_ticks;
        assert!(
            t.abs_diff(grid_t) <= 2250 && d.abs_diff(segment_ticks) <= 2250,
            "segment {k} at {t} for {d}, grid {grid_t} for {segment_ticks}: {mpd}"
        );
    }
    let duration_s = status["duration_s"].as_f64().unwrap();
    // All of it, read through the manifest (the file's own duration, not
    // the manifest's, which ffmpeg rounds to whole seconds).
    let whole = follow_live(mpd_url.clone(), out.path().join("finished.mkv"), &[]);
    let whole_s = common::probe_duration_s(&whole.await.unwrap());
    assert!(
        (whole_s - duration_s).abs() < 0.1,
        "ffmpeg read {whole_s} s of {duration_s} s"
    );
    let errors = decode_errors(&mpd_url);
    assert!(errors.is_empty(), "decoding the manifest: {errors}\n{mpd}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_plays_live_and_finished_from_the_hls_files() {
    let server = Server::start(|_| {}).await;
    let out = tempfile::tempdir().unwrap();
    // Copied H.264 on its own keyframes: segments of differing durations,
    // listed in a SegmentTimeline (the Chromium path).
    let source = std::fs::read(make_h264_mkv(server.data.path(), 10, "320x240")).unwrap();
    let (id, token) = server.create("dash").await;
    let mpd_url = server.url(&format!("/media/{id}/manifest.mpd"));
    let pieces = source.len().div_ceil(40);
    let chunks: Vec<Vec<u8>> = source.chunks(pieces).map(<[u8]>::to_vec).collect();
    let mut next_at = tokio::time::Instant::now();
    let mut live_mpd = String::new();
    let mut follower = None;
    let mut first_listed_s = 0.0;
    for (seq, chunk) in chunks.iter().enumerate() {
        // At the pace it is recorded: quarter-second chunks.
        tokio::time::sleep_until(next_at).await;
        next_at += Duration::from_millis(250);
        server.put_ok(&id, &token, seq as u64, chunk.clone()).await;
        let status = server.status(&id).await;
        if live_mpd.is_empty() && status["segments"].as_u64() >= Some(2) {
            assert_eq!(status["dash"], format!("/media/{id}/manifest.mpd"));
            let resp = server.get(&format!("/media/{id}/manifest.mpd")).await;
            assert_eq!(resp.headers()["content-type"], "application/dash+xml");
            live_mpd = resp.text().await.unwrap();
            first_listed_s = status["duration_s"].as_f64().unwrap();
            // ffmpeg follows the live manifest from its first segment past
            // what is published now, without a gap. ffmpeg 5.1 never notices
            // that a dynamic manifest turned static (its DASH demuxer only
            // ever sets "live"), so it is told where to stop.
            let file = out.path().join("follower.mkv");
            follower = Some(follow_live(mpd_url.clone(), file, &["-t", FOLLOW_S]));
        }
    }
    assert!(live_mpd.contains("type=\"dynamic\""), "{live_mpd}");
    assert!(live_mpd.contains("<SegmentTimeline>"), "{live_mpd}");
    assert_conforms(&live_mpd);
    assert!(live_mpd.contains("availabilityStartTime="), "{live_mpd}");
    server.finish_ok(&id, &token, chunks.len() as u64).await;
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["state"] == "ready")
        .await;
    assert_eq!(status["video"], "copy", "{status}");
    let duration_s = status["duration_s"].as_f64().unwrap();
    let followed_s = followed_whole(follower.unwrap()).await;
    let wanted_s: f64 = FOLLOW_S.parse().unwrap();
    assert!(
        (followed_s - wanted_s).abs() < 0.3,
        "ffmpeg following live: {followed_s} s of {wanted_s} s"
    );
    assert!(
        followed_s > first_listed_s + 2.0,
        "ffmpeg read past what was listed when it started ({first_listed_s} s)"
    );

    // Finished: static, the whole duration, every entry published live
    // unchanged, and the same files HLS lists.
    let mpd = server.text(&format!("/media/{id}/manifest.mpd")).await;
    assert!(mpd.contains("type=\"static\""), "{mpd}");
    assert_conforms(&mpd);
    let (live, ended) = (timelines(&live_mpd), timelines(&mpd));
    assert_eq!(ended.len(), 2, "video and audio adaptation sets");
    for (before, after) in live.iter().zip(&ended) {
        assert!(after.starts_with(before), "published entries never change");
    }
    let hls = server.text(&format!("/media/{id}/media.m3u8")).await;
    let hls_segments = hls.lines().filter(|l| l.starts_with("seg-")).count();
    assert_eq!(ended[0].len(), hls_segments, "the same segments as HLS");
    let probed = common::probe_duration_s(std::path::Path::new(&mpd_url));
    assert!(
        reads_as(probed, duration_s),
        "ffprobe: {probed} s of {duration_s} s"
    );
    let errors = decode_errors(&mpd_url);
    assert!(errors.is_empty(), "decoding the manifest: {errors}");

    let (url, dir) = (mpd_url.clone(), out.path().to_path_buf());
    let played = tokio::task::spawn_blocking(move || common::vlc_remux(&url, &dir))
        .await
        .unwrap();
    let mut kinds = common::stream_kinds(&played);
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"], "VLC played both adaptation sets");
    let played_s = common::probe_duration_s(&played);
    assert!(
        (played_s - duration_s).abs() < 0.3,
        "VLC: {played_s} s of {duration_s} s"
    );

    // The clock the live manifest names: an ISO 8601 instant, with CORS.
    let time = server
        .client
        .get(server.url("/time"))
        .header("origin", "http://example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(time.headers()["access-control-allow-origin"], "*");
    let text = time.text().await.unwrap();
    assert!(
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).is_ok(),
        "{text}"
    );

    // A restarted server serves the same manifest entries.
    let server = Server::start_in(server.stop().await, |_| {}).await;
    let again = server.text(&format!("/media/{id}/manifest.mpd")).await;
    assert_eq!(timelines(&again), ended);
    let status: Value = server.status(&id).await;
    assert_eq!(status["dash"], format!("/media/{id}/manifest.mpd"));
}

/// Whether ffprobe's duration of an MPD is `duration_s`. ffmpeg 5.1's DASH
/// demuxer keeps only the whole seconds of `mediaPresentationDuration`
/// (PT7.5S reads as 7 s); a demuxer that keeps the fraction reads the
/// duration itself, within a frame. Either is right.
fn reads_as(probed_s: f64, duration_s: f64) -> bool {
    (probed_s - duration_s.trunc()).abs() < 0.01 || (probed_s - duration_s).abs() < 0.05
}

/// Low-latency DASH asks for the segment still being produced: it is sent
/// part by part as the packager publishes them, and its bytes are the
/// segment file's once it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_segment_is_sent_as_it_grows() {
    use futures_util::StreamExt;
    let server = Server::start(|c| c.segment_target_ms = 2000).await;
    let source = std::fs::read(make_webm(server.data.path(), 6, "320x240")).unwrap();
    let (id, token) = server.create("growing").await;
    // About 3 s of media: segment 0 is closed (so the manifest exists that
    // announces segment 1), segment 1 has parts and is not.
    let split = source.len() / 2;
    server
        .put_ok(&id, &token, 0, source[..split].to_vec())
        .await;
    // A blocking reload: back once segment 1 has two parts.
    let playlist = server
        .text(&format!("/media/{id}/media.m3u8?_HLS_msn=1&_HLS_part=1"))
        .await;
    assert!(playlist.contains("#EXT-X-PART:"), "{playlist}");
    let growing = server.get(&format!("/media/{id}/seg-00001.m4s")).await;
    assert_eq!(growing.status(), 200);
    assert_eq!(growing.headers()["content-type"], "video/iso.segment");
    assert!(growing.headers().get("content-length").is_none(), "chunked");
    let mut body = growing.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert_eq!(&first[4..8], b"moof", "a CMAF chunk: {:?}", &first[..8]);
    assert_eq!(
        server.status(&id).await["segments"],
        1,
        "sent before it closed"
    );
    // Too far ahead of the open segment: refused at once.
    let ahead = server.get(&format!("/media/{id}/seg-00003.m4s")).await;
    assert_eq!(ahead.status(), 404);
    // The next one is held until it starts, then grows the same way.
    let next = {
        let (client, url) = (
            server.client.clone(),
            server.url(&format!("/media/{id}/seg-00002.m4s")),
        );
        tokio::spawn(async move {
            let resp = client.get(url).send().await.unwrap();
            (resp.status(), resp.bytes().await.unwrap())
        })
    };
    assert!(!next.is_finished(), "answered before segment 2 began");

    server
        .put_ok(&id, &token, 1, source[split..].to_vec())
        .await;
    server.finish_ok(&id, &token, 2).await;
    let mut streamed = first.to_vec();
    while let Some(chunk) = body.next().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    let file = server.get(&format!("/media/{id}/seg-00001.m4s")).await;
    let file = file.bytes().await.unwrap();
    assert!(file.len() > first.len(), "more than the first part");
    assert_eq!(streamed, file.to_vec(), "the growing answer is the segment");
    let (status, next) = next.await.unwrap();
    assert_eq!(status, 200);
    let file = server.get(&format!("/media/{id}/seg-00002.m4s")).await;
    assert_eq!(
        next,
        file.bytes().await.unwrap(),
        "segment 2, held then sent"
    );
}
