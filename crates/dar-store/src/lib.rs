//! Storage for both Delegated Account Recovery roles, on SQLite or PostgreSQL.
//!
//! [`Store`] opens a database, runs the embedded migrations of its backend, and implements the
//! store traits of `dar-account-provider` and `dar-recovery-provider`, plus the web accounts
//! both roles' pages sign in and the account provider's lockout-recovery tables. SQLite (a
//! file, or in-memory for tests) is the embedded default for one instance; PostgreSQL serves
//! several instances behind a load balancer. Every state change the protocol needs atomic is one
//! transaction; sqlx types never leave this crate.
//!
//! ```no_run
//! # async fn run() -> Result<(), dar_store::StoreError> {
//! let store = dar_store::Store::connect("sqlite://dar.db").await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
// Unit tests may unwrap and panic: a panic is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::str::FromStr as _;
use std::time::Duration;

pub use crate::accounts::{Account, AccountId, Factor, SessionRecord};
pub use crate::lockout::{
    AuditRecord, EmailCodeCheck, EmailCodeId, EmailId, EmailRecord, EvidenceKind, EvidenceRecord,
    LockoutRecovery, MailId, MailRecord, NewAudit, NewEvidence, NewMail, PendingFactor,
    PendingFactorId, PendingFactorState, RecoveryCodeId, RecoveryCodeRecord, RecoveryId,
    RecoveryState, StateChange, TrustedContact,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

mod account_provider;
mod accounts;
mod lockout;
mod recovery_provider;

/// Which database a [`Store`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one instance, a file or memory.
    Sqlite,
    /// PostgreSQL: shared by several instances.
    Postgres,
}

/// A storage failure. Messages never contain tokens, keys or personal data.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the connection; a request may be retried
    /// later (HTTP 503).
    #[error("database unavailable")]
    Unavailable,
    /// The URL is not a `sqlite:` or `postgres:` URL.
    #[error("unsupported database URL (use sqlite:... or postgres://...)")]
    UnsupportedUrl,
    /// [`Store::open_existing`] found no SQLite database file at the URL's path (an
    /// administrative command pointed at the wrong file must not create an empty one).
    #[error("no database file at this path")]
    NoDatabaseFile,
    /// Migrations failed to apply.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A stored value is not one this version writes (an unknown recovery state, evidence
    /// kind or factor state): the database was changed by something else.
    #[error("unexpected stored value: {0}")]
    Corrupt(&'static str),
    /// Any other database error; the detail is logged, not shown.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable,
            other => Self::Database(other),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A database with the schema of both roles.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// When expired parked requests were last deleted (Unix seconds), shared by the clones.
    pub(crate) parked_purged_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// How long a SQLite writer waits for another to finish before giving up: long enough that
/// concurrent requests queue instead of failing with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens `url` (`sqlite://path`, `sqlite::memory:`, `postgres://...`), creating a SQLite
    /// file if missing, and runs the migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnsupportedUrl`], [`StoreError::Unavailable`] or
    /// [`StoreError::Migration`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, true).await
    }

    /// As [`Store::connect`], but a SQLite file must already exist: for administrative
    /// commands (`dar recoveries`), where a mistyped path must be an error, not a new empty
    /// database.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoDatabaseFile`], and as [`Store::connect`].
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        Self::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let options =
                SqliteConnectOptions::from_str(url).map_err(|_| StoreError::UnsupportedUrl)?;
            if !create && !memory && !options.get_filename().exists() {
                return Err(StoreError::NoDatabaseFile);
            }
            let options = options
                .create_if_missing(create)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .journal_mode(if memory {
                    SqliteJournalMode::Memory
                } else {
                    SqliteJournalMode::Wal
                });
            // One connection, for a file too. SQLite has one writer at a time; with several
            // connections in one process, a writer that finds the file locked is parked by
            // SQLite's busy handler, which sleeps (1 ms, then longer steps up to 100 ms) instead
            // of queueing, and at load the unlucky ones waited hundreds of milliseconds
            // (docs/load.md, "One SQLite connection": the p99 fell about fourfold with one
            // connection instead of eight, at the same throughput). With one connection the
            // statements queue in the pool, first come first served; reads take microseconds,
            // so they lose little by waiting their turn. Other processes on the same file (a
            // second instance, `dar recoveries`) still meet the busy timeout. An in-memory
            // database lives in its one connection anyway.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                // A ping before each use is a hand-off to the connection's thread that tests
                // nothing for an embedded database (sqlx still pings when one is released).
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            let store = Self {
                pool: Pool::Sqlite(pool),
                parked_purged_at: std::sync::Arc::default(),
            };
            store.migrate().await?;
            Ok(store)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options =
                PgConnectOptions::from_str(url).map_err(|_| StoreError::UnsupportedUrl)?;
            Self::connect_postgres(options, None).await
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// An empty in-memory SQLite store, for tests and examples.
    ///
    /// # Errors
    ///
    /// As [`Store::connect`].
    pub async fn in_memory() -> Result<Self, StoreError> {
        Self::connect("sqlite::memory:").await
    }

    async fn connect_postgres(
        options: PgConnectOptions,
        schema: Option<String>,
    ) -> Result<Self, StoreError> {
        // sqlx pings a connection when it is taken (and again when it is given back). The ping
        // on taking is a round trip per request, but skipping it, even only for connections
        // given back less than a second before, failed the outage test: a connection that
        // died just after it was given back failed the next request with 503.
        let mut pool_options = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5));
        if let Some(schema) = schema {
            pool_options = pool_options.after_connect(move |conn, _| {
                let set = format!("set search_path to {schema}");
                Box::pin(async move {
                    sqlx::query(sqlx::AssertSqlSafe(set))
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            });
        }
        let pool = pool_options.connect_with(options).await?;
        let store = Self {
            pool: Pool::Postgres(pool),
            parked_purged_at: std::sync::Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await,
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        };
        result.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// Test support: stores on both backends.
#[doc(hidden)]
pub mod testing {
    use super::{PgConnectOptions, Store, StoreError};

    /// The stores a test should run against: a fresh in-memory SQLite store always, and a
    /// fresh PostgreSQL schema named after `test_name` when `DAR_TEST_POSTGRES_URL` is set.
    ///
    /// # Errors
    ///
    /// When a database that should be there cannot be set up.
    pub async fn stores(test_name: &str) -> Result<Vec<Store>, StoreError> {
        let mut stores = vec![Store::in_memory().await?];
        if let Some(pg) = postgres(test_name).await? {
            stores.push(pg);
        }
        Ok(stores)
    }

    /// A fresh PostgreSQL schema `t_<test_name>` (dropped first if it exists), when
    /// `DAR_TEST_POSTGRES_URL` is set.
    ///
    /// # Errors
    ///
    /// When the variable is set but the database cannot be set up.
    pub async fn postgres(test_name: &str) -> Result<Option<Store>, StoreError> {
        let Ok(url) = std::env::var("DAR_TEST_POSTGRES_URL") else {
            return Ok(None);
        };
        let schema: String = format!("t_{test_name}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        fresh_schema(&url, &schema).await.map(Some)
    }

    /// Runs `sql` (statements without results) on `store`'s database: for tests that set up
    /// rows the store's own methods would never write, such as those of an older schema.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn execute(store: &Store, sql: &'static str) -> Result<(), StoreError> {
        let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
        match &store.pool {
            super::Pool::Sqlite(pool) => sql.execute(pool).await.map(drop)?,
            super::Pool::Postgres(pool) => sql.execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// A fresh PostgreSQL schema `schema` (dropped first if it exists, then migrated) in the
    /// database at `url`, selected with each connection's `search_path`. `schema` must be
    /// lower-case ASCII letters, digits and `_` (it is spliced into SQL).
    ///
    /// # Errors
    ///
    /// [`StoreError::UnsupportedUrl`] when `url` does not parse or `schema` is not such a
    /// name, or the database error.
    pub async fn fresh_schema(url: &str, schema: &str) -> Result<Store, StoreError> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(StoreError::UnsupportedUrl);
        }
        let options: PgConnectOptions = url.parse().map_err(|_| StoreError::UnsupportedUrl)?;
        let admin = sqlx::PgPool::connect_with(options.clone()).await?;
        let reset = format!("drop schema if exists {schema} cascade; create schema {schema}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(reset))
            .execute(&admin)
            .await?;
        admin.close().await;
        Store::connect_postgres(options, Some(schema.to_owned())).await
    }
}
