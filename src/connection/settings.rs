//! The settings that define one broker session, and their translation into client options.

use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, Transport};
use serde::{Deserialize, Serialize};

use super::client::{mqtt311_qos, mqtt5_qos, ClientOptions};
use super::tls::{client_configuration, TlsError};
use crate::entity::mqtt_connection;
use crate::secrets::{SecretError, Secrets};

/// Our own publishes (commands) in flight at most; the client keeps a slot per packet id.
const OUTGOING_INFLIGHT: u16 = 16;
/// The largest message accepted from the broker.
const MAX_INCOMING_PACKET_BYTES: usize = 16 * 1024 * 1024;
const MAX_OUTGOING_PACKET_BYTES: usize = 1024 * 1024;

/// The MQTT version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    V3_1_1,
    V5,
}

impl Protocol {
    /// The names the API and the database use.
    pub const NAMES: [&'static str; 2] = ["3.1.1", "5"];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V3_1_1 => "3.1.1",
            Protocol::V5 => "5",
        }
    }

    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "3.1.1" => Some(Protocol::V3_1_1),
            "5" => Some(Protocol::V5),
            _ => None,
        }
    }
}

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
    pub protocol: Protocol,
    /// MQTT 5: how long the broker keeps a persistent session after we leave; `None` asks
    /// for "never expires".
    pub session_expiry_secs: Option<u32>,
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
    #[error("protocol \"{0}\" is not one of \"3.1.1\" or \"5\"")]
    Protocol(String),
    #[error("session_expiry_secs {0} is outside 0..=4294967295")]
    SessionExpiry(i64),
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
            protocol: Protocol::parse(&row.protocol)
                .ok_or_else(|| SettingsError::Protocol(row.protocol.clone()))?,
            session_expiry_secs: row
                .session_expiry_secs
                .map(|secs| u32::try_from(secs).map_err(|_| SettingsError::SessionExpiry(secs)))
                .transpose()?,
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
    /// queue that carries our acknowledgements and, on MQTT 5, is the receive maximum the
    /// broker must keep to.
    pub fn client_options(&self, inflight: u16) -> Result<ClientOptions, SettingsError> {
        let tls = if self.use_tls {
            Some(client_configuration(
                self.ca_file.as_deref(),
                self.client_cert_file.as_deref(),
                self.client_key_file.as_deref(),
            )?)
        } else {
            None
        };
        let request_capacity = usize::from(inflight).max(64) * 2;
        let keep_alive = Duration::from_secs(u64::from(self.keepalive_secs));
        match self.protocol {
            Protocol::V3_1_1 => {
                let mut options =
                    MqttOptions::new(self.broker_client_id(), self.host.clone(), self.port);
                options
                    .set_keep_alive(keep_alive)
                    .set_clean_session(self.clean_session)
                    .set_manual_acks(true)
                    // This bounds our own publishes (commands) in flight; the client keeps a
                    // slot array of this size per connection, so a large value costs memory on
                    // every connection for a rare burst of commands.
                    .set_inflight(OUTGOING_INFLIGHT)
                    .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES)
                    .set_request_channel_capacity(request_capacity);
                if let Some(username) = &self.username {
                    options.set_credentials(
                        username.clone(),
                        self.password.clone().unwrap_or_default(),
                    );
                }
                if let Some(will) = &self.last_will {
                    options.set_last_will(LastWill::new(
                        will.topic.clone(),
                        will.payload.clone().into_bytes(),
                        mqtt311_qos(will.qos),
                        will.retain,
                    ));
                }
                if let Some(configuration) = tls {
                    options.set_transport(Transport::tls_with_config(configuration));
                }
                Ok(ClientOptions::V3_1_1(Box::new(options)))
            }
            Protocol::V5 => {
                use rumqttc::v5::mqttbytes::v5::LastWill as LastWillV5;
                let mut options = rumqttc::v5::MqttOptions::new(
                    self.broker_client_id(),
                    self.host.clone(),
                    self.port,
                );
                // A persistent session must outlive the network connection: MQTT 5 ends it at
                // once unless an expiry interval says otherwise.
                let session_expiry = if self.clean_session {
                    None
                } else {
                    Some(self.session_expiry_secs.unwrap_or(u32::MAX))
                };
                options
                    .set_keep_alive(keep_alive)
                    .set_clean_start(self.clean_session)
                    .set_session_expiry_interval(session_expiry)
                    .set_receive_maximum(Some(inflight.max(1)))
                    .set_max_packet_size(Some(MAX_INCOMING_PACKET_BYTES as u32))
                    .set_manual_acks(true)
                    .set_outgoing_inflight_upper_limit(OUTGOING_INFLIGHT)
                    .set_request_channel_capacity(request_capacity);
                if let Some(username) = &self.username {
                    options.set_credentials(
                        username.clone(),
                        self.password.clone().unwrap_or_default(),
                    );
                }
                if let Some(will) = &self.last_will {
                    options.set_last_will(LastWillV5::new(
                        will.topic.clone(),
                        will.payload.clone().into_bytes(),
                        mqtt5_qos(will.qos),
                        will.retain,
                        None,
                    ));
                }
                if let Some(configuration) = tls {
                    options.set_transport(Transport::tls_with_config(configuration));
                }
                Ok(ClientOptions::V5(Box::new(options)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(protocol: Protocol, clean_session: bool) -> ConnectionSettings {
        ConnectionSettings {
            connection_id: 1,
            host: "127.0.0.1".into(),
            port: 1883,
            username: None,
            password: None,
            client_id: "supervisor".into(),
            use_tls: false,
            ca_file: None,
            keepalive_secs: 30,
            clean_session,
            shard: 1,
            shards: 2,
            client_cert_file: None,
            client_key_file: None,
            last_will: None,
            protocol,
            session_expiry_secs: None,
        }
    }

    #[test]
    fn protocol_names_round_trip_and_nothing_else_is_one() {
        for name in Protocol::NAMES {
            assert_eq!(Protocol::parse(name).map(Protocol::as_str), Some(name));
        }
        assert_eq!(Protocol::parse("5.0"), None);
        assert_eq!(Protocol::parse("3"), None);
        assert_eq!(Protocol::default(), Protocol::V3_1_1);
    }

    #[test]
    fn an_mqtt5_persistent_session_outlives_the_connection_and_flow_control_fits_the_pipeline() {
        let Ok(ClientOptions::V5(options)) = settings(Protocol::V5, false).client_options(500)
        else {
            panic!("MQTT 5 options expected");
        };
        assert!(!options.clean_start());
        assert_eq!(options.session_expiry_interval(), Some(u32::MAX));
        assert_eq!(options.receive_maximum(), Some(500));
        assert_eq!(options.client_id(), "supervisor-1");
        assert!(options.manual_acks());

        let mut expiring = settings(Protocol::V5, false);
        expiring.session_expiry_secs = Some(3600);
        let Ok(ClientOptions::V5(options)) = expiring.client_options(500) else {
            panic!("MQTT 5 options expected");
        };
        assert_eq!(options.session_expiry_interval(), Some(3600));

        let Ok(ClientOptions::V5(options)) = settings(Protocol::V5, true).client_options(500)
        else {
            panic!("MQTT 5 options expected");
        };
        assert!(options.clean_start());
        assert_eq!(options.session_expiry_interval(), None);
    }

    #[test]
    fn mqtt311_options_keep_the_session_unless_asked_not_to() {
        let Ok(ClientOptions::V3_1_1(options)) =
            settings(Protocol::V3_1_1, false).client_options(500)
        else {
            panic!("MQTT 3.1.1 options expected");
        };
        assert!(!options.clean_session());
        assert!(options.manual_acks());
        assert_eq!(options.request_channel_capacity(), 1000);
    }
}
