//! The catalog's schema, versioned: migrations embedded in the binary
//! (`crates/store/migrations/<engine>/NNNN_name.sql`), applied at start in
//! order, each once, recorded by sqlx in `_sqlx_migrations` with its
//! checksum. A database that has a version this binary does not know was
//! made by a newer segcast: refused before anything is touched.

use std::borrow::Cow;

use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};

use super::{Catalog, Db, OpenError};

/// (version, name, SQLite text, PostgreSQL text), oldest first.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "catalog",
        include_str!("../../migrations/sqlite/0001_catalog.sql"),
        include_str!("../../migrations/postgres/0001_catalog.sql"),
    ),
    (
        2,
        "nodes",
        include_str!("../../migrations/sqlite/0002_nodes.sql"),
        include_str!("../../migrations/postgres/0002_nodes.sql"),
    ),
    (
        3,
        "owners",
        include_str!("../../migrations/sqlite/0003_owners.sql"),
        include_str!("../../migrations/postgres/0003_owners.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn known_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

fn migrator(postgres: bool) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, name, sqlite, pg)| {
            let sql = if postgres { pg } else { sqlite };
            Migration::new(
                version,
                Cow::Borrowed(name),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        // `check_then_run` holds the lock around all of it.
        locking: false,
        ..Migrator::DEFAULT
    }
}

pub(super) async fn run(catalog: &Catalog) -> Result<(), OpenError> {
    let url = catalog.shown.to_string();
    let outcome = match &catalog.db {
        Db::Sqlite { writer, .. } => match writer.acquire().await {
            Ok(mut conn) => check_then_run(&migrator(false), &mut *conn).await,
            Err(e) => return Err(unreachable(&url, e)),
        },
        Db::Postgres(pool) => match pool.acquire().await {
            Ok(mut conn) => check_then_run(&migrator(true), &mut *conn).await,
            Err(e) => return Err(unreachable(&url, e)),
        },
    };
    outcome.map_err(|e| match e {
        MigrateError::VersionMissing(found) => OpenError::NewerSchema {
            url: url.clone(),
            found,
            known: known_version(),
        },
        other => OpenError::Migrate {
            url: url.clone(),
            cause: other.to_string(),
        },
    })
}

fn unreachable(url: &str, e: sqlx::Error) -> OpenError {
    OpenError::Unreachable {
        url: url.to_string(),
        cause: e.to_string(),
    }
}

/// Refuses a newer schema before running anything (sqlx's `run` would say
/// so too, but only after creating its table). All of it under the
/// migration lock, so that nodes starting together on a fresh PostgreSQL
/// do not both create the table or both apply a migration (on SQLite
/// `lock` does nothing and the catalog's open lock serialises instead).
async fn check_then_run<C>(migrator: &Migrator, conn: &mut C) -> Result<(), MigrateError>
where
    C: Migrate + Send,
{
    conn.lock().await?;
    let outcome = check_then_run_locked(migrator, conn).await;
    let unlocked = conn.unlock().await;
    outcome.and(unlocked)
}

async fn check_then_run_locked<C>(migrator: &Migrator, conn: &mut C) -> Result<(), MigrateError>
where
    C: Migrate + Send,
{
    conn.ensure_migrations_table().await?;
    let applied = conn.list_applied_migrations().await?;
    if let Some(newer) = applied
        .iter()
        .map(|m| m.version)
        .find(|v| *v > known_version())
    {
        return Err(MigrateError::VersionMissing(newer));
    }
    migrator.run_direct(conn).await
}
