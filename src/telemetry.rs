//! Where the service tells what it does: the console, `mqtt_conn.log`, `mqtt_parsing.log` and
//! Sentry.

use std::path::Path;

use file_rotate::compression::Compression;
use file_rotate::suffix::{AppendTimestamp, FileLimit};
use file_rotate::{ContentLimit, FileRotate, TimeFrequency};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{Config, LogFormat};

/// Target of events that belong in `mqtt_conn.log`.
pub const CONNECTION_TARGET: &str = "mqtt_conn";
/// Target of events that belong in `mqtt_parsing.log`.
pub const PARSING_TARGET: &str = "mqtt_parsing";

pub const CONNECTION_LOG_FILE: &str = "mqtt_conn.log";
pub const PARSING_LOG_FILE: &str = "mqtt_parsing.log";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot create the log directory {path} (logging.dir / SUPERVISOR_LOG_DIR): {source}")]
    LogDirectory {
        path: String,
        source: std::io::Error,
    },
    #[error("logging is already initialised")]
    AlreadyInitialised,
}

/// Keeps the log writers flushing and Sentry sending until it is dropped at exit.
pub struct TelemetryGuard {
    _writers: Vec<WorkerGuard>,
    _sentry: Option<sentry::ClientInitGuard>,
}

pub fn init(config: &Config) -> Result<TelemetryGuard, TelemetryError> {
    let directory = &config.logging.dir;
    std::fs::create_dir_all(directory).map_err(|source| TelemetryError::LogDirectory {
        path: directory.display().to_string(),
        source,
    })?;
    let (connection_writer, connection_guard) = tracing_appender::non_blocking(rotating_file(
        directory,
        CONNECTION_LOG_FILE,
        config.logging.keep_files,
    ));
    let (parsing_writer, parsing_guard) = tracing_appender::non_blocking(rotating_file(
        directory,
        PARSING_LOG_FILE,
        config.logging.keep_files,
    ));

    let console_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.logging.level));
    let console = match config.logging.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(console_filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(console_filter)
            .boxed(),
    };
    let connection_file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(connection_writer)
        .with_filter(filter_fn(|metadata| metadata.target() == CONNECTION_TARGET));
    let parsing_file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(parsing_writer)
        .with_filter(filter_fn(|metadata| metadata.target() == PARSING_TARGET));

    let sentry_guard = init_sentry(config);
    // Warnings travel as breadcrumbs of the next error; errors become Sentry events. Fields named
    // `tags.*` become Sentry tags (site, connection, topic, parser).
    let sentry_layers = sentry_guard.as_ref().map(|_| {
        sentry_tracing::BreadcrumbLayer::new()
            .with_filter(filter_fn(|metadata| {
                *metadata.level() == tracing::Level::WARN
            }))
            .and_then(
                sentry_tracing::ErrorLayer::new()
                    .with_filter(tracing_subscriber::filter::LevelFilter::ERROR),
            )
    });

    tracing_subscriber::registry()
        .with(console)
        .with(connection_file)
        .with(parsing_file)
        .with(sentry_layers)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)?;

    Ok(TelemetryGuard {
        _writers: vec![connection_guard, parsing_guard],
        _sentry: sentry_guard,
    })
}

/// The current file keeps its plain name; each day's earlier content moves to `NAME.YYYYMMDD`.
fn rotating_file(directory: &Path, name: &str, keep_files: usize) -> FileRotate<AppendTimestamp> {
    FileRotate::new(
        directory.join(name),
        AppendTimestamp::default(FileLimit::MaxFiles(keep_files.max(1))),
        ContentLimit::Time(TimeFrequency::Daily),
        Compression::None,
        None,
    )
}

fn init_sentry(config: &Config) -> Option<sentry::ClientInitGuard> {
    if config.sentry.dsn.is_empty() {
        return None;
    }
    let dsn = config.sentry.dsn.parse().ok()?;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = sentry::release_name!();
    options.environment = Some(config.sentry.environment.clone().into());
    options.send_default_pii = false;
    options.attach_stacktrace = true;
    Some(sentry::init(options))
}
