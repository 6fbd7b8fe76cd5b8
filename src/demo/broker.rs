//! An MQTT broker inside the process (rumqttd), so the demo needs nothing installed.

use std::net::SocketAddr;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid embedded broker configuration: {0}")]
    Config(String),
    #[error(
        "the embedded broker cannot listen on {address}: the port is taken (pass --broker-port)"
    )]
    PortTaken { address: SocketAddr },
    #[error("the embedded broker did not start listening on {address} within 5 s")]
    NotListening { address: SocketAddr },
}

/// Starts the broker on its own thread and returns once it accepts connections.
pub async fn start(address: SocketAddr) -> Result<(), BrokerError> {
    if std::net::TcpListener::bind(address).is_err() {
        return Err(BrokerError::PortTaken { address });
    }
    // Large queues: a subscriber that falls behind must be slowed, not silently dropped.
    let text = format!(
        r#"
id = 0
[router]
max_connections = 10010
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v4.demo]
name = "demo"
listen = "{address}"
next_connection_delay_ms = 1

[v4.demo.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 1000
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = Figment::from(Toml::string(&text))
        .extract()
        .map_err(|error| BrokerError::Config(error.to_string()))?;
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                tracing::error!(%error, "the embedded broker stopped");
            }
        })
        .map_err(|error| BrokerError::Config(error.to_string()))?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BrokerError::NotListening { address })
}
