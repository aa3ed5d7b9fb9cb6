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
    // Started after the creation: a node knows the recordings the catalog
    // had when it started (node leases, which will let a node answer for
    // recordings created elsewhere since, are still to come: issue #21).
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
    let listed: Vec<Value> = b
        .get(&format!("/api/recordings/{id}/comments"))
        .await
        .json()
        .await
        .unwrap();
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
