//! The catalog: the library's metadata in a database — recordings and
//! their state, titles, access, upload-token hashes, the share secret,
//! wrapped content keys, viewers' comments (docs/http-contract.md, v3 "One
//! library for many nodes"; docs/architecture.md, "What lives where").
//!
//! One interface over two engines: the embedded SQLite file
//! `<data>/segcast.db` by default, PostgreSQL with `--database
//! postgres://…`. Every query is written once (the [`on_db!`] macro expands
//! it for each pool) in SQL both engines read the same way; migrations are
//! per engine ([`migrate`]) and the tests run on both.
//!
//! Durability is the one of the chunks: a write returns once committed,
//! and SQLite runs in WAL mode with `synchronous=FULL`, so a commit is
//! fsynced before anything is acknowledged. SQLite writes go through a pool
//! of one connection (one writer at a time is SQLite's rule; waiting in the
//! pool is cheaper than `SQLITE_BUSY` retries), reads through their own.
//!
//! A database that does not answer is [`Error::Busy`] (`503` with
//! `Retry-After`): nothing was stored, and a retry may succeed.

mod changes;
mod comments;
mod keys;
mod migrate;
mod nodes;
mod owners;
mod recordings;
pub mod url;
pub mod v2;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use base::{Error, Result};

pub use changes::{Change, Heard, Listener};
pub use comments::StoredComment;
pub use keys::{KeyWrap, KEY_SECRET_FILE, MIN_KEY_SECRET_BYTES};
pub use nodes::Claim;
pub use owners::Owner;
pub use url::DatabaseUrl;

/// How long a request waits for a database connection before it is
/// answered `503`: long enough for a busy SQLite writer, short enough that
/// an uploader retries rather than hangs.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// What a client told the database is unreachable waits before retrying.
pub const DATABASE_RETRY_AFTER_S: u32 = 5;
/// SQLite readers (WAL lets them run beside the one writer).
const SQLITE_READERS: u32 = 4;
/// PostgreSQL connections per node.
const POSTGRES_CONNECTIONS: u32 = 8;

/// The library's metadata store. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Catalog {
    db: Db,
    wrap: Arc<KeyWrap>,
    /// Where it is, without a password: for logs and errors.
    shown: Arc<str>,
    /// This process among the nodes sharing the database: random per
    /// start, so a node hears only other nodes' changes.
    node: Arc<str>,
    /// The `--node-url` recordings created through this catalog belong to
    /// (a cluster; see `owners`).
    node_url: Option<Arc<str>>,
}

#[derive(Clone)]
enum Db {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs the same query code on whichever pool the catalog has: `read`
/// picks SQLite's readers, `write` its writer; PostgreSQL has one pool.
macro_rules! on_db {
    ($catalog:expr, read, |$pool:ident| $body:expr) => {
        match &$catalog.db {
            $crate::catalog::Db::Sqlite { readers: $pool, .. } => $body,
            $crate::catalog::Db::Postgres($pool) => $body,
        }
    };
    ($catalog:expr, write, |$pool:ident| $body:expr) => {
        match &$catalog.db {
            $crate::catalog::Db::Sqlite { writer: $pool, .. } => $body,
            $crate::catalog::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Why the catalog could not be opened at start. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("--database: {0}")]
    BadUrl(String),
    #[error("cannot open the database {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error(
        "the database {url} has schema version {found}, newer than this segcast knows \
         (up to {known}): run the segcast that wrote it, or a newer one; nothing was changed"
    )]
    NewerSchema { url: String, found: i64, known: i64 },
    #[error("migrating the database {url}: {cause}")]
    Migrate { url: String, cause: String },
    #[error("--key-secret: {0}")]
    KeySecret(String),
}

/// What opening a catalog needs.
pub struct CatalogOptions<'a> {
    pub url: &'a DatabaseUrl,
    /// `--key-secret`: required with PostgreSQL; the embedded database
    /// keeps one in the data directory unless given.
    pub key_secret: Option<&'a str>,
    pub data_dir: &'a Path,
}

impl Catalog {
    /// Connects, brings the schema up to date, and readies key wrapping.
    pub async fn open(options: CatalogOptions<'_>) -> Result<Self, OpenError> {
        let shown: Arc<str> = options.url.redacted().into();
        // Held until the schema is current: see `lock_opening`.
        let _opening =
            match options.url {
                DatabaseUrl::Sqlite { path } => Some(lock_opening(path).await.map_err(
                    |cause| OpenError::Unreachable {
                        url: shown.to_string(),
                        cause,
                    },
                )?),
                DatabaseUrl::Postgres(_) => None,
            };
        let wrap = match (options.url, options.key_secret) {
            (_, Some(secret)) => KeyWrap::from_secret(secret.as_bytes()),
            (DatabaseUrl::Sqlite { .. }, None) => KeyWrap::load_or_create(options.data_dir),
            (DatabaseUrl::Postgres(_), None) => Err(
                "required with a PostgreSQL --database (the same on every node: it wraps \
                 the encryption keys stored there)"
                    .into(),
            ),
        }
        .map_err(OpenError::KeySecret)?;
        let unreachable = |e: sqlx::Error| OpenError::Unreachable {
            url: shown.to_string(),
            cause: e.to_string(),
        };
        let db = match options.url {
            DatabaseUrl::Sqlite { path } => open_sqlite(path).await.map_err(unreachable)?,
            DatabaseUrl::Postgres(url) => open_postgres(url).await.map_err(unreachable)?,
        };
        let catalog = Self {
            db,
            wrap: Arc::new(wrap),
            shown,
            node: new_node_id(),
            node_url: None,
        };
        migrate::run(&catalog).await?;
        Ok(catalog)
    }

    /// An in-memory SQLite catalog: for a run that keeps nothing (the
    /// import CLI's staging), and for tests.
    pub async fn in_memory(wrap: KeyWrap) -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| OpenError::BadUrl(e.to_string()))?;
        // One connection: each in-memory connection is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| OpenError::Unreachable {
                url: "sqlite::memory:".into(),
                cause: e.to_string(),
            })?;
        let catalog = Self {
            db: Db::Sqlite {
                writer: pool.clone(),
                readers: pool,
            },
            wrap: Arc::new(wrap),
            shown: "sqlite::memory:".into(),
            node: new_node_id(),
            node_url: None,
        };
        migrate::run(&catalog).await?;
        Ok(catalog)
    }

    /// Where it is, password left out.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Whether the database answers now: `503` when it does not.
    pub async fn check(&self) -> Result<()> {
        on_db!(self, read, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))
        .map_err(|e| db_error("the library's database", e))
    }

    /// Closes the pools (what was committed stays).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { writer, readers } => {
                readers.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// A server-wide value (`settings` table).
    pub async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        const SQL: &str = "SELECT value FROM settings WHERE name = $1";
        on_db!(self, read, |pool| sqlx::query_scalar(SQL)
            .bind(name)
            .fetch_optional(pool)
            .await)
        .map_err(|e| db_error("reading a setting", e))
    }

    /// Stores `value` under `name` unless one is there; returns the one
    /// kept (so nodes starting together agree on one).
    pub async fn setting_or_insert(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        const SQL: &str = "INSERT INTO settings (name, value) VALUES ($1, $2) \
                           ON CONFLICT (name) DO NOTHING";
        on_db!(self, write, |pool| sqlx::query(SQL)
            .bind(name)
            .bind(value)
            .execute(pool)
            .await
            .map(drop))
        .map_err(|e| db_error("storing a setting", e))?;
        self.setting(name)
            .await?
            .ok_or_else(|| Error::internal("settings", "a setting vanished after its insert"))
    }

    /// The share-token secret: stored once, the same for every node.
    pub async fn share_secret(&self) -> Result<Vec<u8>> {
        let fresh = base::ids::random_bytes::<32>();
        self.setting_or_insert(SHARE_SECRET, &fresh).await
    }
}

fn new_node_id() -> Arc<str> {
    hex::encode(base::ids::random_bytes::<8>()).into()
}

/// The `settings` name of the share-token secret.
pub const SHARE_SECRET: &str = "share_secret";

/// Processes that open one embedded database together (a server and
/// `segcast import` started by one script) take turns until the schema is
/// current: sqlx's migration lock is a no-op on SQLite, so two would both
/// find a fresh file unmigrated and the second would fail on "table
/// already exists". PostgreSQL has its advisory lock (see `migrate`).
async fn lock_opening(db: &Path) -> Result<std::fs::File, String> {
    let mut name = db.as_os_str().to_owned();
    name.push(".open-lock");
    let lock = std::path::PathBuf::from(name);
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        base::files::lock_exclusive(&lock)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", lock.display())))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

async fn open_sqlite(path: &Path) -> Result<Db, sqlx::Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(ACQUIRE_TIMEOUT);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    let readers = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.read_only(true))
        .await?;
    Ok(Db::Sqlite { writer, readers })
}

async fn open_postgres(url: &str) -> Result<Db, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("segcast");
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    Ok(Db::Postgres(pool))
}

/// A database failure as a client sees it: unreachable or busy is `503`
/// with `Retry-After` (nothing was stored), anything else internal.
pub(crate) fn db_error(context: &str, e: sqlx::Error) -> Error {
    let unavailable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // SQLITE_BUSY (5), SQLITE_LOCKED (6); PostgreSQL's class 08
        // (connection exception) and 57P0x (the server shutting down).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.as_ref(), "5" | "6") || code.starts_with("08") || code.starts_with("57P")
        }),
        _ => false,
    };
    if unavailable {
        tracing::warn!(error = %e, "{context}: the database does not answer");
        Error::Busy {
            message: format!("{context} is not answering now; nothing was stored, retry later"),
            retry_after_s: DATABASE_RETRY_AFTER_S,
        }
    } else {
        Error::internal(context.to_string(), e)
    }
}
