//! Importing existing files through the three doors (HTTP, CLI, inbox
//! folder), with real ffmpeg, files made by ffmpeg in every shape the issue
//! names, and playback checked by decoding what segcast published.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{assert_contiguous_media, decode_errors, Api, Server};
use serde_json::Value;

/// Generous: imports of 3-4 s files take well under a second each.
const IMPORT_LIMIT: Duration = Duration::from_secs(60);

/// Test files, made once per test binary.
struct Media {
    dir: PathBuf,
}

impl Media {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn ffmpeg(out: &Path, args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg must be installed (scripts/test installs it)");
    assert!(status.success(), "ffmpeg could not make {}", out.display());
}

const VIDEO: [&str; 4] = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"];
const AUDIO: [&str; 4] = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let at = |name: &str| dir.join(name);
        fn av<'a>(extra: &[&'a str]) -> Vec<&'a str> {
            [&VIDEO[..], &AUDIO[..], extra].concat()
        }
        // Keyframes every 48 frames (1.6 s): off the 2 s grid, so segments
        // that follow them prove the copy path kept the source's GOPs.
        let h264 = [
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-g",
            "48",
            "-keyint_min",
            "48",
        ];
        ffmpeg(
            &at("h264-aac.mp4"),
            &av(&[&h264[..], &["-c:a", "aac"]].concat()),
        );
        let vp9_opus = [
            &["-t", "3"][..],
            &common::VP9_FAST[..],
            &["-c:a", "libopus"],
        ]
        .concat();
        ffmpeg(&at("vp9-opus.webm"), &av(&vp9_opus));
        ffmpeg(
            &at("h264-pcm.mov"),
            &av(&[
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-g",
                "30",
                "-c:a",
                "pcm_s16le",
            ]),
        );
        ffmpeg(
            &at("no-audio.mp4"),
            &[&VIDEO[..], &["-t", "3", "-c:v", "libx264", "-g", "30"]].concat(),
        );
        ffmpeg(
            &at("audio-only.m4a"),
            &[&AUDIO[..], &["-t", "3", "-c:a", "aac"]].concat(),
        );
        // moov at the end, cut off: nothing is readable.
        let mp4 = std::fs::read(at("h264-aac.mp4")).unwrap();
        std::fs::write(at("truncated.mp4"), &mp4[..mp4.len() / 2]).unwrap();
        // A WebM cut at 55 %: what is there plays, and the rest is missing.
        let webm = std::fs::read(at("vp9-opus.webm")).unwrap();
        std::fs::write(at("truncated.webm"), &webm[..webm.len() * 55 / 100]).unwrap();
        std::fs::write(at("notes.mp4"), "these are my notes, not a video\n").unwrap();
        Media { dir }
    })
}

/// What a file must end as.
enum Expect {
    Ready {
        duration_s: f64,
        codecs: &'static [&'static str],
        incomplete: bool,
    },
    Failed(&'static str),
}

fn expectations() -> Vec<(&'static str, Expect)> {
    let ready = |duration_s, codecs, incomplete| Expect::Ready {
        duration_s,
        codecs,
        incomplete,
    };
    vec![
        ("h264-aac.mp4", ready(4.0, &["avc1.", "mp4a.40.2"], false)),
        ("vp9-opus.webm", ready(3.0, &["avc1.", "mp4a.40.2"], false)),
        ("h264-pcm.mov", ready(3.0, &["avc1.", "mp4a.40.2"], false)),
        ("no-audio.mp4", ready(3.0, &["avc1."], false)),
        ("audio-only.m4a", ready(3.0, &["mp4a.40.2"], false)),
        ("truncated.webm", ready(1.5, &["avc1.", "mp4a.40.2"], true)),
        (
            "truncated.mp4",
            Expect::Failed("not a media file (moov atom not found"),
        ),
        (
            "notes.mp4",
            Expect::Failed("not a media file (Invalid data found"),
        ),
    ]
}

async fn post_import(api: &Api, file: &Path, query: &str) -> reqwest::Response {
    api.client
        .post(api.url(&format!("/api/imports?{query}")))
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap()
}

async fn wait_done(api: &Api, id: &str) -> Value {
    api.wait_for(id, IMPORT_LIMIT, |s| {
        s["state"] == "ready" || s["state"] == "failed"
    })
    .await
}

/// Checks a finished import against what it must be: state, duration,
/// codecs, a clean decode and gap-free media; or the failure reason.
async fn check(api: &Api, name: &str, status: &Value, expect: &Expect) {
    match expect {
        Expect::Failed(reason) => {
            assert_eq!(status["state"], "failed", "{name}: {status:#}");
            let error = status["error"].as_str().unwrap();
            assert!(error.starts_with(reason), "{name}: {error}");
            assert_eq!(status["segments"], 0, "{name}: nothing half-published");
        }
        Expect::Ready {
            duration_s,
            codecs,
            incomplete,
        } => {
            assert_eq!(status["state"], "ready", "{name}: {status:#}");
            assert_eq!(status["progress"], 1.0, "{name}");
            assert_eq!(status["incomplete"], *incomplete, "{name}: {status:#}");
            let got = status["duration_s"].as_f64().unwrap();
            let slack = if *incomplete { 0.6 } else { 0.1 };
            assert!(
                (got - duration_s).abs() <= slack,
                "{name}: {got} s, want {duration_s}"
            );
            let id = status["id"].as_str().unwrap();
            let multivariant = api.text(&format!("/media/{id}/index.m3u8")).await;
            let listed = multivariant.split("CODECS=\"").nth(1).unwrap();
            let listed = listed.split('"').next().unwrap();
            assert_eq!(listed.split(',').count(), codecs.len(), "{name}: {listed}");
            for codec in *codecs {
                assert!(listed.contains(codec), "{name}: {listed} lacks {codec}");
            }
            let playlist = api.text(&format!("/media/{id}/media.m3u8")).await;
            assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{name}: {playlist}");
            let url = api.url(&format!("/media/{id}/index.m3u8"));
            let errors = tokio::task::spawn_blocking(move || decode_errors(&url))
                .await
                .unwrap();
            assert_eq!(errors, "", "{name} decodes cleanly");
            let media_s = assert_contiguous_media(&api.client, &api.base, id).await;
            assert!(media_s > 0.0, "{name}");
            // DASH from the same files (copy path and transcodes alike).
            assert_eq!(
                status["dash"],
                format!("/media/{id}/manifest.mpd"),
                "{name}"
            );
            let mpd = api.url(&format!("/media/{id}/manifest.mpd"));
            let probed = common::probe_duration_s(std::path::Path::new(&mpd));
            assert!(
                mpd_reads_as(probed, got),
                "{name}: DASH {probed} s of {got} s"
            );
            let errors = tokio::task::spawn_blocking(move || decode_errors(&mpd))
                .await
                .unwrap();
            assert_eq!(errors, "", "{name}: the DASH manifest decodes cleanly");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_imports_end_ready_or_failed_with_a_reason() {
    let media = media();
    let server = Server::start(|c| c.import_jobs = 3).await;
    let mut ids = Vec::new();
    for (name, _) in expectations() {
        let resp = post_import(&server, &media.path(name), &format!("name={name}")).await;
        assert_eq!(resp.status(), 201, "{name}");
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let created: Value = resp.json().await.unwrap();
        assert_eq!(created["state"], "processing", "{name}");
        assert_eq!(created["source"], "import");
        assert!(created["upload_token"].is_string());
        assert_eq!(
            location,
            format!("/api/recordings/{}", created["id"].as_str().unwrap())
        );
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    for ((name, expect), id) in expectations().iter().zip(&ids) {
        let status = wait_done(&server, id).await;
        check(&server, name, &status, expect).await;
        assert_eq!(
            status["title"],
            Path::new(name).file_stem().unwrap().to_str().unwrap()
        );
    }
    let listed: Vec<Value> = server.get("/api/recordings").await.json().await.unwrap();
    assert_eq!(listed.len(), ids.len(), "every import is in the library");

    // VLC plays the DASH manifest of a copied (H.264) and a transcoded
    // (VP9) import to the end, both adaptation sets.
    let out = tempfile::tempdir().unwrap();
    for ((name, expect), id) in expectations().iter().zip(&ids) {
        let Expect::Ready { duration_s, .. } = expect else {
            continue;
        };
        if !["h264-aac.mp4", "vp9-opus.webm"].contains(name) {
            continue;
        }
        let url = server.url(&format!("/media/{id}/manifest.mpd"));
        let dir = out.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let played = tokio::task::spawn_blocking(move || common::vlc_remux(&url, &dir))
            .await
            .unwrap();
        let mut kinds = common::stream_kinds(&played);
        kinds.sort();
        assert_eq!(kinds, ["audio", "video"], "{name}: VLC played both sets");
        let played_s = common::probe_duration_s(&played);
        assert!(
            (played_s - duration_s).abs() < 0.3,
            "{name}: VLC {played_s} s of {duration_s} s"
        );
    }
}

/// Every video sample of an MP4, in order, with its sync flag; read with
/// the `mp4` crate, which reads progressive (non-fragmented) MP4 well.
fn video_samples(file: &Path) -> Vec<(bool, Vec<u8>)> {
    let reader = std::io::BufReader::new(std::fs::File::open(file).unwrap());
    let size = std::fs::metadata(file).unwrap().len();
    let mut mp4 = mp4::Mp4Reader::read_header(reader, size).unwrap();
    let track = mp4
        .tracks()
        .values()
        .find(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .map(|t| t.track_id())
        .expect("a video track");
    let count = mp4.sample_count(track).unwrap();
    (1..=count)
        .map(|n| {
            let sample = mp4.read_sample(track, n).unwrap().unwrap();
            (sample.is_sync, sample.bytes.to_vec())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_aac_is_copied_not_reencoded_and_segments_follow_its_keyframes() {
    let media = media();
    let server = Server::start(|_| {}).await;
    let source = media.path("h264-aac.mp4");
    let resp = post_import(&server, &source, "title=Holiday&name=h264-aac.mp4").await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = wait_done(&server, &id).await;
    assert_eq!(status["state"], "ready", "{status:#}");
    assert_eq!(status["title"], "Holiday");

    // Source keyframes at 0, 1.6, 3.2 s; 2 s target: segments close at the
    // first keyframe past 2 s, as EXTINF says.
    let playlist = server.text(&format!("/media/{id}/media.m3u8")).await;
    let extinf: Vec<&str> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .collect();
    assert_eq!(extinf, ["3.200,", "0.800,"], "{playlist}");

    // Remux the published HLS back into a progressive MP4 (a bitstream
    // copy) and compare every video sample with the source, byte for byte.
    let remuxed = media.dir.join(format!("remuxed-{id}.mp4"));
    let url = server.url(&format!("/media/{id}/index.m3u8"));
    ffmpeg(&remuxed, &["-i", &url, "-map", "0:v:0", "-c", "copy"]);
    let (ours, theirs) = (video_samples(&remuxed), video_samples(&source));
    assert_eq!(ours.len(), theirs.len(), "same number of frames");
    assert!(ours == theirs, "every frame is the source's, untouched");

    // The original is served back as uploaded, with its type and ranges.
    let original = server.get(&format!("/media/{id}/original")).await;
    assert_eq!(original.headers()["content-type"], "video/mp4");
    assert_eq!(
        original.bytes().await.unwrap(),
        std::fs::read(&source).unwrap()
    );
    let range = server
        .client
        .get(server.url(&format!("/media/{id}/original")))
        .header("range", "bytes=4-7")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(&range.bytes().await.unwrap()[..], b"ftyp");
}

/// A 413 with the limit in its message, which the client reads even while
/// it is still sending (the server reads a bounded rest before it answers).
async fn assert_refused_as_too_large(sent: reqwest::Result<reqwest::Response>) {
    let resp = sent.expect("an answer, not a reset connection");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("limit of 100000 bytes"), "{body}");
}

fn staging_is_empty(data: &Path) -> bool {
    std::fs::read_dir(data.join("staging")).map_or(true, |mut d| d.next().is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_import_limits_and_bad_requests() {
    let media = media();
    let server = Server::start(|c| c.max_import_bytes = 100_000).await;
    let big = media.path("h264-aac.mp4");
    assert!(std::fs::metadata(&big).unwrap().len() > 100_000);

    // Over the limit, declared up front and streamed without a length.
    let declared = server
        .client
        .post(server.url("/api/imports?name=big.mp4"))
        .body(std::fs::read(&big).unwrap())
        .send()
        .await;
    assert_refused_as_too_large(declared).await;
    let bytes = std::fs::read(&big).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = server
        .client
        .post(server.url("/api/imports?name=big.mp4"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    assert_refused_as_too_large(streamed).await;
    assert!(
        staging_is_empty(server.data.path()),
        "no partial upload left"
    );

    let empty = server
        .client
        .post(server.url("/api/imports"))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
    let listed: Vec<Value> = server.get("/api/recordings").await.json().await.unwrap();
    assert!(listed.is_empty(), "refused imports leave no recording");

    // An import takes no chunks.
    let small = media.path("audio-only.m4a");
    let created: Value = post_import(&server, &small, "").await.json().await.unwrap();
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["upload_token"].as_str().unwrap(),
    );
    assert_eq!(
        created["title"], "upload",
        "named after the generic file name"
    );
    let put = server.put(id, token, 0, b"x".to_vec()).await;
    assert_eq!(put.status(), 409);
    wait_done(&server, id).await;

    let keyed = Server::start(|c| c.publish_key = Some("k3y".into())).await;
    let refused = post_import(&keyed, &small, "").await;
    assert_eq!(refused.status(), 401);
    let allowed = keyed
        .client
        .post(keyed.url("/api/imports"))
        .bearer_auth("k3y")
        .body(std::fs::read(&small).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_imports_without_a_server_and_a_running_server_lists_them() {
    let media = media();
    let server = Server::start(|_| {}).await;
    let output = tokio::task::spawn_blocking({
        let data = server.data.path().to_path_buf();
        let files = [
            media.path("h264-aac.mp4"),
            media.path("notes.mp4"),
            media.path("vp9-opus.webm"),
            media.path("missing.mkv"),
            media.dir.clone(),
        ];
        move || {
            Command::new(env!("CARGO_BIN_EXE_segcast"))
                .args(["import", "--jobs", "2", "--data"])
                .arg(&data)
                .args(&files)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("notes.mp4 failed: not a media file (Invalid data found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing.mkv failed: no such file"),
        "{stderr}"
    );
    assert!(
        stderr.contains(" failed: not a file (a folder?"),
        "{stderr}"
    );
    assert!(stderr.contains("3 of 5 files failed"), "{stderr}");
    let ready_rows = stdout.lines().filter(|l| l.contains(" ready ")).count();
    assert_eq!(ready_rows, 2, "summary table:\n{stdout}");

    // The running server picks both finished imports up, and only those.
    let deadline = std::time::Instant::now() + IMPORT_LIMIT;
    let listed = loop {
        let listed: Vec<Value> = server.get("/api/recordings").await.json().await.unwrap();
        if listed.len() >= 2 || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut titles: Vec<&str> = listed
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    titles.sort();
    assert_eq!(titles, ["h264-aac", "vp9-opus"]);
    for status in &listed {
        let name = format!("{}.x", status["title"].as_str().unwrap());
        let expect = Expect::Ready {
            duration_s: if name.starts_with("h264") { 4.0 } else { 3.0 },
            codecs: &["avc1.", "mp4a.40.2"],
            incomplete: false,
        };
        check(&server, &name, status, &expect).await;
        assert!(
            status["poster"].is_string(),
            "poster made before the move: {status:#}"
        );
    }
    assert!(
        staging_is_empty(server.data.path()),
        "nothing left in staging"
    );
}

/// `segcast_segments_published_total` from `/metrics`; panics when the
/// server does not write it.
async fn segments_published(api: &Api) -> f64 {
    let metrics = api.text("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("segcast_segments_published_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no segcast_segments_published_total in:\n{metrics}"))
}

/// Whether ffprobe's duration of an MPD is `duration_s`. ffmpeg 5.1's DASH
/// demuxer keeps only the whole seconds of `mediaPresentationDuration`; a
/// demuxer that keeps the fraction reads the duration itself, within a
/// frame. Either is right.
fn mpd_reads_as(probed_s: f64, duration_s: f64) -> bool {
    (probed_s - duration_s.trunc()).abs() < 0.01 || (probed_s - duration_s).abs() < 0.05
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn wait_for_files(dir: &Path, want: &[&str]) {
    let deadline = std::time::Instant::now() + IMPORT_LIMIT;
    while files_in(dir) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{}: {:?}, want {want:?}",
            dir.display(),
            files_in(dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_imports_complete_files_and_files_them() {
    let media = media();
    let data = tempfile::tempdir().unwrap();
    let inbox = data.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // Present before the server starts: picked up by the start-up scan.
    std::fs::copy(media.path("vp9-opus.webm"), inbox.join("before.webm")).unwrap();
    let server = Server::start_in(data, |c| c.inbox_settle_ms = 200).await;
    // Taken (moved into the library) once the watcher is up and the scan ran:
    // from here on, the inbox sees files as they are written.
    wait_for_files(&inbox, &["done", "failed"]).await;

    // Renamed in, complete at once.
    let aside = server.data.path().join("notes.mp4");
    std::fs::copy(media.path("notes.mp4"), &aside).unwrap();
    std::fs::rename(&aside, inbox.join("notes.mp4")).unwrap();

    // Written slowly, pausing far longer than the settle time: a file still
    // open for writing is not taken half-written.
    let bytes = std::fs::read(media.path("h264-aac.mp4")).unwrap();
    {
        use std::io::Write;
        let mut slow = std::fs::File::create(inbox.join("slow.mp4")).unwrap();
        slow.write_all(&bytes[..bytes.len() / 2]).unwrap();
        slow.flush().unwrap();
        // The writer's own pace, not a wait for segcast.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        slow.write_all(&bytes[bytes.len() / 2..]).unwrap();
    }
    std::fs::write(inbox.join("ignored.mp4.part"), b"still downloading").unwrap();

    wait_for_files(&inbox.join("done"), &["before.webm", "slow.mp4"]).await;
    wait_for_files(&inbox.join("failed"), &["notes.mp4", "notes.mp4.error.txt"]).await;
    let reason = std::fs::read_to_string(inbox.join("failed/notes.mp4.error.txt")).unwrap();
    assert!(reason.starts_with("not a media file"), "{reason}");
    assert_eq!(
        std::fs::read(inbox.join("done/slow.mp4")).unwrap(),
        bytes,
        "filed as received"
    );
    assert_eq!(files_in(&inbox), ["done", "failed", "ignored.mp4.part"]);

    let listed: Vec<Value> = server.get("/api/recordings").await.json().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:#?}");
    for status in &listed {
        let expect = match status["title"].as_str().unwrap() {
            "before" => Expect::Ready {
                duration_s: 3.0,
                codecs: &["avc1.", "mp4a.40.2"],
                incomplete: false,
            },
            "slow" => Expect::Ready {
                duration_s: 4.0,
                codecs: &["avc1.", "mp4a.40.2"],
                incomplete: false,
            },
            "notes" => Expect::Failed("not a media file"),
            other => panic!("unexpected recording {other}"),
        };
        check(&server, status["title"].as_str().unwrap(), status, &expect).await;
    }
}

#[test]
fn mp4_headers_read_in_process_agree_with_ffprobe() {
    use media::probe::plan;
    use pipeline::transcode::probe::{probe_mp4, run_ffprobe};
    let media = media();
    for name in ["h264-aac.mp4", "no-audio.mp4", "audio-only.m4a"] {
        let file = media.path(name);
        let fast = probe_mp4(&file).unwrap_or_else(|| panic!("{name}: read in-process"));
        let full = run_ffprobe(Path::new("ffprobe"), &file).unwrap();
        assert_eq!(fast.video, full.video, "{name}");
        assert_eq!(fast.audio, full.audio, "{name}");
        assert_eq!(plan(&fast).video, plan(&full).video, "{name}");
        assert_eq!(plan(&fast).audio, plan(&full).audio, "{name}");
        let (a, b) = (fast.duration_ms.unwrap(), full.duration_ms.unwrap());
        assert!(a.abs_diff(b) <= 50, "{name}: {a} ms vs {b} ms");
    }
    // PCM audio, other containers, broken files: left to ffprobe.
    for name in [
        "h264-pcm.mov",
        "vp9-opus.webm",
        "truncated.mp4",
        "notes.mp4",
    ] {
        assert_eq!(probe_mp4(&media.path(name)), None, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_ffmpeg_dies_half_way_leaves_nothing_published() {
    let media = media();
    let scratch = tempfile::tempdir().unwrap();
    // Fault injection through the --ffmpeg seam: the output is cut off after
    // 800 kB (one 2 s segment is ~650 kB), then ffmpeg "fails".
    let wrapper = scratch.path().join("dying-ffmpeg");
    std::fs::write(
        &wrapper,
        "#!/bin/bash\nffmpeg \"$@\" | head -c 800000\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let server = Server::start(|c| c.ffmpeg = wrapper.clone()).await;
    let resp = post_import(&server, &media.path("vp9-opus.webm"), "name=dies.webm").await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = wait_done(&server, &id).await;
    assert_eq!(status["state"], "failed", "{status:#}");
    assert!(
        status["error"].as_str().unwrap().starts_with("ffmpeg"),
        "{status:#}"
    );
    // Segment 0 was published before the failure (the server's counter of
    // published segments says so, this being its only recording); it is
    // gone now: no playlist is left that would never end.
    let published = segments_published(&server).await;
    assert!(published >= 1.0, "nothing was published before the failure");
    assert_eq!(status["segments"], 0);
    assert_eq!(
        server
            .get(&format!("/media/{id}/media.m3u8"))
            .await
            .status(),
        404
    );
    let hls = server.data.path().join(format!("recordings/{id}/hls"));
    assert_eq!(
        files_in(&hls),
        Vec::<String>::new(),
        "nothing left published"
    );
    let original = server.get(&format!("/media/{id}/original")).await;
    assert_eq!(original.status(), 200, "the original is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_interrupted_by_a_crash_completes_after_the_restart() {
    let scratch = tempfile::tempdir().unwrap();
    // Long enough to be caught half way: ~10 s of transcoding here.
    let source = scratch.path().join("long.webm");
    common::make_test_media(
        &source,
        "640x360",
        16,
        &[&common::VP9_FAST[..], &["-c:a", "libopus"]].concat(),
    );
    let data = scratch.path().join("data");
    let (mut first, base) = common::spawn_server_process(&data, &[]);
    let api = Api::new(base);
    let resp = post_import(&api, &source, "name=long.webm").await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = api
        .wait_for(&id, IMPORT_LIMIT, |s| s["segments"].as_u64() >= Some(2))
        .await;
    assert_eq!(before["state"], "processing", "caught half way: {before:#}");
    let progress = before["progress"].as_f64().unwrap();
    assert!(
        progress > 0.0 && progress < 1.0,
        "progress while processing: {before:#}"
    );
    let playlist_before = api.text(&format!("/media/{id}/media.m3u8")).await;
    first.kill(); // SIGKILL

    let (mut second, base) = common::spawn_server_process(&data, &[]);
    let api = Api::new(base);
    let status = wait_done(&api, &id).await;
    let expect = Expect::Ready {
        duration_s: 16.0,
        codecs: &["avc1.", "mp4a.40.2"],
        incomplete: false,
    };
    check(&api, "long.webm", &status, &expect).await;
    let playlist_after = api.text(&format!("/media/{id}/media.m3u8")).await;
    let segments = |text: &str| -> Vec<(String, f32)> {
        m3u8_rs::parse_media_playlist_res(text.as_bytes())
            .unwrap()
            .segments
            .into_iter()
            .map(|s| (s.uri, s.duration))
            .collect()
    };
    let (before, after) = (segments(&playlist_before), segments(&playlist_after));
    assert!(after.len() > before.len(), "{playlist_after}");
    assert_eq!(
        after[..before.len()],
        before[..],
        "published segments kept as they were"
    );
    second.kill();
}
