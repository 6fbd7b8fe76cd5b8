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
    // A log line's stack is noise; panics carry their own.
    options.attach_stacktrace = false;
    Some(sentry::init(options))
}

/// At most `limit` events per minute; the rest are only counted. Keeps a flood of bad payloads
/// from exhausting a Sentry quota.
#[derive(Debug)]
pub struct RateLimit {
    limit: u32,
    window_start: Option<std::time::Instant>,
    sent_in_window: u32,
}

impl RateLimit {
    pub fn per_minute(limit: u32) -> RateLimit {
        RateLimit {
            limit,
            window_start: None,
            sent_in_window: 0,
        }
    }

    /// Whether an event may be sent at `now`.
    pub fn allow(&mut self, now: std::time::Instant) -> bool {
        let window_open = self
            .window_start
            .is_some_and(|start| now.duration_since(start) < std::time::Duration::from_secs(60));
        if !window_open {
            self.window_start = Some(now);
            self.sent_in_window = 0;
        }
        if self.sent_in_window < self.limit {
            self.sent_in_window += 1;
            true
        } else {
            false
        }
    }
}

/// Reports a parsing failure to Sentry (when configured) with its site, topic and parser as tags.
pub fn report_parsing_error(site_id: i32, topic: &str, parser: &str, error: &str) {
    sentry::with_scope(
        |scope| {
            scope.set_tag("site_id", site_id);
            scope.set_tag("topic", topic);
            scope.set_tag("parser", parser);
        },
        || sentry::capture_message(&format!("parsing failed: {error}"), sentry::Level::Warning),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn rate_limit_allows_the_limit_per_minute_then_resets() {
        let mut limit = RateLimit::per_minute(3);
        let start = Instant::now();
        let allowed = (0..10).filter(|_| limit.allow(start)).count();
        assert_eq!(allowed, 3);
        assert!(!limit.allow(start + Duration::from_secs(59)));
        assert!(limit.allow(start + Duration::from_secs(61)));
    }

    #[test]
    fn a_zero_limit_sends_nothing() {
        let mut limit = RateLimit::per_minute(0);
        assert!(!limit.allow(Instant::now()));
    }
}
