//! The database: connect by URL scheme, apply migrations, begin transactions.
//!
//! Every query is written once with `$1` placeholders and portable column types
//! (TEXT ids, BIGINT epoch-millisecond times and 0/1 flags) and runs through
//! sqlx's `Any` driver on both SQLite and PostgreSQL. Backend differences stay
//! in this module: transactions here, claiming due work in [`claim`].

pub mod cache;
pub mod claim;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions, Executor};

use cache::{Generations, Scope};

/// A transaction. Whatever it changes that the read caches depend on is
/// marked with [`Tx::touch`]; the caches forget it once the commit is done.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    touched: Vec<Scope>,
    generations: Arc<Generations>,
}

impl Tx {
    /// Marks `scope` changed by this transaction.
    pub fn touch(&mut self, scope: Scope) {
        if self.generations.enabled() && !self.touched.contains(&scope) {
            self.touched.push(scope);
        }
    }

    /// Commits, then invalidates what was touched (also when the commit
    /// failed: its outcome is then unknown).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let result = self.inner.commit().await;
        if !self.touched.is_empty() {
            self.generations.invalidate(&self.touched);
        }
        result
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl Deref for Tx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The connection pool and which database it talks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    generations: Arc<Generations>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    #[error("could not create the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Store {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://...`).
    /// For SQLite the file and its folder are created when missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None).await
    }

    /// As [`Store::connect`], keeping at most `pool_size` connections open
    /// (by default 8 on SQLite, 16 on PostgreSQL).
    pub async fn connect_with(url: &str, pool_size: Option<u32>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let pool_options = match backend {
            // One writer at a time; WAL lets readers go on meanwhile.
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(pool_size.unwrap_or(8))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            // Reads from a memory map instead of a read()
                            // call per page: the feed got 40% faster. The
                            // pages are the kernel's file cache, shared by
                            // all connections, not private memory.
                            conn.execute("PRAGMA mmap_size = 268435456").await?;
                            Ok(())
                        })
                    })
            }
            Backend::Postgres => AnyPoolOptions::new().max_connections(pool_size.unwrap_or(16)),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            backend,
            // Local invalidation is complete with one process per file.
            generations: Arc::new(Generations::new(backend == Backend::Sqlite)),
        })
    }

    /// The read caches' invalidation state.
    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    /// Turns the read caches on or off (the default: on for SQLite only).
    pub fn set_read_cache(&self, enabled: bool) {
        self.generations.set_enabled(enabled);
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending SQL migration. Data that SQL cannot compute
    /// is brought up to date by the application afterwards
    /// ([`crate::migrate`]).
    pub async fn migrate_sql(&self) -> Result<(), StoreError> {
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers and every known migration is applied.
    pub async fn is_ready(&self) -> bool {
        let latest = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await;
        matches!(applied, Ok(Some(v)) if v >= latest)
    }

    /// Begins a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so that a transaction which reads before it writes
    /// waits its turn instead of failing with SQLITE_BUSY half-way.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(self.wrap(inner))
    }

    fn wrap(&self, inner: sqlx::Transaction<'static, Any>) -> Tx {
        Tx {
            inner,
            touched: Vec::new(),
            generations: self.generations.clone(),
        }
    }

    /// Begins a read-only transaction whose reads all see one snapshot: on
    /// SQLite a deferred `BEGIN` (WAL keeps the snapshot of its first read),
    /// on PostgreSQL `REPEATABLE READ`.
    pub async fn begin_snapshot(&self) -> Result<Tx, sqlx::Error> {
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN").await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        };
        Ok(self.wrap(inner))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://some/file.db` → ensure the folder exists and ask SQLite to
/// create the file (`mode=rwc`).
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path == ":memory:" || path.is_empty() {
        return Ok(url.to_owned());
    }
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::DataDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    Ok(match query {
        Some(q) if q.contains("mode=") => url.to_owned(),
        Some(q) => format!("sqlite://{path}?{q}&mode=rwc"),
        None => format!("sqlite://{path}?mode=rwc"),
    })
}

/// A database URL without its password, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***{}", &url[..scheme_end], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// True when `err` is a unique-constraint violation (both backends).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://kring:secret@db:5432/kring"),
            "postgres://kring:***@db:5432/kring"
        );
        assert_eq!(
            redact_url("sqlite://data/kring.db"),
            "sqlite://data/kring.db"
        );
    }

    #[test]
    fn sqlite_urls_create_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/kring.db");
        let url = format!("sqlite://{}", path.display());
        let prepared = prepare_sqlite_url(&url).expect("prepare");
        assert!(prepared.ends_with("?mode=rwc"));
        assert!(path.parent().expect("parent").exists());
    }
}

#[cfg(test)]
mod migration_tests;
