//! The catalog on the embedded engine, file-backed as a server runs it (the
//! same queries on PostgreSQL are run by tests/catalog.rs).

use super::*;
use crate::recordings::{ImportInfo, ImportOrigin, RecordingMeta, State};
use base::access::Access;
use media::aes::ContentKey;

fn meta(id: &str, created_at: &str) -> RecordingMeta {
    RecordingMeta {
        id: id.into(),
        title: format!("title of {id}"),
        mime: "video/webm".into(),
        created_at: created_at.into(),
        token_sha256: "ab".repeat(32),
        total: None,
        state: State::Recording,
        error: None,
        duration_ms: 0,
        segments: 0,
        incomplete: false,
        import: None,
        access: Access::Public,
        encrypt: false,
        live_plan: None,
    }
}

async fn open(data: &Path) -> Catalog {
    let url = DatabaseUrl::embedded(data);
    let options = CatalogOptions {
        url: &url,
        key_secret: None,
        data_dir: data,
    };
    Catalog::open(options).await.unwrap()
}

#[tokio::test]
async fn recordings_keys_and_comments_are_kept_across_opens() {
    let data = tempfile::tempdir().unwrap();
    let catalog = open(data.path()).await;
    let key = ContentKey::generate();
    let mut first = meta("aaa", "2026-01-01T00:00:00Z");
    let mut second = meta("bbb", "2026-01-02T00:00:00Z");
    second.access = Access::Private;
    second.encrypt = true;
    second.import = Some(ImportInfo {
        file_name: "talk.mp4".into(),
        bytes: 123,
        origin: ImportOrigin::Cli,
    });
    catalog.create_recording(&first, None).await.unwrap();
    catalog.create_recording(&second, Some(&key)).await.unwrap();
    first.state = State::Ready;
    first.total = Some(7);
    first.duration_ms = 6_500;
    catalog.save_recording(&first).await.unwrap();
    let comment = |id: &str| StoredComment {
        id: id.into(),
        author: "Ann".into(),
        text: "a\nb".into(),
        media_time_ms: 1_250,
        created_at: "2026-01-01T00:00:01.000Z".into(),
    };
    for id in ["c1", "c2", "c3"] {
        catalog.add_comment("aaa", &comment(id)).await.unwrap();
    }
    assert!(catalog.delete_comment("aaa", "c2").await.unwrap());
    assert!(!catalog.delete_comment("aaa", "c2").await.unwrap());
    catalog.close().await;

    let again = open(data.path()).await;
    let all = again.recordings().await.unwrap();
    let ids: Vec<_> = all.iter().map(|(m, _)| m.id.as_str()).collect();
    assert_eq!(ids, ["bbb", "aaa"], "newest first");
    assert_eq!(all[0], (second.clone(), Some(key)));
    assert_eq!(all[1], (first.clone(), None));
    let comments = again.comments("aaa").await.unwrap();
    assert_eq!(comments, vec![comment("c1"), comment("c3")]);
    // The key is stored wrapped: its bytes are nowhere in the database.
    let db = std::fs::read(data.path().join("segcast.db")).unwrap();
    let wal = std::fs::read(data.path().join("segcast.db-wal")).unwrap_or_default();
    for file in [&db, &wal] {
        assert!(!file.windows(16).any(|w| w == key.bytes()));
    }
}

#[tokio::test]
async fn a_deleted_recording_takes_its_comments_and_is_remembered() {
    let data = tempfile::tempdir().unwrap();
    let catalog = open(data.path()).await;
    let gone = meta("ccc", "2026-01-01T00:00:00Z");
    catalog.create_recording(&gone, None).await.unwrap();
    let comment = StoredComment {
        id: "c1".into(),
        author: "a".into(),
        text: "t".into(),
        media_time_ms: 0,
        created_at: "2026-01-01T00:00:01.000Z".into(),
    };
    catalog.add_comment("ccc", &comment).await.unwrap();
    assert!(catalog.delete_recording("ccc").await.unwrap());
    assert!(catalog.recording("ccc").await.unwrap().is_none());
    assert!(catalog.comments("ccc").await.unwrap().is_empty());
    assert_eq!(catalog.deleted_ids().await.unwrap(), ["ccc"]);
    assert!(matches!(
        catalog.add_comment("ccc", &comment).await,
        Err(Error::Gone(_))
    ));
    assert!(matches!(
        catalog.save_recording(&gone).await,
        Err(Error::Gone(_))
    ));
}

#[tokio::test]
async fn the_first_stored_setting_wins() {
    let data = tempfile::tempdir().unwrap();
    let catalog = open(data.path()).await;
    let secret = catalog.share_secret().await.unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(catalog.share_secret().await.unwrap(), secret);
    assert_eq!(
        catalog
            .setting_or_insert(SHARE_SECRET, b"other")
            .await
            .unwrap(),
        secret
    );
}

#[tokio::test]
async fn a_schema_from_a_newer_segcast_is_refused_untouched() {
    let data = tempfile::tempdir().unwrap();
    let catalog = open(data.path()).await;
    on_db!(catalog, write, |pool| sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', TRUE, x'00', 0)"
    )
    .execute(pool)
    .await
    .map(drop))
    .unwrap();
    catalog
        .create_recording(&meta("ddd", "2026-01-01T00:00:00Z"), None)
        .await
        .unwrap();
    catalog.close().await;
    let url = DatabaseUrl::embedded(data.path());
    let options = CatalogOptions {
        url: &url,
        key_secret: None,
        data_dir: data.path(),
    };
    let refused = Catalog::open(options).await.err().expect("refused");
    assert!(
        matches!(refused, OpenError::NewerSchema { found: 99, .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("newer than this segcast"));
}

#[tokio::test]
async fn postgres_needs_a_key_secret() {
    let data = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse("postgres://segcast@127.0.0.1:1/none").unwrap();
    let options = CatalogOptions {
        url: &url,
        key_secret: None,
        data_dir: data.path(),
    };
    let refused = Catalog::open(options).await.err().expect("refused");
    assert!(refused.to_string().contains("--key-secret"), "{refused}");
    assert!(!data.path().join(KEY_SECRET_FILE).exists());
}

#[tokio::test]
async fn a_node_url_is_held_by_one_process_until_its_lease_lapses() {
    use super::nodes::Claim;
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).await;
    // Another process on the same catalog: its own node id.
    let second = open(dir.path()).await;
    assert_ne!(first.node_id(), second.node_id());
    let url = "http://10.0.0.1:8080";
    assert_eq!(
        first.claim_node(url, 1_000, 11_000).await.unwrap(),
        Claim::Held
    );
    assert_eq!(
        second.claim_node(url, 5_000, 15_000).await.unwrap(),
        Claim::Taken { until_ms: 11_000 }
    );
    // Its own claim again (a renewal by claim) and a renewal both hold.
    assert_eq!(
        first.claim_node(url, 6_000, 16_000).await.unwrap(),
        Claim::Held
    );
    assert!(first.renew_node(url, 20_000).await.unwrap());
    assert!(
        !second.renew_node(url, 30_000).await.unwrap(),
        "not its URL"
    );
    assert_eq!(first.live_nodes(19_000).await.unwrap(), [url]);
    // Lapsed: another process takes it, and the first can no longer renew.
    assert_eq!(
        second.claim_node(url, 20_001, 30_000).await.unwrap(),
        Claim::Held
    );
    assert!(!first.renew_node(url, 40_000).await.unwrap());
    // Released: free at once.
    second.release_node(url).await.unwrap();
    assert_eq!(
        first.live_nodes(20_002).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        first.claim_node(url, 20_002, 30_000).await.unwrap(),
        Claim::Held
    );
}

#[tokio::test]
async fn a_recording_belongs_to_the_node_that_created_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = "http://10.0.0.1:8080";
    let node = open(dir.path()).await.as_node(Some(url));
    assert_eq!(node.node_url(), Some(url));
    node.create_recording(&meta("owned", "2026-01-01T00:00:00Z"), None)
        .await
        .unwrap();
    let single = open(dir.path()).await;
    single
        .create_recording(&meta("anyones", "2026-01-01T00:00:01Z"), None)
        .await
        .unwrap();
    let unleased = Owner::Node {
        url: url.into(),
        lease_until_ms: 0,
    };
    assert_eq!(single.owner("owned").await.unwrap(), Some(unleased));
    node.claim_node(url, 1_000, 11_000).await.unwrap();
    let leased = Owner::Node {
        url: url.into(),
        lease_until_ms: 11_000,
    };
    assert_eq!(single.owner("owned").await.unwrap(), Some(leased));
    assert_eq!(single.owner("anyones").await.unwrap(), Some(Owner::Anyone));
    assert_eq!(single.owner("absent").await.unwrap(), None);
    let owners = single.owners().await.unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners["owned"], url);
    // Saving the state keeps the owner.
    node.save_recording(&meta("owned", "2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(single.owners().await.unwrap()["owned"], url);

    // Taken over only once the owner's lease ran out, by one node.
    let other = "http://10.0.0.2:8080";
    single.claim_node(other, 11_000, 20_000).await.unwrap();
    assert!(!single
        .take_over_recording("owned", other, 11_000)
        .await
        .unwrap());
    assert!(single
        .take_over_recording("owned", other, 11_001)
        .await
        .unwrap());
    assert!(!single
        .take_over_recording("owned", "http://10.0.0.3:8080", 11_001)
        .await
        .unwrap());
    assert_eq!(single.owners().await.unwrap()["owned"], other);
    assert!(!single
        .take_over_recording("anyones", other, 11_001)
        .await
        .unwrap());
}

/// The key every opener of [`processes_opening_one_fresh_directory_together_agree`]
/// wraps: AES key wrap is deterministic, so equal output means one secret.
const PROBE_KEY: [u8; 16] = *b"probe key bytes!";
/// Each child leaves the key it wrapped in `<data>/<prefix><pid>`.
const PROBE_PREFIX: &str = "probe-";
/// Set in a child of that test: the data directory it opens.
const OPEN_CHILD: &str = "SEGCAST_TEST_OPEN_CATALOG_IN";

/// Processes that start together on a fresh data directory (a server and
/// `segcast import` in one script) each open the catalog: all must come up,
/// on one schema, wrapping keys under one secret. Separate processes, as in
/// use (this test binary run again as each), released at once by closing
/// their stdin; repeated, since a race shows only some of the time.
#[test]
fn processes_opening_one_fresh_directory_together_agree() {
    if let Some(dir) = std::env::var_os(OPEN_CHILD) {
        return open_as_a_child(Path::new(&dir));
    }
    const ROUNDS: usize = 12;
    const PROCESSES: usize = 6;
    let exe = std::env::current_exe().unwrap();
    for round in 0..ROUNDS {
        let data = tempfile::tempdir().unwrap();
        let mut children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "catalog::tests::processes_opening_one_fresh_directory_together_agree",
                    ])
                    .args(["--nocapture", "--test-threads", "1"])
                    .env(OPEN_CHILD, data.path())
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // All spawned first, then all released together.
        for child in &mut children {
            drop(child.stdin.take());
        }
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {round}: {stdout}\n{stderr}");
        }
        let mut wrapped: Vec<String> = std::fs::read_dir(data.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(PROBE_PREFIX))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        assert_eq!(wrapped.len(), PROCESSES, "round {round}: one probe each");
        wrapped.sort();
        wrapped.dedup();
        assert_eq!(wrapped.len(), 1, "round {round}: secrets {wrapped:?}");
    }
}

/// One opener: waits for the parent's go (its stdin closing), opens the
/// catalog, leaves the probe key wrapped in a file of its own.
fn open_as_a_child(dir: &Path) {
    use std::io::Read;
    let mut go = Vec::new();
    std::io::stdin().read_to_end(&mut go).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let catalog = runtime.block_on(open(dir));
    let wrapped = catalog.wrap.wrap(&ContentKey::from_bytes(PROBE_KEY));
    let probe = dir.join(format!("{PROBE_PREFIX}{}", std::process::id()));
    std::fs::write(probe, hex::encode(wrapped)).unwrap();
}
