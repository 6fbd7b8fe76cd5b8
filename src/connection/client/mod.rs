//! The MQTT client of one broker session, the same to the connection task whichever protocol
//! version the connection speaks: [`mqtt311`] over rumqttc's 3.1.1 client (with its own fast
//! acknowledgement writing), [`mqtt5`] over rumqttc's v5 client. Both turn the library's packets
//! into [`ClientEvent`]s and its errors into a [`Failure`] the operator can act on.

mod mqtt311;
mod mqtt5;

pub(super) use mqtt311::qos_of as mqtt311_qos;
pub(super) use mqtt5::qos_of as mqtt5_qos;

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;

use crate::delivery::Acknowledgement;

/// Options for a client of either protocol version.
pub enum ClientOptions {
    V3_1_1(Box<rumqttc::MqttOptions>),
    V5(Box<rumqttc::v5::MqttOptions>),
}

/// A message as the connection task handles it, whichever protocol brought it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    /// 0, 1 or 2.
    pub qos: u8,
    pub packet_id: u16,
    /// The broker kept it and replays it on subscribe: it is not news of this moment.
    pub retain: bool,
    /// MQTT 5 user properties in the order sent; always empty on 3.1.1.
    pub user_properties: Vec<(String, String)>,
}

impl Message {
    /// What acknowledges this message; one at QoS 0 needs none.
    pub fn acknowledgement(&self) -> Option<Acknowledgement> {
        match self.qos {
            0 => None,
            1 => Some(Acknowledgement::PubAck(self.packet_id)),
            _ => Some(Acknowledgement::PubRec(self.packet_id)),
        }
    }
}

/// The broker's answer to one filter of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Granted(u8),
    /// Refused, with the broker's reason where the protocol carries one (MQTT 5).
    Refused(Option<String>),
}

/// What the session hears from its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Connected {
        session_present: bool,
    },
    Message(Message),
    SubscribeSent {
        packet_id: u16,
    },
    SubscriptionAnswer {
        packet_id: u16,
        grants: Vec<Grant>,
    },
    /// One of our publishes was written, with the packet id it got (0 at QoS 0); they are
    /// written in the order they were asked for.
    PublishWritten {
        packet_id: u16,
    },
    /// The broker's PUBACK (QoS 1) or PUBCOMP (QoS 2) of one of our publishes; on MQTT 5 a
    /// reason code of failure (in PUBACK or PUBREC) is given as `refusal`.
    PublishAcknowledged {
        packet_id: u16,
        refusal: Option<String>,
    },
    /// Anything the session has nothing to do with (pings, our own acknowledgements).
    Other,
}

/// Why a session ended or could not begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The broker refused us (credentials, authorisation, a banned client): retrying quickly
    /// will not help.
    pub refused: bool,
    /// For the connection log and `last_error`: the reason, with the broker's reason code and
    /// reason string when it sent them.
    pub message: String,
}

/// A message the service publishes (a command to a device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPublish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

/// A subscription request for one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRequest {
    pub filter: String,
    pub qos: u8,
}

#[derive(Debug, thiserror::Error)]
#[error("the client's request queue is full or closed: {0}")]
pub struct RequestError(String);

/// One broker session's client: requests (subscriptions), events and acknowledgements.
pub enum Client {
    V3_1_1(Box<mqtt311::Client>),
    V5(Box<mqtt5::Client>),
}

impl Client {
    /// `waiting_gauge` shows acknowledgements that wait for the socket.
    pub fn new(options: ClientOptions, waiting_gauge: Gauge) -> Client {
        match options {
            ClientOptions::V3_1_1(options) => {
                Client::V3_1_1(Box::new(mqtt311::Client::new(*options, waiting_gauge)))
            }
            ClientOptions::V5(options) => {
                Client::V5(Box::new(mqtt5::Client::new(*options, waiting_gauge)))
            }
        }
    }

    /// The next event of the session.
    pub async fn next_event(&mut self) -> Result<ClientEvent, Failure> {
        match self {
            Client::V3_1_1(client) => client.next_event().await,
            Client::V5(client) => client.next_event().await,
        }
    }

    /// The next message the client has already read, if that is what comes next. The client
    /// reads packets in bunches and hands them out one `poll` at a time; taking the rest of a
    /// bunch here spares a round through the connection task's `select!` per message.
    pub fn next_read_message(&mut self) -> Option<Message> {
        match self {
            Client::V3_1_1(client) => client.next_read_message(),
            Client::V5(client) => client.next_read_message(),
        }
    }

    pub fn push_acknowledgement(&mut self, acknowledgement: Acknowledgement) {
        match self {
            Client::V3_1_1(client) => client.push_acknowledgement(acknowledgement),
            Client::V5(client) => client.push_acknowledgement(acknowledgement),
        }
    }

    /// Writes (or queues to the client) waiting acknowledgements without waiting for the
    /// socket. An error means the session is breaking; the next event reports it.
    pub async fn write_acknowledgements(&mut self) -> Result<(), RequestError> {
        match self {
            Client::V3_1_1(client) => client
                .write_acknowledgements()
                .await
                .map_err(|error| RequestError(error.to_string())),
            Client::V5(client) => client.write_acknowledgements(),
        }
    }

    /// Writes our publishes now, while the task is held up waiting for the writer rather than
    /// polling the client (then waiting acknowledgements, as `write_acknowledgements`).
    pub async fn write_publishes_now(&mut self) -> Result<(), RequestError> {
        match self {
            Client::V5(client) => client.write_publishes_now().await,
            // The 3.1.1 client writes to the socket itself, polled or not.
            Client::V3_1_1(_) => self.write_acknowledgements().await,
        }
    }

    /// The session they belonged to is gone; the broker delivers those messages again.
    pub fn forget_acknowledgements(&mut self) {
        match self {
            Client::V3_1_1(client) => client.forget_acknowledgements(),
            Client::V5(client) => client.forget_acknowledgements(),
        }
    }

    pub fn subscribe(&self, filters: Vec<FilterRequest>) -> Result<(), RequestError> {
        match self {
            Client::V3_1_1(client) => client.subscribe(filters),
            Client::V5(client) => client.subscribe(filters),
        }
    }

    pub fn unsubscribe(&self, filter: String) -> Result<(), RequestError> {
        match self {
            Client::V3_1_1(client) => client.unsubscribe(filter),
            Client::V5(client) => client.unsubscribe(filter),
        }
    }

    /// Queues a publish of ours ahead of everything the client has queued (acknowledgements
    /// included, so a flood of incoming messages does not hold a command back);
    /// `PublishWritten` follows when it is written. The caller keeps a few in flight at most.
    pub fn publish(&mut self, publish: OutgoingPublish) {
        match self {
            Client::V3_1_1(client) => client.publish(publish),
            Client::V5(client) => client.publish(publish),
        }
    }

    /// At shutdown: sends the acknowledgements of what was committed, then disconnects on
    /// purpose, so the broker does not publish our will.
    pub async fn close(self) {
        match self {
            Client::V3_1_1(client) => client.close().await,
            Client::V5(client) => client.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(qos: u8, packet_id: u16) -> Message {
        Message {
            topic: "t".into(),
            payload: Bytes::new(),
            qos,
            packet_id,
            retain: false,
            user_properties: Vec::new(),
        }
    }

    #[test]
    fn each_quality_of_service_gets_its_own_acknowledgement() {
        assert_eq!(message(0, 0).acknowledgement(), None);
        assert_eq!(
            message(1, 7).acknowledgement(),
            Some(Acknowledgement::PubAck(7))
        );
        assert_eq!(
            message(2, 8).acknowledgement(),
            Some(Acknowledgement::PubRec(8))
        );
    }
}
