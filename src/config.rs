//! One typed configuration: built-in defaults (`config/default.toml`), then an optional file,
//! then the environment variables of the operator contract.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The defaults ship inside the binary so that it runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variables and the configuration key each one sets.
pub const ENVIRONMENT_KEYS: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("SUPERVISOR_HTTP_ADDR", "http.addr"),
    ("SUPERVISOR_ADMIN_TOKEN", "api.admin_token"),
    ("SUPERVISOR_READ_TOKEN", "api.read_token"),
    ("SUPERVISOR_SECRET_KEY", "secrets.key"),
    ("SUPERVISOR_NEW_SECRET_KEY", "secrets.new_key"),
    ("SUPERVISOR_RECONCILE_SECS", "supervisor.reconcile_secs"),
    ("SUPERVISOR_INSTANCE_ID", "supervisor.instance_id"),
    ("SUPERVISOR_LEASE_SECS", "supervisor.lease_secs"),
    ("SUPERVISOR_LOG_DIR", "logging.dir"),
    ("SUPERVISOR_PARSERS_DIR", "pipeline.parsers_dir"),
    ("SENTRY_DSN", "sentry.dsn"),
];

/// The shortest admin or read token accepted.
const MIN_TOKEN_CHARS: usize = 24;

const NUMERIC_KEYS: &[&str] = &["supervisor.reconcile_secs", "supervisor.lease_secs"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(String),
    #[error("invalid configuration: key `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub api: ApiConfig,
    pub supervisor: SupervisorConfig,
    pub pipeline: PipelineConfig,
    pub logging: LoggingConfig,
    pub sentry: SentryConfig,
    pub jobs: JobsConfig,
    pub secrets: SecretsConfig,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Base64 of 32 bytes: broker passwords are stored sealed with it. Empty: stored as given.
    pub key: String,
    /// The key `migrate --rotate-secret-key` moves the stored passwords to.
    pub new_key: String,
}

impl std::fmt::Debug for SecretsConfig {
    // The key is a secret: never let it reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |value: &str| if value.is_empty() { "" } else { "***" };
        f.debug_struct("SecretsConfig")
            .field("key", &hidden(&self.key))
            .field("new_key", &hidden(&self.new_key))
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub connect_wait_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub body_limit_bytes: usize,
    pub cors_origins: Vec<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub admin_token: String,
    /// A second token for reads and the WebSocket only; empty: none.
    pub read_token: String,
    pub public_read: bool,
}

impl std::fmt::Debug for ApiConfig {
    // The token is a secret: never let it reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field(
                "admin_token",
                &if self.admin_token.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field(
                "read_token",
                &if self.read_token.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("public_read", &self.public_read)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    pub reconcile_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_secs: u64,
    pub inflight: u16,
    /// This instance's name among those sharing the database; empty: host name and process id.
    pub instance_id: String,
    /// How long an instance owns a connection shard without renewing its lease.
    pub lease_secs: u64,
}

impl SupervisorConfig {
    /// The configured instance id, or the host name and process id.
    pub fn instance_id(&self) -> String {
        if !self.instance_id.trim().is_empty() {
            return self.instance_id.trim().to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|host| host.trim().to_string())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}-{}", std::process::id())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub parsers_dir: PathBuf,
    pub max_payload_bytes: usize,
    pub batch_max_messages: usize,
    pub batch_linger_ms: u64,
    pub sample_bytes: usize,
    pub state_flush_ms: u64,
    pub writers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    pub dir: PathBuf,
    pub format: LogFormat,
    pub level: String,
    pub keep_files: usize,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentryConfig {
    pub dsn: String,
    pub environment: String,
    pub parsing_error_events_per_minute: u32,
    pub alert_after_secs: u64,
}

impl std::fmt::Debug for SentryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentryConfig")
            .field("dsn", &if self.dsn.is_empty() { "" } else { "***" })
            .field("environment", &self.environment)
            .field("alert_after_secs", &self.alert_after_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub offline_after_secs: u64,
    pub offline_check_cron: String,
    pub reading_retention_days: u32,
    pub log_retention_days: u32,
    /// How long audit-log rows are kept (0: forever).
    pub audit_retention_days: u32,
    pub retention_cron: String,
}

impl Config {
    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, |name| std::env::var(name).ok())
    }

    /// As [`Config::load`], reading variables through `lookup` so tests need not touch the process
    /// environment.
    pub fn load_with_env(
        file: Option<&Path>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut from_environment = Vec::new();
        for (variable, key) in ENVIRONMENT_KEYS {
            if let Some(value) = lookup(variable) {
                figment = figment.merge(environment_value(key, &value));
                from_environment.push((*variable, *key));
            }
        }
        let config: Config = figment.extract().map_err(|error| {
            let key = error.path.join(".");
            let source = from_environment
                .iter()
                .find(|(_, environment_key)| *environment_key == key)
                .map(|(variable, _)| format!("environment variable {variable}"))
                .or_else(|| {
                    error
                        .metadata
                        .as_ref()
                        .map(|metadata| metadata.name.to_string())
                })
                .unwrap_or_else(|| "configuration".to_string());
            ConfigError::Load(format!("key `{key}`: {} (set by {source})", error.kind))
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.as_str();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return invalid(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql:// (env DATABASE_URL)",
            );
        }
        for (key, value, variable) in [
            ("secrets.key", &self.secrets.key, "SUPERVISOR_SECRET_KEY"),
            (
                "secrets.new_key",
                &self.secrets.new_key,
                "SUPERVISOR_NEW_SECRET_KEY",
            ),
        ] {
            if crate::secrets::Secrets::from_base64(value).is_err() {
                return Err(ConfigError::Invalid {
                    key,
                    problem: format!(
                        "must be 32 bytes in base64, e.g. from `openssl rand -base64 32` (env \
                         {variable})"
                    ),
                });
            }
        }
        // A short token is a guessable one; 24 characters is what `openssl rand -hex 12` gives.
        for (key, token, variable) in [
            (
                "api.admin_token",
                &self.api.admin_token,
                "SUPERVISOR_ADMIN_TOKEN",
            ),
            (
                "api.read_token",
                &self.api.read_token,
                "SUPERVISOR_READ_TOKEN",
            ),
        ] {
            if !token.is_empty() && token.chars().count() < MIN_TOKEN_CHARS {
                return Err(ConfigError::Invalid {
                    key,
                    problem: format!(
                        "must be at least {MIN_TOKEN_CHARS} characters, e.g. from \
                         `openssl rand -hex 24` (env {variable})"
                    ),
                });
            }
        }
        if !self.api.read_token.is_empty() && self.api.read_token == self.api.admin_token {
            return invalid(
                "api.read_token",
                "must differ from the admin token (env SUPERVISOR_READ_TOKEN)",
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.supervisor.reconcile_secs == 0 || self.supervisor.reconcile_secs > 86_400 {
            return invalid(
                "supervisor.reconcile_secs",
                "must be between 1 and 86400 seconds (env SUPERVISOR_RECONCILE_SECS)",
            );
        }
        if self.supervisor.backoff_initial_ms == 0 {
            return invalid("supervisor.backoff_initial_ms", "must be at least 1");
        }
        if self.supervisor.backoff_max_secs * 1000 < self.supervisor.backoff_initial_ms {
            return invalid(
                "supervisor.backoff_max_secs",
                "must be at least supervisor.backoff_initial_ms",
            );
        }
        if !(3..=3600).contains(&self.supervisor.lease_secs) {
            return invalid(
                "supervisor.lease_secs",
                "must be between 3 and 3600 seconds (env SUPERVISOR_LEASE_SECS)",
            );
        }
        if self.supervisor.instance_id.len() > 200
            || self.supervisor.instance_id.chars().any(char::is_control)
        {
            return invalid(
                "supervisor.instance_id",
                "must be at most 200 characters without control characters (env SUPERVISOR_INSTANCE_ID)",
            );
        }
        if self.supervisor.inflight == 0 {
            return invalid("supervisor.inflight", "must be between 1 and 65535");
        }
        if self.pipeline.max_payload_bytes == 0 {
            return invalid("pipeline.max_payload_bytes", "must be at least 1");
        }
        if self.pipeline.batch_max_messages == 0 || self.pipeline.batch_max_messages > 10_000 {
            return invalid("pipeline.batch_max_messages", "must be between 1 and 10000");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.logging.level).is_err() {
            return invalid(
                "logging.level",
                "must be a level (error, warn, info, debug, trace) or a RUST_LOG-style filter",
            );
        }
        if !self.sentry.dsn.is_empty() && self.sentry.dsn.parse::<sentry::types::Dsn>().is_err() {
            return invalid("sentry.dsn", "is not a valid Sentry DSN (env SENTRY_DSN)");
        }
        for (key, expression) in [
            ("jobs.offline_check_cron", &self.jobs.offline_check_cron),
            ("jobs.retention_cron", &self.jobs.retention_cron),
        ] {
            if expression.split_whitespace().count() != 6 {
                return invalid(
                    key,
                    "must be a 6-field cron expression (sec min hour day month weekday)",
                );
            }
        }
        Ok(())
    }

    /// Whether mutations and reads require the admin token.
    pub fn auth_enabled(&self) -> bool {
        !self.api.admin_token.is_empty()
    }
}

fn invalid<T>(key: &'static str, problem: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key,
        problem: problem.to_string(),
    })
}

/// One environment variable as a provider for its key. Values are read the way figment reads any
/// environment variable, so "30" is a number and "abc" a string; the type check comes at extraction.
fn environment_value(
    key: &str,
    value: &str,
) -> figment::providers::Serialized<figment::value::Value> {
    // Only numeric keys are parsed: a token or a path made of digits must stay a string.
    let parsed = if NUMERIC_KEYS.contains(&key) {
        value
            .parse::<figment::value::Value>()
            .unwrap_or_else(|never| match never {})
    } else {
        figment::value::Value::from(value.to_string())
    };
    figment::providers::Serialized::default(key, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(variables: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let variables: Vec<(String, String)> = variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Config::load_with_env(None, |name| {
            variables
                .iter()
                .find(|(variable, _)| variable == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn defaults_are_valid() {
        let config = load(&[]).expect("defaults load");
        assert_eq!(config.supervisor.reconcile_secs, 30);
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database.url, "sqlite://data/supervisor.db?mode=rwc");
        assert!(!config.auth_enabled());
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = load(&[
            ("SUPERVISOR_RECONCILE_SECS", "5"),
            ("SUPERVISOR_ADMIN_TOKEN", "0123456789abcdef01234567"),
            ("SUPERVISOR_HTTP_ADDR", "127.0.0.1:9999"),
        ])
        .expect("loads");
        assert_eq!(config.supervisor.reconcile_secs, 5);
        assert_eq!(config.api.admin_token, "0123456789abcdef01234567");
        assert_eq!(config.http.addr.port(), 9999);
    }

    #[test]
    fn a_read_token_equal_to_the_admin_token_is_refused() {
        let config = load(&[
            ("SUPERVISOR_ADMIN_TOKEN", "admin-secret-0123456789abcdef"),
            ("SUPERVISOR_READ_TOKEN", "reader-secret-0123456789abcdef"),
        ])
        .expect("loads");
        assert_eq!(config.api.read_token, "reader-secret-0123456789abcdef");
        assert!(!format!("{:?}", config.api).contains("reader-secret"));
        let message = load(&[
            ("SUPERVISOR_ADMIN_TOKEN", "the-same-token-0123456789"),
            ("SUPERVISOR_READ_TOKEN", "the-same-token-0123456789"),
        ])
        .expect_err("must fail")
        .to_string();
        assert!(message.contains("api.read_token"), "{message}");
    }

    #[test]
    fn a_short_token_is_refused_naming_its_key() {
        let message = load(&[("SUPERVISOR_ADMIN_TOKEN", "short")])
            .expect_err("must fail")
            .to_string();
        assert!(message.contains("api.admin_token"), "{message}");
        let message = load(&[
            ("SUPERVISOR_ADMIN_TOKEN", "0123456789abcdef01234567"),
            ("SUPERVISOR_READ_TOKEN", "short"),
        ])
        .expect_err("must fail")
        .to_string();
        assert!(message.contains("api.read_token"), "{message}");
    }

    #[test]
    fn a_secret_key_must_be_32_bytes_of_base64() {
        let message = load(&[("SUPERVISOR_SECRET_KEY", "c2hvcnQ=")])
            .expect_err("must fail")
            .to_string();
        assert!(message.contains("secrets.key"), "{message}");
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let config = load(&[("SUPERVISOR_SECRET_KEY", key)]).expect("loads");
        assert!(!format!("{config:?}").contains(key));
    }

    #[test]
    fn wrong_number_names_key_and_variable() {
        let message = load(&[("SUPERVISOR_RECONCILE_SECS", "soon")])
            .expect_err("must fail")
            .to_string();
        assert!(message.contains("supervisor.reconcile_secs"), "{message}");
        assert!(message.contains("SUPERVISOR_RECONCILE_SECS"), "{message}");
    }

    #[test]
    fn zero_reconcile_interval_is_rejected() {
        let message = load(&[("SUPERVISOR_RECONCILE_SECS", "0")])
            .expect_err("must fail")
            .to_string();
        assert!(message.contains("supervisor.reconcile_secs"), "{message}");
    }

    #[test]
    fn bad_address_and_url_name_their_keys() {
        let message = load(&[("SUPERVISOR_HTTP_ADDR", "nowhere")])
            .expect_err("must fail")
            .to_string();
        assert!(message.contains("http.addr"), "{message}");
        let message = load(&[("DATABASE_URL", "mysql://x")])
            .expect_err("must fail")
            .to_string();
        assert!(message.contains("database.url"), "{message}");
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("extra.toml");
        std::fs::write(&path, "[http]\nadress = \"x\"\n").expect("write");
        let message = Config::load_with_env(Some(&path), |_| None)
            .expect_err("must fail")
            .to_string();
        assert!(message.contains("adress"), "{message}");
    }
}
