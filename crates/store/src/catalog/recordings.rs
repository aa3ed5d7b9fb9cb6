//! Recordings in the catalog: one row each, [`RecordingMeta`] column by
//! column, with the content key wrapped beside it (see [`super::keys`]).
//! Deleting a row deletes its comments (a foreign key) and remembers the id,
//! so a deleted recording answers `410`, not `404`, after a restart too.

use base::{Error, Result};
use media::aes::ContentKey;
use sqlx::Row;

use super::changes::Change;
use super::{db_error, on_db, Catalog, Db};
use crate::recordings::{ImportInfo, RecordingMeta, State};

/// Every column of a recording row, in the order [`bind_meta!`] binds them.
pub(super) const COLUMNS: &str = "id, title, mime, created_at, token_sha256, total, state, error, \
     duration_ms, segments, incomplete, access, encrypt, import_json, live_plan_json, updated_ms";

/// What a query reads back: the metadata and the wrapped key.
type Loaded = (RecordingMeta, Option<Vec<u8>>);

/// Binds a [`RecordingMeta`]'s columns, in [`COLUMNS`] order, to a query.
macro_rules! bind_meta {
    ($query:expr, $meta:expr) => {{
        let meta: &$crate::recordings::RecordingMeta = $meta;
        $query
            .bind(&meta.id)
            .bind(&meta.title)
            .bind(&meta.mime)
            .bind(&meta.created_at)
            .bind(&meta.token_sha256)
            .bind(meta.total.map($crate::catalog::recordings::to_i64))
            .bind(meta.state.as_str())
            .bind(&meta.error)
            .bind($crate::catalog::recordings::to_i64(meta.duration_ms))
            .bind($crate::catalog::recordings::to_i64(meta.segments))
            .bind(meta.incomplete)
            .bind(meta.access.as_str())
            .bind(meta.encrypt)
            .bind(meta.import.as_ref().map($crate::catalog::recordings::json))
            .bind(
                meta.live_plan
                    .as_ref()
                    .map($crate::catalog::recordings::json),
            )
            .bind($crate::catalog::recordings::to_i64(base::clock::unix_ms()))
    }};
}
pub(super) use bind_meta;

/// Reads one row into [`Loaded`] (the same code for either engine's row).
macro_rules! read_row {
    ($row:expr) => {
        (|| -> Result<Loaded, sqlx::Error> {
            let row = $row;
            let meta = RecordingMeta {
                id: row.try_get("id")?,
                title: row.try_get("title")?,
                mime: row.try_get("mime")?,
                created_at: row.try_get("created_at")?,
                token_sha256: row.try_get("token_sha256")?,
                total: row.try_get::<Option<i64>, _>("total")?.map(to_u64),
                state: parse_column(row.try_get::<String, _>("state")?)?,
                error: row.try_get("error")?,
                duration_ms: to_u64(row.try_get("duration_ms")?),
                segments: to_u64(row.try_get("segments")?),
                incomplete: row.try_get("incomplete")?,
                access: parse_column(row.try_get::<String, _>("access")?)?,
                encrypt: row.try_get("encrypt")?,
                import: from_json::<ImportInfo>(row.try_get("import_json")?)?,
                live_plan: from_json(row.try_get("live_plan_json")?)?,
            };
            Ok((meta, row.try_get("wrapped_key")?))
        })()
    };
}

impl Catalog {
    /// Adds a new recording with its content key (encrypted ones): the key
    /// is stored before any media exists, in the same row, as is the node
    /// that runs it (see `owners`).
    pub async fn create_recording(
        &self,
        meta: &RecordingMeta,
        key: Option<&ContentKey>,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO recordings ({COLUMNS}, wrapped_key, owner_url) VALUES \
             ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)"
        );
        let wrapped = key.map(|k| self.wrap.wrap(k));
        let owner = self.node_url.as_deref();
        on_db!(self, write, |pool| bind_meta!(sqlx::query(&sql), meta)
            .bind(&wrapped)
            .bind(owner)
            .execute(pool)
            .await
            .map(drop))
        .map_err(|e| db_error("storing the new recording", e))
    }

    /// Saves a recording's current metadata. `410` when its row is gone (it
    /// was deleted meanwhile); the upload token and the key never change.
    pub async fn save_recording(&self, meta: &RecordingMeta) -> Result<()> {
        const SQL: &str = "UPDATE recordings SET title=$2, mime=$3, created_at=$4, \
            token_sha256=$5, total=$6, state=$7, error=$8, duration_ms=$9, segments=$10, \
            incomplete=$11, access=$12, encrypt=$13, import_json=$14, live_plan_json=$15, \
            updated_ms=$16 WHERE id=$1";
        let done = on_db!(self, write, |pool| bind_meta!(sqlx::query(SQL), meta)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| db_error("saving the recording's state", e))?;
        match done {
            0 => Err(Error::Gone(format!("recording '{}' was deleted", meta.id))),
            _ => Ok(()),
        }
    }

    /// One recording and its content key; `None` when there is no row.
    pub async fn recording(&self, id: &str) -> Result<Option<(RecordingMeta, Option<ContentKey>)>> {
        let sql = format!("SELECT {COLUMNS}, wrapped_key FROM recordings WHERE id = $1");
        let loaded = on_db!(self, read, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await {
                Ok(Some(row)) => read_row!(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| db_error("reading a recording", e))?;
        Ok(loaded.map(|loaded| self.unwrapped(loaded)))
    }

    /// Every recording, newest first, each with its content key.
    pub async fn recordings(&self) -> Result<Vec<(RecordingMeta, Option<ContentKey>)>> {
        let sql =
            format!("SELECT {COLUMNS}, wrapped_key FROM recordings ORDER BY created_at DESC, id");
        let loaded = on_db!(self, read, |pool| {
            match sqlx::query(&sql).fetch_all(pool).await {
                Ok(rows) => rows
                    .iter()
                    .map(|row| read_row!(row))
                    .collect::<Result<Vec<_>, _>>(),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| db_error("reading the library", e))?;
        Ok(loaded.into_iter().map(|l| self.unwrapped(l)).collect())
    }

    /// Deletes a recording's row, its comments and its key, and remembers
    /// the id as deleted. Returns whether there was a row.
    pub async fn delete_recording(&self, id: &str) -> Result<bool> {
        let at = base::clock::rfc3339_now();
        if let Db::Postgres(pool) = &self.db {
            return self.delete_recording_pg(pool, id, &at).await;
        }
        let deleted = on_db!(self, write, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query("DELETE FROM recordings WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "INSERT INTO deleted_recordings (id, deleted_at) VALUES ($1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(rows > 0)
            }
            .await
        })
        .map_err(|e| db_error("deleting the recording", e))?;
        Ok(deleted)
    }

    /// [`Self::delete_recording`] on PostgreSQL, telling the other nodes.
    async fn delete_recording_pg(&self, pool: &sqlx::PgPool, id: &str, at: &str) -> Result<bool> {
        async {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query("DELETE FROM recordings WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "INSERT INTO deleted_recordings (id, deleted_at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let change = Change::RecordingDeleted {
                recording: id.to_string(),
            };
            self.notify(&mut tx, change).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows > 0)
        }
        .await
        .map_err(|e| db_error("deleting the recording", e))
    }

    /// Ids of recordings deleted at any time.
    pub async fn deleted_ids(&self) -> Result<Vec<String>> {
        on_db!(self, read, |pool| sqlx::query_scalar(
            "SELECT id FROM deleted_recordings"
        )
        .fetch_all(pool)
        .await)
        .map_err(|e| db_error("reading deleted recordings", e))
    }

    /// A key that does not unwrap is logged and left out: the recording
    /// stays listed, and its task refuses to publish without a key.
    fn unwrapped(&self, (meta, wrapped): Loaded) -> (RecordingMeta, Option<ContentKey>) {
        let key = wrapped.and_then(|w| match self.wrap.unwrap(&w) {
            Ok(key) => Some(key),
            Err(error) => {
                tracing::error!(id = %meta.id, %error, "cannot read the recording's key");
                None
            }
        });
        (meta, key)
    }
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Recording, Self::Processing, Self::Ready, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown recording state '{s}'"))
    }
}

/// Counts are stored as BIGINT (neither engine has unsigned 64-bit); no
/// count here comes near 2^63.
pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("metadata serializes")
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: Option<String>,
) -> Result<Option<T>, sqlx::Error> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn parse_column<T: std::str::FromStr<Err = String>>(text: String) -> Result<T, sqlx::Error> {
    text.parse()
        .map_err(|e: String| sqlx::Error::Decode(e.into()))
}
