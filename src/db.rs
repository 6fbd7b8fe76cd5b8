//! Opening the database (SQLite or PostgreSQL) and applying the schema migrations.

mod probe;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

pub use probe::{DatabaseProbe, PROBE_EVERY, PROBE_TIMEOUT};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database at {url} (database.url / DATABASE_URL): {source}")]
    Connect { url: String, source: DbErr },
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("migration failed: {0}")]
    Migrate(DbErr),
}

/// Opens a pool. SQLite runs in WAL mode so readers (the API) never block the ingest writer.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbError> {
    if let Some(path) = sqlite_file_path(url) {
        if let Some(parent) = std::path::Path::new(&path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| DbError::Directory {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
    }
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_postgres_pool_opts(|pool| {
            pool.after_connect(|_, _| {
                Box::pin(async {
                    disable_nagle_on_tcp_sockets();
                    Ok(())
                })
            })
        })
        .map_sqlx_sqlite_opts(|options| {
            options
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(options)
        .await
        .map_err(|source| DbError::Connect {
            url: redact_url(url),
            source,
        })
}

pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), DbError> {
    Migrator::up(db, None).await.map_err(DbError::Migrate)
}

pub async fn migrate_down(db: &DatabaseConnection, steps: u32) -> Result<(), DbError> {
    Migrator::down(db, Some(steps))
        .await
        .map_err(DbError::Migrate)
}

/// Names of applied and pending migrations, for `migrate --status`.
pub async fn migration_status(db: &DatabaseConnection) -> Result<Vec<(String, bool)>, DbError> {
    let applied: Vec<String> = Migrator::get_applied_migrations(db)
        .await
        .map_err(DbError::Migrate)?
        .iter()
        .map(|migration| migration.name().to_string())
        .collect();
    Ok(Migrator::migrations()
        .iter()
        .map(|migration| {
            let name = migration.name().to_string();
            let is_applied = applied.contains(&name);
            (name, is_applied)
        })
        .collect())
}

/// sqlx 0.9.0 leaves Nagle's algorithm on for database sockets. Together with delayed ACKs on the
/// server, every multi-packet statement (our batched upserts) then waits ~40 ms for the last
/// packet: the batch writer spent 240 ms per commit, mostly asleep. The driver offers no hook to
/// the socket, so each time it opens a connection we set TCP_NODELAY on the process's TCP
/// sockets (harmless for the others: HTTP and MQTT want it too). Remove once the driver sets it
/// itself (fixed upstream after 0.9.0).
fn disable_nagle_on_tcp_sockets() {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::BorrowedFd;
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i32>().ok())
            else {
                continue;
            };
            let is_socket = std::fs::read_link(entry.path())
                .map(|target| target.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false);
            if !is_socket {
                continue;
            }
            // SAFETY: the descriptor is only borrowed for one setsockopt call. If another thread
            // closed it meanwhile, the call fails (or touches a descriptor reused as a socket,
            // where TCP_NODELAY is harmless); the descriptor is never closed here.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&borrowed);
            if matches!(socket.r#type(), Ok(socket2::Type::STREAM)) {
                let _ = socket.set_tcp_nodelay(true);
            }
        }
    }
}

/// A cheap round trip used by `/health`.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

pub fn is_sqlite(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Sqlite
}

/// The file of a SQLite URL; None for PostgreSQL or an in-memory database.
pub fn sqlite_file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

/// The URL without its password, safe for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found() {
        assert_eq!(
            sqlite_file_path("sqlite://data/supervisor.db?mode=rwc").as_deref(),
            Some("data/supervisor.db")
        );
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(sqlite_file_path("postgres://localhost/test"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://user:secret@localhost:5432/db"),
            "postgres://user:***@localhost:5432/db"
        );
    }
}
