//! Private recordings, share links, AES-128 encryption and HTTPS
//! (docs/http-contract.md, "Private recordings, share links, encryption,
//! TLS"): a real segcast, real ffmpeg and VLC, real TLS.

mod common;

use std::time::Duration;

use common::{
    assert_error, decode_errors, make_webm, probe_duration_s, stream_kinds, vlc_remux, Api, Server,
};
use serde_json::{json, Value};

const READY_LIMIT: Duration = Duration::from_secs(90);
const PUBLISH_KEY: &str = "operator-key-for-tests";
const SECRET: &str = "a test secret of enough bytes";

async fn start() -> Server {
    Server::start(|c| {
        c.publish_key = Some(PUBLISH_KEY.into());
        c.token_secret = Some(SECRET.into());
    })
    .await
}

/// Creates a recording as the operator; returns (id, upload token).
async fn create(api: &Api, body: Value) -> (String, String) {
    api.create_with(body, Some(PUBLISH_KEY)).await
}

/// Uploads `secs` of webcam-like WebM in 4 chunks and finishes; waits until ready.
async fn record(api: &Api, dir: &std::path::Path, id: &str, token: &str, secs: u32) -> Value {
    let source = std::fs::read(make_webm(dir, secs, "320x240")).unwrap();
    let chunks: Vec<Vec<u8>> = source
        .chunks(source.len() / 4 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    api.put_all_ok(id, token, &chunks).await;
    api.finish_ok(id, token, chunks.len() as u64).await;
    let deadline = std::time::Instant::now() + READY_LIMIT;
    loop {
        let status = api.status_as(id, token).await;
        if status["state"] == "ready"
            && (status["encrypted"] == true || status["poster"].is_string())
        {
            return status;
        }
        assert_ne!(status["state"], "failed", "{status:#}");
        assert!(
            std::time::Instant::now() < deadline,
            "not ready: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn share(api: &Api, id: &str, owner: &str, expires_in_s: Option<u64>) -> reqwest::Response {
    let body = expires_in_s.map_or(json!({}), |s| json!({ "expires_in_s": s }));
    api.client
        .post(api.url(&format!("/api/recordings/{id}/share")))
        .bearer_auth(owner)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn share_token(api: &Api, id: &str, owner: &str) -> Value {
    let resp = share(api, id, owner, Some(600)).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

/// Every resource of a recording a viewer may fetch (GETs).
fn resources(id: &str) -> Vec<String> {
    ["".to_string(), "/comments".into()]
        .iter()
        .map(|p| format!("/api/recordings/{id}{p}"))
        .chain(
            [
                "index.m3u8",
                "media.m3u8",
                "audio.m3u8",
                "manifest.mpd",
                "init.mp4",
                "audio-init.mp4",
                "seg-00000.m4s",
                "audio-seg-00000.m4s",
                "part-000000.m4s",
                "audio-part-000001.m4s",
                "poster.jpg",
                "original",
            ]
            .iter()
            .map(|f| format!("/media/{id}/{f}")),
        )
        .collect()
}

async fn get_with(api: &Api, path: &str, query_token: Option<&str>) -> reqwest::Response {
    let mut url = api.url(path);
    if let Some(token) = query_token {
        url.push_str(&format!("?token={token}"));
    }
    api.client.get(url).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_recording_opens_only_to_its_tokens() {
    let server = start().await;
    let (id, owner) = create(&server, json!({ "title": "private", "access": "private" })).await;
    let (other_id, other_owner) = create(&server, json!({ "access": "private" })).await;
    let (public_id, public_owner) = create(&server, json!({ "title": "public" })).await;
    let status = record(&server, server.data.path(), &id, &owner, 4).await;
    assert_eq!(status["access"], "private");
    record(&server, server.data.path(), &public_id, &public_owner, 3).await;

    // Anonymous: 401 on every resource, the comment socket included.
    for path in resources(&id) {
        let resp = get_with(&server, &path, None).await;
        let message = assert_error(resp, 401).await;
        assert!(message.contains("private"), "{path}: {message}");
    }
    let post = server
        .client
        .post(server.url(&format!("/api/recordings/{id}/comments")))
        .json(&json!({"author": "a", "text": "hi", "media_time_s": 0.0}))
        .send()
        .await
        .unwrap();
    assert_error(post, 401).await;
    let ws_url = server
        .url(&format!("/api/recordings/{id}/comments/ws"))
        .replacen("http", "ws", 1);
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("the socket opened anonymously: {:?}", other.map(|_| ())),
    }

    // The owner reads everything with the upload token; so does the operator.
    for path in resources(&id) {
        for credential in [&owner, PUBLISH_KEY] {
            let resp = server
                .client
                .get(server.url(&path))
                .bearer_auth(credential)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path}");
        }
    }

    // Sharing needs the owner.
    assert_error(share(&server, &id, "not-the-token", None).await, 401).await;
    assert_error(share(&server, &id, &other_owner, None).await, 401).await;
    assert_error(share(&server, &id, &owner, Some(0)).await, 400).await;
    assert_error(share(&server, &id, &owner, Some(31 * 24 * 3600)).await, 400).await;
    let link = share_token(&server, &id, &owner).await;
    let token = link["token"].as_str().unwrap();
    assert_eq!(link["watch"], format!("/watch/{id}?token={token}"));
    assert_eq!(link["hls"], format!("/media/{id}/index.m3u8?token={token}"));
    assert_eq!(
        link["dash"],
        format!("/media/{id}/manifest.mpd?token={token}")
    );
    let expires_at = time::OffsetDateTime::parse(
        link["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_s = (expires_at - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((590..=600).contains(&in_s), "{in_s}");

    // A share token opens everything, in the query or as Bearer.
    for path in resources(&id) {
        assert_eq!(
            get_with(&server, &path, Some(token)).await.status(),
            200,
            "{path}"
        );
        let resp = server
            .client
            .get(server.url(&path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let with_token: Value = get_with(&server, &format!("/api/recordings/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        with_token["hls"], link["hls"],
        "the status' URLs carry the token"
    );
    let segment = get_with(&server, &format!("/media/{id}/seg-00000.m4s"), Some(token)).await;
    assert_eq!(
        segment.headers()["cache-control"],
        "private, max-age=31536000, immutable"
    );
    let (ws, _) = tokio_tungstenite::connect_async(format!("{ws_url}?token={token}"))
        .await
        .unwrap();
    drop(ws);
    let post = server
        .client
        .post(server.url(&format!("/api/recordings/{id}/comments?token={token}")))
        .json(&json!({"author": "a", "text": "hi", "media_time_s": 0.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 201);

    // Tampered, expired, for another recording, or an upload token of another: 403.
    let tampered = {
        let (expiry, mac) = token.split_once('.').unwrap();
        format!("{}.{mac}", expiry.parse::<u64>().unwrap() + 3600)
    };
    let signer = store::share::ShareSigner::new(SECRET.as_bytes().to_vec());
    let expired = signer.sign(&id, base::clock::unix_s() - 1);
    let other_link = share_token(&server, &other_id, &other_owner).await;
    let other_token = other_link["token"].as_str().unwrap();
    for (bad, why) in [
        (tampered.as_str(), "tampered"),
        (expired.as_str(), "expired"),
        (other_token, "other recording"),
        ("12.garbage", "garbage"),
    ] {
        for path in resources(&id) {
            let message = assert_error(get_with(&server, &path, Some(bad)).await, 403).await;
            if why == "expired" {
                assert!(message.contains("expired"), "{message}");
            }
        }
    }
    let resp = server
        .client
        .get(server.url(&format!("/media/{id}/index.m3u8")))
        .bearer_auth(&other_owner)
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    // A token signed with the right secret for this id opens it: the
    // secret, not a table, is what matters.
    assert_eq!(
        get_with(
            &server,
            &format!("/media/{id}/media.m3u8"),
            Some(&signer.sign(&id, base::clock::unix_s() + 60))
        )
        .await
        .status(),
        200
    );

    // Listed only to the publish key.
    let listed = |list: Value| {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let anonymous = listed(server.get("/api/recordings").await.json().await.unwrap());
    assert!(
        anonymous.contains(&public_id)
            && !anonymous.contains(&id)
            && !anonymous.contains(&other_id),
        "{anonymous:?}"
    );
    let operator = listed(
        server
            .client
            .get(server.url("/api/recordings"))
            .bearer_auth(PUBLISH_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert!(
        operator.contains(&id) && operator.contains(&other_id) && operator.contains(&public_id)
    );

    // A public recording is as before: no token needed, a bad one ignored.
    for path in resources(&public_id) {
        assert_eq!(get_with(&server, &path, None).await.status(), 200, "{path}");
        assert_eq!(
            get_with(&server, &path, Some("12.garbage")).await.status(),
            200,
            "{path}"
        );
    }
    let public_segment = server
        .get(&format!("/media/{public_id}/seg-00000.m4s"))
        .await;
    assert_eq!(
        public_segment.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    server.stop().await;
}

/// Every URI a playlist lists, as written.
fn listed_uris(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            let mut rest = line;
            while let Some(start) = rest.find("URI=\"") {
                let value = &rest[start + 5..];
                let end = value.find('"').unwrap();
                uris.push(value[..end].to_string());
                rest = &value[end..];
            }
        } else if !line.trim().is_empty() {
            uris.push(line.trim().to_string());
        }
    }
    uris
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_link_plays_in_ffmpeg_and_vlc() {
    let server = start().await;
    let (id, owner) = create(&server, json!({ "access": "private" })).await;
    record(&server, server.data.path(), &id, &owner, 4).await;
    let link = share_token(&server, &id, &owner).await;
    let token = link["token"].as_str().unwrap();
    // Every URI of every playlist and of the manifest carries the token.
    for name in ["index.m3u8", "media.m3u8", "audio.m3u8"] {
        let text = server
            .text(&format!("/media/{id}/{name}?token={token}"))
            .await;
        let uris = listed_uris(&text);
        assert!(!uris.is_empty(), "{text}");
        for uri in uris {
            assert!(uri.ends_with(&format!("?token={token}")), "{name}: {uri}");
        }
    }
    let mpd = server
        .text(&format!("/media/{id}/manifest.mpd?token={token}"))
        .await;
    assert_eq!(
        mpd.matches(&format!(".m4s?token={token}\"")).count(),
        2,
        "{mpd}"
    );
    assert_eq!(
        mpd.matches(&format!(".mp4?token={token}\"")).count(),
        2,
        "{mpd}"
    );
    let dash = server.url(link["dash"].as_str().unwrap());
    assert_eq!(
        decode_errors(&dash),
        "",
        "ffmpeg decodes the shared manifest"
    );

    let url = server.url(link["hls"].as_str().unwrap());
    assert_eq!(
        decode_errors(&url),
        "",
        "ffmpeg decodes every frame of the shared link"
    );
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("ffmpeg.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i", &url, "-c", "copy", "-y"])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let duration = probe_duration_s(&copy);
    assert!((3.5..=4.5).contains(&duration), "ffmpeg: {duration}");
    let played = vlc_remux(&url, tmp.path());
    let mut kinds = stream_kinds(&played);
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"]);
    let duration = probe_duration_s(&played);
    assert!((3.5..=4.5).contains(&duration), "VLC: {duration}");
    // Without the token nothing plays.
    assert_ne!(
        decode_errors(&server.url(&format!("/media/{id}/index.m3u8"))),
        ""
    );
    server.stop().await;
}

/// AES-128-CBC with PKCS7, straight from the RustCrypto crates.
fn decrypt(key: &[u8], iv: &[u8], bytes: &[u8]) -> Option<Vec<u8>> {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
        .ok()?
        .decrypt_padded_vec_mut::<Pkcs7>(bytes)
        .ok()
}

/// The IV of the last `EXT-X-KEY` before `line_index`.
fn iv_before(lines: &[&str], line_index: usize) -> Vec<u8> {
    let key_line = lines[..line_index]
        .iter()
        .rev()
        .find(|l| l.starts_with("#EXT-X-KEY:"))
        .expect("a key in force");
    assert!(
        key_line.contains("METHOD=AES-128") && key_line.contains("URI=\"key?token="),
        "{key_line}"
    );
    let iv = key_line.split("IV=0x").nth(1).unwrap();
    hex::decode(&iv[..32]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_recording_plays_only_with_its_key() {
    let server = start().await;
    let (id, owner) = create(&server, json!({ "access": "private", "encrypt": true })).await;
    let source = std::fs::read(make_webm(server.data.path(), 6, "320x240")).unwrap();
    let chunks: Vec<Vec<u8>> = source
        .chunks(source.len() / 6 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let link = share_token(&server, &id, &owner).await;
    let token = link["token"].as_str().unwrap().to_string();
    assert!(
        link["dash"].is_null(),
        "no DASH for encrypted media: {link}"
    );

    // The key: only with a valid token, never cached.
    let key_path = format!("/media/{id}/key");
    assert_error(get_with(&server, &key_path, None).await, 401).await;
    assert_error(get_with(&server, &key_path, Some("1.bad")).await, 403).await;
    let resp = get_with(&server, &key_path, Some(&token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "private, no-store");
    let key = resp.bytes().await.unwrap().to_vec();
    assert_eq!(key.len(), 16);

    // Live: a part listed in the playlist decrypts on its own, with the
    // IV of the key in force where it is listed (what hls.js uses).
    server.put_all_ok(&id, &owner, &chunks[..3]).await;
    let deadline = std::time::Instant::now() + READY_LIMIT;
    let (lines, part_line) = loop {
        let text = server
            .text(&format!("/media/{id}/media.m3u8?token={token}"))
            .await;
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if let Some(i) = lines.iter().rposition(|l| l.starts_with("#EXT-X-PART:")) {
            if lines.iter().any(|l| l.starts_with("#EXTINF")) {
                break (lines, i);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no parts listed: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let map = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-MAP"))
        .unwrap();
    let first_key = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-KEY"))
        .unwrap();
    assert!(map < first_key, "the init segment stays in the clear");
    for (i, line) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("#EXT-X-PART:"))
        .take(4)
        .chain([(part_line, &lines[part_line])])
    {
        let uri = line
            .split("URI=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let part = server
            .client
            .get(server.url(&format!("/media/{id}/{uri}")))
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 200, "{uri}");
        let bytes = part.bytes().await.unwrap();
        assert_ne!(
            &bytes[4..8],
            b"moof",
            "{uri} is stored and served encrypted"
        );
        let plain = decrypt(&key, &iv_before(&lines, i), &bytes)
            .unwrap_or_else(|| panic!("{uri} does not decrypt"));
        assert_eq!(&plain[4..8], b"moof", "{uri}");
    }

    for (seq, chunk) in chunks.iter().enumerate().skip(3) {
        server.put_ok(&id, &owner, seq as u64, chunk.clone()).await;
    }
    server.finish_ok(&id, &owner, chunks.len() as u64).await;
    let deadline = std::time::Instant::now() + READY_LIMIT;
    let status = loop {
        let status = server.status_as(&id, &owner).await;
        if status["state"] == "ready" {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["encrypted"], true);
    assert!(
        status["dash"].is_null() && status["poster"].is_null(),
        "{status:#}"
    );
    assert_error(
        get_with(&server, &format!("/media/{id}/manifest.mpd"), Some(&token)).await,
        404,
    )
    .await;

    // Stored segments do not decode; decrypted with the key they do.
    let hls = server.data.path().join(format!("recordings/{id}/hls"));
    let tmp = tempfile::tempdir().unwrap();
    let mut stored = std::fs::read(hls.join("init.mp4")).unwrap();
    let segment = std::fs::read(hls.join("seg-00000.m4s")).unwrap();
    stored.extend_from_slice(&segment);
    let stored_path = tmp.path().join("stored.mp4");
    std::fs::write(&stored_path, &stored).unwrap();
    assert_ne!(
        decode_errors(stored_path.to_str().unwrap()),
        "",
        "a stored segment must not decode"
    );
    let ended = server
        .text(&format!("/media/{id}/media.m3u8?token={token}"))
        .await;
    let ended_lines: Vec<&str> = ended.lines().collect();
    let seg0 = ended_lines
        .iter()
        .position(|l| l.starts_with("seg-00000.m4s"))
        .unwrap();
    let mut clear = std::fs::read(hls.join("init.mp4")).unwrap();
    clear.extend(decrypt(&key, &iv_before(&ended_lines, seg0), &segment).unwrap());
    let clear_path = tmp.path().join("clear.mp4");
    std::fs::write(&clear_path, &clear).unwrap();
    assert_eq!(
        decode_errors(clear_path.to_str().unwrap()),
        "",
        "the same segment, decrypted, decodes"
    );
    // The key is nowhere under the media.
    for entry in walk(&server.data.path().join("recordings")) {
        assert_ne!(
            std::fs::read(&entry).unwrap(),
            key,
            "{} holds the key",
            entry.display()
        );
    }

    // The share link plays: ffmpeg (every frame) and VLC.
    let url = server.url(&format!("/media/{id}/index.m3u8?token={token}"));
    assert_eq!(
        decode_errors(&url),
        "",
        "ffmpeg decodes the encrypted recording"
    );
    let copy = tmp.path().join("ffmpeg.mkv");
    let ran = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i", &url, "-c", "copy", "-y"])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(ran.success());
    let duration = probe_duration_s(&copy);
    assert!((5.5..=6.5).contains(&duration), "ffmpeg: {duration}");
    // VLC decrypts with the key it fetches: audio and video, from more
    // than one segment. That every second plays is ffmpeg's check above;
    // on a loaded machine VLC was seen to play 4.0 s of the 6 s that
    // ffmpeg had just read whole from the same URL.
    let played = vlc_remux(&url, tmp.path());
    let mut kinds = stream_kinds(&played);
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"]);
    let duration = probe_duration_s(&played);
    assert!((2.5..=6.5).contains(&duration), "VLC: {duration}");
    server.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_the_record_page_and_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let server = Server::start(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let base = format!("https://localhost:{port}");
    let root = reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let page = client.get(format!("{base}/record")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text().await.unwrap().contains("<html"),
        "the record page"
    );
    let created = client
        .post(format!("{base}/api/recordings"))
        .json(&json!({"title": "over TLS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    let status = client
        .get(format!(
            "{base}/api/recordings/{}",
            body["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    // A segment large enough to be memory-mapped (src/http/zero_copy.rs):
    // over TLS its mapped bytes are encrypted as they are, not sendfile'd.
    let id = body["id"].as_str().unwrap();
    let hls = server.data.path().join("recordings").join(id).join("hls");
    std::fs::create_dir_all(&hls).unwrap();
    let segment: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(hls.join("seg-00007.m4s"), &segment).unwrap();
    let served = client
        .get(format!("{base}/media/{id}/seg-00007.m4s"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert!(
        served.bytes().await.unwrap() == segment[..],
        "the segment over TLS"
    );
    // A client that does not trust the certificate refuses the server,
    // and plain HTTP gets no answer from the TLS port.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());
    let plain = reqwest::Client::new()
        .get(format!("http://localhost:{port}/healthz"))
        .send()
        .await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));
    server.stop().await;
}
