//! Several nodes on one PostgreSQL catalog (docs/http-contract.md, v3 "One
//! library for many nodes"): what a viewer on one node sees of what was
//! done through another. A real PostgreSQL, started by the test; two
//! servers sharing it, each with its own data directory.

mod common;

use std::time::Duration;

use common::db::Postgres;
use common::Server;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const KEY_SECRET: &str = "a key secret shared by the cluster's nodes";
/// The contract's bound for a comment to reach every node's sockets.
const FAN_OUT: Duration = Duration::from_secs(1);
/// How long anything else that should come may take.
const PATIENCE: Duration = Duration::from_secs(10);

async fn node(pg: &Postgres, node_url: &str) -> Server {
    let (url, node_url) = (pg.url.clone(), node_url.to_string());
    Server::start(move |c| {
        c.database = Some(url);
        c.key_secret = Some(KEY_SECRET.into());
        c.node_url = Some(node_url);
        c.node_lease_s = LEASE_S;
    })
    .await
}

/// A node reachable at its `--node-url` (its own listening address), as
/// the nodes of a cluster must be for each other.
async fn reachable_node(pg: &Postgres) -> Server {
    reachable_node_with(pg, None).await
}

/// [`reachable_node`], with its media mirrored to `store` (`s3://…`).
async fn reachable_node_with(pg: &Postgres, store: Option<&str>) -> Server {
    let store = store.map(|s| s.parse().unwrap());
    reachable_node_configured(pg, move |c| c.store = store).await
}

/// [`reachable_node`], configured further by `more`.
async fn reachable_node_configured(
    pg: &Postgres,
    more: impl FnOnce(&mut segcast::Config),
) -> Server {
    let url = pg.url.clone();
    let data = tempfile::tempdir().unwrap();
    Server::start_listening(data, move |c, base| {
        c.database = Some(url);
        c.key_secret = Some(KEY_SECRET.into());
        c.node_url = Some(base.to_string());
        c.node_lease_s = LEASE_S;
        more(c);
    })
    .await
}

/// Makes recording `id` nobody's, as rows from before ownership are.
async fn disown(pg: &Postgres, id: &str) {
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    sqlx::query("UPDATE recordings SET owner_url = NULL WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
}

/// A short lease, so that the tests of a lapsing one are quick.
const LEASE_S: u64 = 2;

/// The binary's arguments for a node of `pg` at `node_url`.
fn node_args<'a>(pg: &'a Postgres, node_url: &'a str) -> Vec<&'a str> {
    vec![
        "--database",
        &pg.url,
        "--key-secret",
        KEY_SECRET,
        "--node-url",
        node_url,
        "--node-lease-s",
        "2",
    ]
}

async fn healthz_node(base: &str) -> Value {
    let body: Value = reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["node"].clone()
}

async fn connect(base: &str, id: &str) -> (Ws, Vec<Value>) {
    let url = format!(
        "{}/api/recordings/{id}/comments/ws",
        base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = next_json(&mut ws, PATIENCE).await;
    assert_eq!(hello["type"], "history", "{hello}");
    (ws, hello["comments"].as_array().unwrap().clone())
}

/// The next text message within `within`, as JSON; panics on a close.
async fn next_json(ws: &mut Ws, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no message within {within:?}"))
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A socket's `comment` message as the comment itself.
fn comment_of(message: &Value) -> Value {
    assert_eq!(message["type"], "comment", "{message}");
    let mut comment = message.clone();
    comment.as_object_mut().unwrap().remove("type");
    comment
}

/// Posts through `server`; answers with the stored comment. A `503` (the
/// database's connections being made again) is retried, as clients do.
/// A recording's comments as `GET …/comments` lists them on `server`.
async fn comments_of(server: &Server, id: &str) -> Vec<Value> {
    let listed = server.get(&format!("/api/recordings/{id}/comments")).await;
    listed.json().await.unwrap()
}

async fn post(server: &Server, id: &str, author: &str, text: &str) -> Value {
    let url = server.url(&format!("/api/recordings/{id}/comments"));
    let body = json!({ "author": author, "text": text, "media_time_s": 1.5 });
    for _ in 0..20 {
        let resp = server.client.post(&url).json(&body).send().await.unwrap();
        match resp.status().as_u16() {
            201 => return resp.json().await.unwrap(),
            503 => tokio::time::sleep(Duration::from_millis(250)).await,
            other => panic!("posting: {other} {}", resp.text().await.unwrap()),
        }
    }
    panic!("the comment was never stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_done_through_one_node_reaches_sockets_on_the_other() {
    let pg = Postgres::start();
    let a = node(&pg, "http://127.0.0.1:7001").await;
    let (id, token) = a.create("two nodes").await;
    // A recording every node runs, as one from before recordings had an
    // owner (or imported by `segcast import`): each node's sockets are its
    // own, and only the notices bring them the others' comments.
    disown(&pg, &id).await;
    let b = node(&pg, "http://127.0.0.1:7002").await;
    let (mut on_a, _) = connect(&a.base, &id).await;
    let (mut on_b, history) = connect(&b.base, &id).await;
    assert!(history.is_empty(), "{history:?}");

    // Each way: the other node's socket within the contract's second, and
    // the poster's own node too.
    for (from_b, text) in [(true, "posted on B"), (false, "posted on A")] {
        let (from, to_ws, own_ws) = if from_b {
            (&b, &mut on_a, &mut on_b)
        } else {
            (&a, &mut on_b, &mut on_a)
        };
        let posted = post(from, &id, "Ann", text).await;
        let seen = next_json(to_ws, FAN_OUT).await;
        assert_eq!(
            comment_of(&seen),
            posted,
            "the other node sends it as stored"
        );
        let own = next_json(own_ws, PATIENCE).await;
        assert_eq!(comment_of(&own), posted);
    }

    // A deletion through B reaches A's socket; a socket opened on A later
    // has the same history as B's list.
    let listed = comments_of(&b, &id).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = listed[0]["id"].as_str().unwrap().to_string();
    let resp = b
        .client
        .delete(b.url(&format!("/api/recordings/{id}/comments/{first}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let seen = next_json(&mut on_a, FAN_OUT).await;
    assert_eq!(seen, json!({ "type": "deleted", "id": first }));
    assert_eq!(next_json(&mut on_b, PATIENCE).await["id"], first.as_str());
    let (_, history) = connect(&a.base, &id).await;
    assert_eq!(history, listed[1..], "A holds what the catalog holds");

    // The listening connections are cut and cannot be made again for a
    // while (as in a network failure): a comment posted meanwhile still
    // reaches B once it listens again, and only once.
    // From another database: PostgreSQL will not lock out the current one.
    let admin_url = format!("{}template1", pg.url.trim_end_matches("postgres"));
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    let allow = |yes: bool| {
        let sql = format!("ALTER DATABASE postgres ALLOW_CONNECTIONS {yes}");
        let admin = admin.clone();
        async move { sqlx::query(&sql).execute(&admin).await.unwrap() }
    };
    allow(false).await;
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'segcast' AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(cut, [true, true], "one listener per node");
    // Gone, not only signalled: a dying backend could still deliver.
    let listening = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'segcast' AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&admin)
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while listening().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listeners live on"
        );
        tokio::task::yield_now().await;
    }
    let posted = post(&a, &id, "Ann", "posted while B was not listening").await;
    allow(true).await;
    let seen = next_json(&mut on_b, PATIENCE).await;
    assert_eq!(comment_of(&seen), posted);
    let later = post(&a, &id, "Ann", "and one after").await;
    let seen = next_json(&mut on_b, PATIENCE).await;
    assert_eq!(comment_of(&seen), later, "nothing sent twice");

    // The recording deleted through A: B's socket is closed.
    assert_eq!(a.delete(&id, &token).await.status(), 204);
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match on_b.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "B's socket still open after the deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_url_is_held_by_one_running_node_at_a_time() {
    let pg = Postgres::start();
    let url = "http://127.0.0.1:7003";
    let first = node(&pg, url).await;
    assert_eq!(healthz_node(&first.base).await, url);

    // A second process with the same URL while the first runs: refused,
    // once it has seen the lease renewed past its own lapse.
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_segcast"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args(node_args(&pg, url))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second node with {url} started");
    assert!(
        stderr.contains("is held by another running node"),
        "{stderr}"
    );
    assert_eq!(
        healthz_node(&first.base).await,
        url,
        "the first one serves on"
    );

    // Stopped cleanly, the first gives the URL back: the next start takes it.
    drop(first.stop().await);
    let (mut second, base) = common::spawn_server_process(data.path(), &node_args(&pg, url));
    assert_eq!(healthz_node(&base).await, url);
    // Killed, it keeps the URL until its lease lapses; a restart waits
    // that out and then serves.
    second.kill();
    let (_third, base) = common::spawn_server_process(data.path(), &node_args(&pg, url));
    assert_eq!(healthz_node(&base).await, url);
}

/// A recording runs on the node that created it; the other node answers
/// for it all the same, by handing its requests to the owner: status,
/// chunks, playlists (blocking reloads too), segments, comments and their
/// socket, `finish`. Once the owner is gone, `503` with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_answers_for_a_recording_its_owner_runs() {
    let pg = Postgres::start();
    let a = reachable_node(&pg).await;
    let b = reachable_node(&pg).await;
    assert_eq!(healthz_node(&b.base).await, b.base);
    let (id, token) = a.create("made on A").await;
    let through_b = b.get(&format!("/api/recordings/{id}")).await;
    assert_eq!(through_b.status(), 200);
    assert_eq!(through_b.headers()["via"], "1.1 segcast");
    let status: Value = through_b.json().await.unwrap();
    assert_eq!(
        (status["id"].as_str(), status["state"].as_str()),
        (Some(id.as_str()), Some("recording"))
    );
    let (mut socket_on_b, history) = connect(&b.base, &id).await;
    assert!(history.is_empty(), "{history:?}");
    b.create("made on B").await;
    let listed: Vec<Value> = b.get("/api/recordings").await.json().await.unwrap();
    let titles: Vec<&str> = listed
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["made on B", "made on A"],
        "the whole cluster, newest first"
    );
    let first = b.get("/api/recordings?limit=1").await;
    let next = first.headers()["link"].to_str().unwrap().to_string();
    let next = next
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let page: Vec<Value> = b.get(&next).await.json().await.unwrap();
    assert_eq!(page.len(), 1, "{page:?}");
    assert_eq!(page[0]["id"], id.as_str(), "the second page is A's");

    // Uploaded entirely through B; A runs it.
    let media = tempfile::tempdir().unwrap();
    let source = common::make_webm(media.path(), 4, "320x180");
    let chunks = common::cut_randomly(&std::fs::read(source).unwrap(), 6, 7);
    for (seq, chunk) in chunks.iter().enumerate() {
        b.put_ok(&id, &token, seq as u64, chunk.clone()).await;
    }
    let on_a = a.status(&id).await;
    assert_eq!(on_a["chunks"]["received"], chunks.len(), "{on_a:#}");
    let live = b
        .wait_for(&id, PATIENCE, |s| s["segments"].as_u64() > Some(0))
        .await;
    assert_eq!(live["state"], "recording", "{live:#}");

    // A node started since loads the recording's row but leaves it to A
    // (a task of its own would take chunks beside A's).
    let c = reachable_node(&pg).await;
    let through_c = c.get(&format!("/api/recordings/{id}")).await;
    assert_eq!(
        through_c.headers().get("via").map(|v| v.as_bytes()),
        Some(&b"1.1 segcast"[..])
    );

    // The same playlist and segment bytes through either node.
    let media_playlist = format!("/media/{id}/media.m3u8");
    let (from_a, from_b) = (a.text(&media_playlist).await, b.text(&media_playlist).await);
    let segment = from_a
        .lines()
        .find(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no segment in {from_a}"))
        .to_string();
    assert!(from_b.contains(&segment), "{from_b}");
    let bytes = |server: &Server| {
        let url = server.url(&format!("/media/{id}/{segment}"));
        async move { reqwest::get(url).await.unwrap().bytes().await.unwrap() }
    };
    assert_eq!(bytes(&a).await, bytes(&b).await);

    // A comment posted through A reaches the socket opened on B.
    let posted = post(&a, &id, "Ann", "seen through B").await;
    assert_eq!(
        comment_of(&next_json(&mut socket_on_b, FAN_OUT).await),
        posted
    );

    // Finished through B: ready, and ffmpeg plays it through B.
    assert_eq!(
        b.finish(&id, &token, chunks.len() as u64).await.status(),
        202
    );
    let done = b
        .wait_for(&id, PATIENCE * 3, |s| {
            s["state"] != "processing" && s["state"] != "recording"
        })
        .await;
    assert_eq!(done["state"], "ready", "{done:#}");
    let errors = common::decode_errors(&b.url(&format!("/media/{id}/index.m3u8")));
    assert!(errors.is_empty(), "decoding through B: {errors}");

    // The owner gone (its lease given back): B answers status and comments
    // from the catalog, and what needs the owner with a reason to retry.
    drop(a.stop().await);
    let status = b.status(&id).await;
    assert_eq!(
        (status["id"].as_str(), status["state"].as_str()),
        (Some(id.as_str()), Some("ready")),
        "{status:#}"
    );
    assert!(status["segments"].as_u64() > Some(0), "{status:#}");
    let listed = comments_of(&b, &id).await;
    assert_eq!(listed, [posted], "the comments, from the catalog");
    let gone = b.put(&id, &token, 0, chunks[0].clone()).await;
    assert_eq!(gone.headers()["retry-after"], "5");
    let message = common::assert_error(gone, 503).await;
    assert!(message.contains("stopped renewing its lease"), "{message}");
}

/// What a cluster node acknowledged is in the bucket (a chunk's `2xx` waits
/// for it), and a finished recording outlives its node: once the node is
/// gone, the next node asked for it restores it from the bucket, makes it
/// its own in the catalog and serves it, the same playlist and segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_recording_outlives_its_node_through_the_bucket() {
    use object_store::ObjectStore;
    const BUCKET: &str = "cluster";
    let site = common::s3::S3Site::new(BUCKET);
    let mut s3 = site.start();
    let store = format!("s3://{BUCKET}/vod");
    let pg = Postgres::start();
    let a = reachable_node_with(&pg, Some(&store)).await;
    let b = reachable_node_with(&pg, Some(&store)).await;
    let (id, token) = a.create("kept in the bucket").await;
    let media = tempfile::tempdir().unwrap();
    let source = common::make_webm(media.path(), 3, "320x180");
    let chunks = common::cut_randomly(&std::fs::read(source).unwrap(), 4, 3);
    let (last, first) = chunks.split_last().unwrap();
    a.put_all_ok(&id, &token, first).await;
    // Acknowledged means in the bucket too: the same bytes, at once.
    let bucket = common::s3::S3::bucket(BUCKET);
    for (seq, chunk) in first.iter().enumerate() {
        let name = store::mirror::chunk_name(seq as u64);
        let key = object_store::path::Path::from(format!("vod/{id}/{name}"));
        let stored = bucket.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored, chunk[..], "chunk {seq} in the bucket");
    }
    // The bucket down: stored on A, not acknowledged; the retry is.
    s3.stop();
    let seq = first.len() as u64;
    let refused = a.put(&id, &token, seq, last.clone()).await;
    assert_eq!(refused.headers()["retry-after"], "5");
    let message = common::assert_error(refused, 503).await;
    assert!(message.contains("not yet in the bucket"), "{message}");
    let _s3 = site.start();
    let retried = a.put(&id, &token, seq, last.clone()).await;
    assert_eq!(retried.status(), 200, "on disk already: a duplicate");
    let name = store::mirror::chunk_name(seq);
    let key = object_store::path::Path::from(format!("vod/{id}/{name}"));
    assert_eq!(
        bucket.get(&key).await.unwrap().bytes().await.unwrap(),
        last[..]
    );
    a.finish_ok(&id, &token, chunks.len() as u64).await;
    let ready = a
        .wait_for(&id, PATIENCE * 3, |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert_eq!(ready["state"], "ready", "{ready:#}");
    // Complete in the bucket: its marker is the last object written.
    let marker = object_store::path::Path::from(format!("vod/{id}/in-bucket.json"));
    let deadline = tokio::time::Instant::now() + PATIENCE * 3;
    while bucket.head(&marker).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never complete in the bucket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let playlist = format!("/media/{id}/media.m3u8");
    let served_by_a = a.text(&playlist).await;
    drop(a.stop().await);

    let from_b = b.get(&playlist).await;
    assert_eq!(from_b.status(), 200);
    assert!(from_b.headers().get("via").is_none(), "served by B itself");
    assert_eq!(from_b.text().await.unwrap(), served_by_a);
    let errors = common::decode_errors(&b.url(&format!("/media/{id}/index.m3u8")));
    assert!(errors.is_empty(), "decoding on B: {errors}");
    assert_eq!(b.status(&id).await["state"], "ready");
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let owner: Option<String> =
        sqlx::query_scalar("SELECT owner_url FROM recordings WHERE id = $1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(owner.as_deref(), Some(b.base.as_str()));
}

/// Viewers on one node of another node's recording are that many clients
/// to the owner, not one: the nodes trust each other's `X-Forwarded-For`
/// and hold each other to no per-client cap. Each viewer here comes from
/// its own loopback address; the nodes connect from 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_no_single_client_to_another() {
    const VIEWERS: u8 = 6;
    let pg = Postgres::start();
    let two_each = |c: &mut segcast::Config| c.max_connections_per_client = 2;
    // B is up (its lease taken) before A starts, so A trusts it from its
    // first answer on; B learns of A as it renews.
    let b = reachable_node_configured(&pg, two_each).await;
    assert_eq!(healthz_node(&b.base).await, b.base);
    let a = reachable_node_configured(&pg, two_each).await;
    let (id, token) = a.create("watched through B").await;
    // Each waits on B for part 0, which comes with the first chunks.
    let blocking = b.url(&format!("/media/{id}/media.m3u8?_HLS_msn=0&_HLS_part=0"));
    let waiters: Vec<_> = (0..VIEWERS)
        .map(|i| {
            let client = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, 10 + i]))
                .build()
                .unwrap();
            let url = blocking.clone();
            tokio::spawn(async move { client.get(url).send().await.unwrap() })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let waiting = common::waiting_requests(&a).await;
        if waiting == f64::from(VIEWERS) {
            break;
        }
        if let Some(done) = waiters.iter().position(|w| w.is_finished()) {
            let answer = waiters.into_iter().nth(done).unwrap().await.unwrap();
            panic!(
                "viewer {done} was answered {} instead of held",
                answer.status()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} waiting on A"
        );
        tokio::task::yield_now().await;
    }
    let media = tempfile::tempdir().unwrap();
    let source = common::make_webm(media.path(), 2, "320x180");
    let chunks = common::cut_randomly(&std::fs::read(source).unwrap(), 3, 5);
    a.put_all_ok(&id, &token, &chunks).await;
    for waiter in waiters {
        let answer = waiter.await.unwrap();
        assert_eq!(answer.status(), 200);
        assert!(answer.text().await.unwrap().contains("#EXT-X-PART:"));
    }
}
