//! The settings that define one broker session, and their translation into client options.

use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, Transport};
use serde::{Deserialize, Serialize};

use super::tls::{client_configuration, TlsError};
use crate::entity::mqtt_connection;
use crate::secrets::{SecretError, Secrets};

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
    /// Mutual TLS: the client certificate and its key (PEM files).
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    /// What the broker publishes for us when our session dies without a DISCONNECT.
    pub last_will: Option<Will>,
}

/// A last will as stored on the connection (`last_will` column and API field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Will {
    /// A topic name: no wildcards, not empty, not starting with `$`.
    pub topic: String,
    /// Sent as it is (text).
    pub payload: String,
    #[serde(default = "default_will_qos")]
    #[schema(minimum = 0, maximum = 2)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

fn default_will_qos() -> u8 {
    1
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("port {0} is outside 1..=65535")]
    Port(i32),
    #[error("keepalive_secs {0} is outside 5..=65535")]
    Keepalive(i32),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the stored last will cannot be read: {0}")]
    Will(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl ConnectionSettings {
    /// The settings a row asks for, its stored password opened with `secrets`.
    pub fn from_row(
        row: &mqtt_connection::Model,
        secrets: &Secrets,
    ) -> Result<ConnectionSettings, SettingsError> {
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
            password: row
                .password
                .as_deref()
                .map(|stored| secrets.open(stored))
                .transpose()?,
            client_id: row.client_id.clone(),
            use_tls: row.use_tls,
            ca_file: row.ca_file.clone().filter(|path| !path.is_empty()),
            keepalive_secs,
            clean_session: row.clean_session,
            shard: 0,
            shards: row.shards.max(1),
            client_cert_file: row.client_cert_file.clone().filter(|path| !path.is_empty()),
            client_key_file: row.client_key_file.clone().filter(|path| !path.is_empty()),
            last_will: row
                .last_will
                .clone()
                .filter(|value| !value.is_null())
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| SettingsError::Will(error.to_string()))?,
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
        if let Some(will) = &self.last_will {
            options.set_last_will(LastWill::new(
                will.topic.clone(),
                will.payload.clone().into_bytes(),
                qos_of(will.qos),
                will.retain,
            ));
        }
        if self.use_tls {
            let configuration = client_configuration(
                self.ca_file.as_deref(),
                self.client_cert_file.as_deref(),
                self.client_key_file.as_deref(),
            )?;
            options.set_transport(Transport::tls_with_config(configuration));
        }
        Ok(options)
    }
}

fn qos_of(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}
