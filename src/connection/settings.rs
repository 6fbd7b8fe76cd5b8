//! The settings that define one broker session, and their translation into client options.

use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::entity::mqtt_connection;

const OUTGOING_INFLIGHT: u16 = 8;

/// Everything that, when changed, needs a new session (and so a restart of the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub connection_id: i32,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    pub use_tls: bool,
    pub ca_file: Option<String>,
    pub keepalive_secs: u16,
    pub clean_session: bool,
    /// Which of the connection's clients this is (0 to `shards` - 1).
    pub shard: i32,
    /// Clients sharing the connection's subscriptions; 1 is a plain connection.
    pub shards: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("port {0} is outside 1..=65535")]
    Port(i32),
    #[error("keepalive_secs {0} is outside 5..=65535")]
    Keepalive(i32),
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot load the system's root certificates: {0}")]
    SystemRoots(String),
}

impl ConnectionSettings {
    pub fn from_row(row: &mqtt_connection::Model) -> Result<ConnectionSettings, SettingsError> {
        let port = u16::try_from(row.port)
            .ok()
            .filter(|port| *port > 0)
            .ok_or(SettingsError::Port(row.port))?;
        let keepalive_secs = u16::try_from(row.keepalive_secs)
            .ok()
            .filter(|secs| *secs >= 5)
            .ok_or(SettingsError::Keepalive(row.keepalive_secs))?;
        Ok(ConnectionSettings {
            connection_id: row.id,
            host: row.host.clone(),
            port,
            username: row.username.clone().filter(|name| !name.is_empty()),
            password: row.password.clone(),
            client_id: row.client_id.clone(),
            use_tls: row.use_tls,
            ca_file: row.ca_file.clone().filter(|path| !path.is_empty()),
            keepalive_secs,
            clean_session: row.clean_session,
            shard: 0,
            shards: row.shards.max(1),
        })
    }

    /// The same connection's client number `shard`.
    pub fn for_shard(&self, shard: i32) -> ConnectionSettings {
        ConnectionSettings {
            shard,
            ..self.clone()
        }
    }

    /// The client id the broker sees: `{client_id}-{shard}` when the connection has several
    /// shards, each with its own persistent session.
    pub fn broker_client_id(&self) -> String {
        if self.shards > 1 {
            format!("{}-{}", self.client_id, self.shard)
        } else {
            self.client_id.clone()
        }
    }

    /// Client options with manual acknowledgements: the pipeline acks only after commit.
    /// `inflight` is the broker's window of unacknowledged messages to us; it sizes the request
    /// queue that carries our acknowledgements.
    pub fn mqtt_options(&self, inflight: u16) -> Result<MqttOptions, SettingsError> {
        let mut options = MqttOptions::new(self.broker_client_id(), self.host.clone(), self.port);
        options
            .set_keep_alive(Duration::from_secs(u64::from(self.keepalive_secs)))
            .set_clean_session(self.clean_session)
            .set_manual_acks(true)
            // This bounds our own outgoing publishes, of which there are none; the client keeps
            // a slot array of this size per connection, so a large value costs memory for nothing.
            .set_inflight(OUTGOING_INFLIGHT)
            .set_max_packet_size(16 * 1024 * 1024, 1024 * 1024)
            .set_request_channel_capacity(usize::from(inflight).max(64) * 2);
        if let Some(username) = &self.username {
            options.set_credentials(username.clone(), self.password.clone().unwrap_or_default());
        }
        if self.use_tls {
            let transport = match &self.ca_file {
                Some(path) => {
                    let ca = std::fs::read(path).map_err(|source| SettingsError::CaFile {
                        path: path.clone(),
                        source,
                    })?;
                    Transport::tls_with_config(TlsConfiguration::Simple {
                        ca,
                        alpn: None,
                        client_auth: None,
                    })
                }
                None => {
                    // The client library panics when the platform store cannot be read; turn that
                    // into an error on this one connection instead of a crashed task.
                    let configuration = std::panic::catch_unwind(TlsConfiguration::default)
                        .map_err(|_| {
                            SettingsError::SystemRoots(
                                "the platform certificate store is unreadable; set ca_file".into(),
                            )
                        })?;
                    Transport::tls_with_config(configuration)
                }
            };
            options.set_transport(transport);
        }
        Ok(options)
    }
}
