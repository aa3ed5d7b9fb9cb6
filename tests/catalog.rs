//! The library's catalog as users meet it (docs/http-contract.md, v3 "One
//! library for many nodes"): the same library kept across restarts on the
//! embedded database and on a real PostgreSQL (started by the test), a v2
//! data directory brought in with nothing lost, a database that stops
//! answering, and the settings refused at start.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::db::Postgres;
use common::{assert_error, Server};
use serde_json::{json, Value};

const PUBLISH_KEY: &str = "catalog-test-publish-key";
const KEY_SECRET: &str = "a key secret for the catalog tests";
const NODE_URL: &str = "http://127.0.0.1:7100";

fn configure(database: Option<&str>) -> impl FnOnce(&mut segcast::Config) + '_ {
    move |c| {
        c.database = database.map(str::to_string);
        c.key_secret = database.map(|_| KEY_SECRET.to_string());
        c.node_url = database.map(|_| NODE_URL.to_string());
        c.publish_key = Some(PUBLISH_KEY.into());
    }
}

async fn get_json(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = server.client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn key_bytes(server: &Server, id: &str, token: &str) -> Vec<u8> {
    let resp = server
        .client
        .get(server.url(&format!("/media/{id}/key")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

async fn post_comment(server: &Server, id: &str, text: &str) -> Value {
    let resp = server
        .client
        .post(server.url(&format!("/api/recordings/{id}/comments")))
        .json(&json!({ "author": "Ann", "text": text, "media_time_s": 2.5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn share(server: &Server, id: &str, token: &str) -> String {
    let resp = server
        .client
        .post(server.url(&format!("/api/recordings/{id}/share")))
        .bearer_auth(token)
        .json(&json!({ "expires_in_s": 3600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// Everything the catalog holds, made through the API, read back after a
/// restart on the same database.
async fn the_library_survives_a_restart(database: Option<&str>) {
    let server = Server::start(configure(database)).await;
    let create = |body: Value| server.create_with(body, Some(PUBLISH_KEY));
    let (public, _) = create(json!({ "title": "public one" })).await;
    let (private, private_token) =
        create(json!({ "title": "private one", "access": "private" })).await;
    let (encrypted, encrypted_token) =
        create(json!({ "title": "encrypted", "encrypt": true })).await;
    let (doomed, doomed_token) = create(json!({ "title": "to delete" })).await;
    let kept = post_comment(&server, &public, "kept").await;
    let removed = post_comment(&server, &public, "removed").await;
    let resp = server
        .client
        .delete(server.url(&format!(
            "/api/recordings/{public}/comments/{}",
            removed["id"].as_str().unwrap()
        )))
        .bearer_auth(PUBLISH_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(server.delete(&doomed, &doomed_token).await.status(), 204);
    let link = share(&server, &private, &private_token).await;
    let key = key_bytes(&server, &encrypted, &encrypted_token).await;
    assert_eq!(key.len(), 16);
    let (_, listed) = get_json(&server, "/api/recordings", Some(PUBLISH_KEY)).await;
    let data = server.stop().await;

    let server = Server::start_in(data, configure(database)).await;
    let (_, again) = get_json(&server, "/api/recordings", Some(PUBLISH_KEY)).await;
    assert_eq!(again, listed, "the same library, in the same order");
    let ids: Vec<&str> = again
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [encrypted.as_str(), private.as_str(), public.as_str()]);
    let (_, comments) =
        get_json(&server, &format!("/api/recordings/{public}/comments"), None).await;
    assert_eq!(comments, json!([kept]));
    let (status, _) = get_json(&server, &format!("/api/recordings/{private}"), Some(&link)).await;
    assert_eq!(status, 200, "a share link made before the restart opens it");
    let (status, _) = get_json(&server, &format!("/api/recordings/{private}"), None).await;
    assert_eq!(status, 401);
    assert_eq!(key_bytes(&server, &encrypted, &encrypted_token).await, key);
    let resp = server.get(&format!("/api/recordings/{doomed}")).await;
    assert_error(resp, 410).await;
    let data = server.stop().await;
    assert_eq!(
        data.path().join("segcast.db").exists(),
        database.is_none(),
        "with PostgreSQL, nothing of the catalog is in the data directory"
    );
}

#[tokio::test]
async fn the_embedded_catalog_keeps_the_library_across_a_restart() {
    the_library_survives_a_restart(None).await;
}

#[tokio::test]
async fn postgres_keeps_the_library_across_a_restart() {
    let pg = Postgres::start();
    the_library_survives_a_restart(Some(&pg.url)).await;
}

/// Nodes of a new cluster started together all migrate one fresh
/// PostgreSQL: one of them applies the schema under the migration lock,
/// the others wait for it and find it current. Repeated on fresh
/// databases, since a race shows only some of the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_started_together_on_a_fresh_postgres_all_come_up() {
    use store::catalog::{Catalog, CatalogOptions, DatabaseUrl};
    let pg = Postgres::start();
    let admin = sqlx::PgPool::connect(&pg.url).await.unwrap();
    for round in 0..8 {
        let name = format!("fresh{round}");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let url = pg.url.replace("/postgres", &format!("/{name}"));
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(6));
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let (url, start) = (url.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let url = DatabaseUrl::parse(&url).unwrap();
                    Catalog::open(CatalogOptions {
                        url: &url,
                        key_secret: Some(KEY_SECRET),
                        data_dir: Path::new("/nonexistent"),
                    })
                    .await
                    .map(drop)
                })
            })
            .collect();
        for open in opens {
            if let Err(e) = open.await.unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The fixture is a data directory made by v2 (tests/fixtures/make-v2-data.py):
/// every recording, comment, share link and key it had answers the same.
#[tokio::test]
async fn a_v2_data_directory_is_brought_in_with_nothing_lost() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("v2-data.json")).unwrap()).unwrap();
    let data = tempfile::tempdir().unwrap();
    copy_dir(&fixtures.join("v2-data"), data.path());
    let publish_key = expected["publish_key"].as_str().unwrap().to_string();
    let start = |data| {
        let key = publish_key.clone();
        Server::start_in(data, move |c| c.publish_key = Some(key))
    };
    let server = start(data).await;
    for round in ["first start", "second start"] {
        let (_, listed) = get_json(&server, "/api/recordings", Some(&publish_key)).await;
        let before = expected["recordings"].as_array().unwrap();
        let after = listed.as_array().unwrap();
        assert_eq!(after.len(), before.len(), "{round}");
        for (old, new) in before.iter().zip(after) {
            for field in [
                "id",
                "title",
                "state",
                "access",
                "encrypted",
                "created_at",
                "mime",
            ] {
                assert_eq!(old[field], new[field], "{round}: {field} of {}", old["id"]);
            }
            // A recording still live goes on publishing from its chunks.
            if old["state"] != "recording" {
                for field in ["duration_s", "segments", "chunks"] {
                    assert_eq!(old[field], new[field], "{round}: {field} of {}", old["id"]);
                }
            }
        }
        for (id, comments) in expected["comments"].as_object().unwrap() {
            let (_, now) = get_json(&server, &format!("/api/recordings/{id}/comments"), None).await;
            assert_eq!(&now, comments, "{round}: comments of {id}");
        }
        let share = &expected["share"];
        let (id, token) = (
            share["id"].as_str().unwrap(),
            share["token"].as_str().unwrap(),
        );
        let (status, _) = get_json(&server, &format!("/api/recordings/{id}"), Some(token)).await;
        assert_eq!(
            status, 200,
            "{round}: the v2 share link opens its recording"
        );
        let playlist = server
            .text(&format!("/media/{id}/index.m3u8?token={token}"))
            .await;
        assert!(playlist.starts_with("#EXTM3U"), "{round}");
        for (id, hex_key) in expected["keys"].as_object().unwrap() {
            let key = key_bytes(&server, id, &publish_key).await;
            assert_eq!(&hex::encode(key), hex_key, "{round}: the key of {id}");
        }
        for (id, token) in expected["upload_tokens"].as_object().unwrap() {
            let status = server.status_as(id, token.as_str().unwrap()).await;
            assert_eq!(
                status["id"],
                id.as_str(),
                "{round}: the upload token still opens it"
            );
        }
        if round == "first start" {
            let data = server.stop().await;
            let restarted = start(data).await;
            return check_again(restarted, &expected, &publish_key).await;
        }
    }
}

/// After a restart the import is not run again: no comment twice.
async fn check_again(server: Server, expected: &Value, publish_key: &str) {
    for (id, comments) in expected["comments"].as_object().unwrap() {
        let (_, now) = get_json(&server, &format!("/api/recordings/{id}/comments"), None).await;
        assert_eq!(&now, comments, "comments of {id} after a restart");
    }
    let (_, listed) = get_json(&server, "/api/recordings", Some(publish_key)).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        expected["recordings"].as_array().unwrap().len()
    );
}

/// The binary as an operator starts it; its exit status and stderr.
fn start_binary(data: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_segcast"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr)
}

#[test]
fn bad_database_settings_are_clear_errors_at_start() {
    let data = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = format!("postgres://segcast:hunter2@127.0.0.1:{port}/segcast");
    let node = ["--node-url", NODE_URL];
    let cases: [(&[&str], &str); 7] = [
        (
            &["--database", "mysql://u:hunter2@h/db"],
            "'mysql' databases are not supported",
        ),
        (&["--database", "segcast.db"], "is not a URL"),
        (
            &[
                "--database",
                &unreachable,
                "--key-secret",
                KEY_SECRET,
                node[0],
                node[1],
            ],
            "cannot open the database",
        ),
        (
            &["--database", &unreachable, node[0], node[1]],
            "--key-secret: required with a PostgreSQL",
        ),
        (
            &["--database", &unreachable, "--key-secret", KEY_SECRET],
            "--node-url: required with a PostgreSQL",
        ),
        (&node, "--node-url: only for a cluster"),
        (
            &["--database", &unreachable, "--node-url", "ftp://10.0.0.1/"],
            "must be an http:// or https:// URL",
        ),
    ];
    for (args, why) in cases {
        let (ok, stderr) = start_binary(data.path(), args);
        assert!(!ok, "{args:?} started");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "a password in the log: {stderr}"
        );
    }
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_none(),
        "nothing was written into the data directory"
    );
}

/// A schema written by a newer segcast: refused at start, file untouched.
#[tokio::test]
async fn a_catalog_from_a_newer_segcast_is_refused_untouched() {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("segcast.db");
    let options = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
         checksum BLOB NOT NULL, execution_time BIGINT NOT NULL); \
         INSERT INTO _sqlx_migrations VALUES (1, 'catalog', CURRENT_TIMESTAMP, 1, x'00', 0); \
         INSERT INTO _sqlx_migrations VALUES (7, 'from a newer segcast', CURRENT_TIMESTAMP, 1, x'00', 0);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let before = std::fs::read(&db).unwrap();
    let (ok, stderr) = start_binary(data.path(), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("schema version 7, newer than this segcast"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database is untouched"
    );
}

/// PostgreSQL stops: `/healthz` and every write answer `503` with
/// `Retry-After`, nothing is acknowledged; once it is back, so is the server.
#[tokio::test]
async fn a_database_that_stops_answering_is_503_until_it_is_back() {
    let pg = Postgres::start();
    let server = Server::start(configure(Some(&pg.url))).await;
    let (id, token) = server
        .create_with(json!({ "title": "through an outage" }), Some(PUBLISH_KEY))
        .await;
    let (status, health) = get_json(&server, "/healthz", None).await;
    assert_eq!(
        (status, &health),
        (200, &json!({"status": "ok", "node": NODE_URL}))
    );
    let chunk = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mediarecorder-vp8-opus/0000.webm"),
    )
    .unwrap();

    pg.stop();
    let resp = server.get("/healthz").await;
    assert_eq!(resp.headers()["retry-after"], "5");
    assert_error(resp, 503).await;
    let resp = server.put(&id, &token, 0, chunk.clone()).await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_error(resp, 503).await;
    let resp = server
        .client
        .post(server.url("/api/recordings"))
        .bearer_auth(PUBLISH_KEY)
        .json(&json!({ "title": "during the outage" }))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    assert_error(resp, 503).await;
    let (_, status) = get_json(&server, &format!("/api/recordings/{id}"), None).await;
    assert_eq!(status["chunks"]["received"], 0, "nothing was acknowledged");

    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/healthz").await.status() != 200 {
        assert!(Instant::now() < deadline, "the server did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.put(&id, &token, 0, chunk).await.status(), 201);
    let (_, listed) = get_json(&server, "/api/recordings", None).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the refused create left nothing"
    );
}
