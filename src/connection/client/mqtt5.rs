//! The MQTT 5 client as a connection task uses it, over rumqttc's v5 event loop. Unlike the
//! 3.1.1 client it uses only the library's public interface: acknowledgements go through the
//! client's request queue (the broker's receive maximum bounds how many can be due at once), our
//! publishes (commands) through the event loop's public `pending` requests, which it takes first,
//! and a poll that makes no progress for twice the keep-alive ends the session, since the library
//! waits on a full socket without a limit of its own.

use std::collections::VecDeque;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Filter, Packet, PubAck, PubAckReason, PubRec, PubRecReason, Publish, SubAck,
    SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Request, StateError,
};
use rumqttc::{NetworkOptions, Outgoing};

use super::{ClientEvent, Failure, FilterRequest, Grant, Message, OutgoingPublish, RequestError};
use crate::delivery::Acknowledgement;

/// See the 3.1.1 client: a small send buffer keeps the keep-alive ping from waiting long.
const SEND_BUFFER_BYTES: u32 = 64 * 1024;
/// Acknowledgements in the client's request queue at most; the rest wait here. The loop writes
/// one request per turn, so this is how many turns a publish of ours may wait.
const ACKS_IN_QUEUE: usize = 32;
/// Events kept while the loop is turned early to write a command (see `write_publishes_now`).
const EARLY_MAX: usize = 2_048;

pub struct Client {
    requests: AsyncClient,
    event_loop: EventLoop,
    /// Acknowledgements not handed to the client's request queue yet.
    waiting: VecDeque<Acknowledgement>,
    /// Handed to the request queue and not written yet.
    acks_in_queue: usize,
    /// Our own publishes (commands), handed to the event loop before any acknowledgement.
    publishes: VecDeque<Publish>,
    /// What the event loop produced while it was turned to write our publishes during a wait
    /// for the writer (`write_publishes_now`): handed out before the loop is polled again.
    early: VecDeque<Event>,
    /// How the session broke while the loop was turned early; reported after `early`.
    early_failure: Option<Failure>,
    /// The broker's receive maximum (from its CONNACK): our QoS 1 and 2 publishes it takes
    /// unacknowledged at once. The loop checks it only for its request queue, not for the
    /// `pending` requests our publishes go through, so it is kept here.
    receive_maximum: u16,
    /// Our QoS 1 and 2 publishes handed to the loop and not acknowledged yet.
    unacknowledged: u16,
    waiting_gauge: Gauge,
    stuck_after: Duration,
}

impl Client {
    pub fn new(mut options: MqttOptions, waiting_gauge: Gauge) -> Client {
        let mut network_options = NetworkOptions::new();
        network_options.set_tcp_send_buffer_size(SEND_BUFFER_BYTES);
        options.set_network_options(network_options);
        let stuck_after = match options.keep_alive() {
            keep_alive if keep_alive.is_zero() => Duration::from_secs(60),
            keep_alive => keep_alive * 2,
        };
        let request_capacity = options.request_channel_capacity();
        let (requests, event_loop) = AsyncClient::new(options, request_capacity);
        Client {
            requests,
            event_loop,
            waiting: VecDeque::new(),
            acks_in_queue: 0,
            publishes: VecDeque::new(),
            early: VecDeque::new(),
            early_failure: None,
            receive_maximum: u16::MAX,
            unacknowledged: 0,
            waiting_gauge,
            stuck_after,
        }
    }

    pub async fn next_event(&mut self) -> Result<ClientEvent, Failure> {
        let polled = match self.early.pop_front() {
            Some(event) => Ok(event),
            None => match self.early_failure.take() {
                Some(failure) => Err(failure),
                None => self.poll().await,
            },
        };
        match polled {
            Ok(event) => {
                self.count(&event);
                Ok(client_event(event))
            }
            Err(failure) => {
                // Publishes (and stale acknowledgements) of the broken session are not the
                // next session's: the session's owner sends its commands again.
                self.event_loop.pending.clear();
                self.forget_acknowledgements();
                Err(failure)
            }
        }
    }

    /// Keeps the counts behind this client's limits in step with what the loop did.
    fn count(&mut self, event: &Event) {
        match event {
            Event::Outgoing(Outgoing::PubAck(_) | Outgoing::PubRec(_)) => {
                self.acks_in_queue = self.acks_in_queue.saturating_sub(1);
            }
            Event::Incoming(Packet::ConnAck(connack)) => {
                self.receive_maximum = connack
                    .properties
                    .as_ref()
                    .and_then(|properties| properties.receive_max)
                    .unwrap_or(u16::MAX);
                self.unacknowledged = 0;
            }
            Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_)) => {
                self.unacknowledged = self.unacknowledged.saturating_sub(1);
            }
            Event::Incoming(Packet::PubRec(received))
                if publish_received_refusal(received).is_some() =>
            {
                self.unacknowledged = self.unacknowledged.saturating_sub(1);
            }
            _ => {}
        }
    }

    /// One turn of the event loop. The library pings at least once per keep-alive, so a turn
    /// that returns nothing for twice as long is stuck on a socket the broker no longer reads.
    async fn poll(&mut self) -> Result<Event, Failure> {
        match tokio::time::timeout(self.stuck_after, self.event_loop.poll()).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(error)) => Err(failure(&error)),
            Err(_) => {
                self.event_loop.clean();
                Err(Failure {
                    refused: false,
                    message: format!(
                        "the connection made no progress for {} s",
                        self.stuck_after.as_secs()
                    ),
                })
            }
        }
    }

    /// Writes our publishes while the task is not polling (it waits for room in the writer's
    /// queue): the event loop writes only when turned, so it is turned here until they are
    /// written, and whatever it reads meanwhile waits in `early` for `next_event`. The broker's
    /// receive maximum bounds what it sends while we hold back acknowledgements; `EARLY_MAX`
    /// bounds the rest (QoS 0), after which the publishes go on the task's next turns.
    pub async fn write_publishes_now(&mut self) -> Result<(), RequestError> {
        self.write_acknowledgements()?;
        while !self.event_loop.pending.is_empty()
            && self.early_failure.is_none()
            && self.early.len() < EARLY_MAX
        {
            match self.poll().await {
                Ok(event) => self.early.push_back(event),
                Err(failure) => self.early_failure = Some(failure),
            }
        }
        Ok(())
    }

    pub fn next_read_message(&mut self) -> Option<Message> {
        // Events turned out early come before those the loop still holds.
        let events = if !self.early.is_empty() {
            &mut self.early
        } else if self.early_failure.is_some() {
            return None;
        } else {
            &mut self.event_loop.state.events
        };
        if !matches!(events.front(), Some(Event::Incoming(Packet::Publish(_)))) {
            return None;
        }
        match events.pop_front() {
            Some(Event::Incoming(Packet::Publish(publish))) => Some(message(publish)),
            _ => None,
        }
    }

    pub fn push_acknowledgement(&mut self, acknowledgement: Acknowledgement) {
        self.waiting.push_back(acknowledgement);
    }

    /// Hands our publishes, then waiting acknowledgements (up to `ACKS_IN_QUEUE` at a time),
    /// to the event loop; it writes them on its next turns.
    pub fn write_acknowledgements(&mut self) -> Result<(), RequestError> {
        // The loop takes its `pending` requests before anything in the request queue, so
        // our publishes go ahead of the acknowledgements queued there; as many as the broker
        // takes unacknowledged, and none while the loop holds a publish back on a packet id
        // still in use (it keeps only one).
        while let Some(publish) = self.publishes.front() {
            let counted = publish.qos != QoS::AtMostOnce;
            if self.event_loop.state.collision.is_some()
                || (counted && self.unacknowledged >= self.receive_maximum)
            {
                break;
            }
            if counted {
                self.unacknowledged += 1;
            }
            if let Some(publish) = self.publishes.pop_front() {
                self.event_loop.pending.push_back(Request::Publish(publish));
            }
        }
        while self.acks_in_queue < ACKS_IN_QUEUE {
            let Some(acknowledgement) = self.waiting.front() else {
                break;
            };
            if self
                .requests
                .try_ack(&acknowledged(*acknowledgement))
                .is_err()
            {
                // Full: the rest wait for the next round.
                break;
            }
            self.waiting.pop_front();
            self.acks_in_queue += 1;
        }
        self.waiting_gauge
            .set(i64::try_from(self.waiting.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    pub fn forget_acknowledgements(&mut self) {
        self.waiting.clear();
        self.acks_in_queue = 0;
        self.publishes.clear();
        self.unacknowledged = 0;
        self.waiting_gauge.set(0);
    }

    pub fn subscribe(&self, filters: Vec<FilterRequest>) -> Result<(), RequestError> {
        let filters: Vec<Filter> = filters
            .into_iter()
            .map(|request| Filter::new(request.filter, qos_of(request.qos)))
            .collect();
        self.requests
            .try_subscribe_many(filters)
            .map_err(|error| RequestError(error.to_string()))
    }

    pub fn unsubscribe(&self, filter: String) -> Result<(), RequestError> {
        self.requests
            .try_unsubscribe(filter)
            .map_err(|error| RequestError(error.to_string()))
    }

    pub fn publish(&mut self, publish: OutgoingPublish) {
        let mut packet = Publish::new(publish.topic, qos_of(publish.qos), publish.payload, None);
        packet.retain = publish.retain;
        self.publishes.push_back(packet);
    }

    pub async fn close(mut self) {
        let _ = self.write_acknowledgements();
        let _ = self.requests.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = self.event_loop.poll().await {
                if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A stand-in for the message an acknowledgement answers: the library builds the PUBACK or
/// PUBREC from its quality of service and packet id alone.
fn acknowledged(acknowledgement: Acknowledgement) -> Publish {
    let (qos, packet_id) = match acknowledgement {
        Acknowledgement::PubAck(packet_id) => (QoS::AtLeastOnce, packet_id),
        Acknowledgement::PubRec(packet_id) => (QoS::ExactlyOnce, packet_id),
    };
    let mut publish = Publish::new("", qos, Vec::new(), None);
    publish.pkid = packet_id;
    publish
}

fn message(publish: Publish) -> Message {
    Message {
        // Topic names are UTF-8 by the protocol; the library keeps them as bytes.
        topic: String::from_utf8_lossy(&publish.topic).into_owned(),
        qos: publish.qos as u8,
        packet_id: publish.pkid,
        retain: publish.retain,
        payload: publish.payload,
        user_properties: publish
            .properties
            .map(|properties| properties.user_properties)
            .unwrap_or_default(),
    }
}

fn client_event(event: Event) -> ClientEvent {
    match event {
        Event::Incoming(Packet::ConnAck(connack)) => ClientEvent::Connected {
            session_present: connack.session_present,
        },
        Event::Incoming(Packet::Publish(publish)) => ClientEvent::Message(message(publish)),
        Event::Outgoing(Outgoing::Subscribe(packet_id)) => ClientEvent::SubscribeSent { packet_id },
        Event::Outgoing(Outgoing::Publish(packet_id)) => ClientEvent::PublishWritten { packet_id },
        Event::Incoming(Packet::SubAck(suback)) => subscription_answer(&suback),
        Event::Incoming(Packet::PubAck(ack)) => ClientEvent::PublishAcknowledged {
            packet_id: ack.pkid,
            refusal: publish_refusal(&ack),
        },
        Event::Incoming(Packet::PubRec(received)) => match publish_received_refusal(&received) {
            // A refused QoS 2 publish ends at the PUBREC.
            Some(refusal) => ClientEvent::PublishAcknowledged {
                packet_id: received.pkid,
                refusal: Some(refusal),
            },
            None => ClientEvent::Other,
        },
        Event::Incoming(Packet::PubComp(complete)) => ClientEvent::PublishAcknowledged {
            packet_id: complete.pkid,
            refusal: None,
        },
        _ => ClientEvent::Other,
    }
}

fn subscription_answer(suback: &SubAck) -> ClientEvent {
    let reason_string = suback
        .properties
        .as_ref()
        .and_then(|properties| properties.reason_string.clone());
    let grants = suback
        .return_codes
        .iter()
        .map(|code| match code {
            SubscribeReasonCode::Success(qos) => Grant::Granted(*qos as u8),
            refused => {
                let (name, number) = subscribe_reason(refused);
                Grant::Refused(Some(with_reason_string(
                    format!("{name} (reason code 0x{number:02X})"),
                    reason_string.as_deref(),
                )))
            }
        })
        .collect();
    ClientEvent::SubscriptionAnswer {
        packet_id: suback.pkid,
        grants,
    }
}

/// A PUBACK's reason code when it says the broker did not take the message.
fn publish_refusal(ack: &PubAck) -> Option<String> {
    let (name, number) = match ack.reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => return None,
        PubAckReason::UnspecifiedError => ("unspecified error", 0x80),
        PubAckReason::ImplementationSpecificError => ("implementation specific error", 0x83),
        PubAckReason::NotAuthorized => ("not authorised", 0x87),
        PubAckReason::TopicNameInvalid => ("topic name invalid", 0x90),
        PubAckReason::PacketIdentifierInUse => ("packet identifier in use", 0x91),
        PubAckReason::QuotaExceeded => ("quota exceeded", 0x97),
        PubAckReason::PayloadFormatInvalid => ("payload format invalid", 0x99),
    };
    let reason_string = ack
        .properties
        .as_ref()
        .and_then(|properties| properties.reason_string.as_deref());
    Some(refused_message(name, number, reason_string))
}

/// A PUBREC's reason code when it says the broker did not take the (QoS 2) message.
fn publish_received_refusal(received: &PubRec) -> Option<String> {
    let (name, number) = match received.reason {
        PubRecReason::Success | PubRecReason::NoMatchingSubscribers => return None,
        PubRecReason::UnspecifiedError => ("unspecified error", 0x80),
        PubRecReason::ImplementationSpecificError => ("implementation specific error", 0x83),
        PubRecReason::NotAuthorized => ("not authorised", 0x87),
        PubRecReason::TopicNameInvalid => ("topic name invalid", 0x90),
        PubRecReason::PacketIdentifierInUse => ("packet identifier in use", 0x91),
        PubRecReason::QuotaExceeded => ("quota exceeded", 0x97),
        PubRecReason::PayloadFormatInvalid => ("payload format invalid", 0x99),
    };
    let reason_string = received
        .properties
        .as_ref()
        .and_then(|properties| properties.reason_string.as_deref());
    Some(refused_message(name, number, reason_string))
}

fn refused_message(name: &str, number: u8, reason_string: Option<&str>) -> String {
    with_reason_string(
        format!("the broker refused the message: {name} (reason code 0x{number:02X})"),
        reason_string,
    )
}

fn with_reason_string(text: String, reason_string: Option<&str>) -> String {
    match reason_string {
        Some(reason) if !reason.is_empty() => format!("{text}: {reason}"),
        _ => text,
    }
}

fn subscribe_reason(code: &SubscribeReasonCode) -> (&'static str, u8) {
    match code {
        SubscribeReasonCode::Success(qos) => ("granted", *qos as u8),
        SubscribeReasonCode::Failure | SubscribeReasonCode::Unspecified => {
            ("unspecified error", 0x80)
        }
        SubscribeReasonCode::ImplementationSpecific => ("implementation specific error", 0x83),
        SubscribeReasonCode::NotAuthorized => ("not authorised", 0x87),
        SubscribeReasonCode::TopicFilterInvalid => ("topic filter invalid", 0x8F),
        SubscribeReasonCode::PkidInUse => ("packet identifier in use", 0x91),
        SubscribeReasonCode::QuotaExceeded => ("quota exceeded", 0x97),
        SubscribeReasonCode::SharedSubscriptionsNotSupported => {
            ("shared subscriptions not supported", 0x9E)
        }
        SubscribeReasonCode::SubscriptionIdNotSupported => {
            ("subscription identifiers not supported", 0xA1)
        }
        SubscribeReasonCode::WildcardSubscriptionsNotSupported => {
            ("wildcard subscriptions not supported", 0xA2)
        }
    }
}

/// The reason code of a refused CONNECT, as MQTT 5 numbers and names it.
fn connect_reason(code: &ConnectReturnCode) -> (&'static str, u8) {
    match code {
        ConnectReturnCode::Success => ("success", 0x00),
        ConnectReturnCode::RefusedProtocolVersion => ("protocol version refused", 0x84),
        ConnectReturnCode::BadClientId => ("client id rejected", 0x85),
        ConnectReturnCode::ServiceUnavailable => ("server unavailable", 0x88),
        ConnectReturnCode::UnspecifiedError => ("unspecified error", 0x80),
        ConnectReturnCode::MalformedPacket => ("malformed packet", 0x81),
        ConnectReturnCode::ProtocolError => ("protocol error", 0x82),
        ConnectReturnCode::ImplementationSpecificError => ("implementation specific error", 0x83),
        ConnectReturnCode::UnsupportedProtocolVersion => ("unsupported protocol version", 0x84),
        ConnectReturnCode::ClientIdentifierNotValid => ("client identifier not valid", 0x85),
        ConnectReturnCode::BadUserNamePassword => ("bad user name or password", 0x86),
        ConnectReturnCode::NotAuthorized => ("not authorised", 0x87),
        ConnectReturnCode::ServerUnavailable => ("server unavailable", 0x88),
        ConnectReturnCode::ServerBusy => ("server busy", 0x89),
        ConnectReturnCode::Banned => ("banned", 0x8A),
        ConnectReturnCode::BadAuthenticationMethod => ("bad authentication method", 0x8C),
        ConnectReturnCode::TopicNameInvalid => ("topic name invalid", 0x90),
        ConnectReturnCode::PacketTooLarge => ("packet too large", 0x95),
        ConnectReturnCode::QuotaExceeded => ("quota exceeded", 0x97),
        ConnectReturnCode::PayloadFormatInvalid => ("payload format invalid", 0x99),
        ConnectReturnCode::RetainNotSupported => ("retain not supported", 0x9A),
        ConnectReturnCode::QoSNotSupported => ("QoS not supported", 0x9B),
        ConnectReturnCode::UseAnotherServer => ("use another server", 0x9C),
        ConnectReturnCode::ServerMoved => ("server moved", 0x9D),
        ConnectReturnCode::ConnectionRateExceeded => ("connection rate exceeded", 0x9F),
    }
}

/// A refused CONNECT will not fix itself by retrying quickly, nor will being banned or told to
/// use another server; everything else might.
fn failure(error: &ConnectionError) -> Failure {
    match error {
        ConnectionError::ConnectionRefused(code) => {
            let (reason, number) = connect_reason(code);
            Failure {
                refused: true,
                message: format!(
                    "broker refused the connection: {reason} (reason code 0x{number:02X})"
                ),
            }
        }
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => Failure {
            refused: false,
            message: with_reason_string(
                format!(
                    "the broker ended the session: {reason_code:?} (reason code 0x{:02X})",
                    *reason_code as u8
                ),
                reason_string.as_deref(),
            ),
        },
        ConnectionError::MqttState(StateError::ConnFail { reason }) => {
            let (reason, number) = connect_reason(reason);
            Failure {
                refused: true,
                message: format!(
                    "broker refused the connection: {reason} (reason code 0x{number:02X})"
                ),
            }
        }
        other => Failure {
            refused: false,
            message: other.to_string(),
        },
    }
}

/// A QoS level as the v5 client names it; anything but 0 and 2 is 1.
pub(in crate::connection) fn qos_of(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, PublishProperties, SubAckProperties};

    fn connack_with_receive_maximum(receive_max: u16) -> Event {
        use rumqttc::v5::mqttbytes::v5::{ConnAck, ConnAckProperties};
        Event::Incoming(Packet::ConnAck(ConnAck {
            session_present: false,
            code: ConnectReturnCode::Success,
            properties: Some(ConnAckProperties {
                session_expiry_interval: None,
                receive_max: Some(receive_max),
                max_qos: None,
                retain_available: None,
                max_packet_size: None,
                assigned_client_identifier: None,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: None,
                shared_subscription_available: None,
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }))
    }

    fn command(qos: u8) -> OutgoingPublish {
        OutgoingPublish {
            topic: "relayctl/gw-1/relay/1/set".into(),
            payload: b"on".to_vec().into(),
            qos,
            retain: false,
        }
    }

    #[tokio::test]
    async fn our_publishes_go_ahead_of_acknowledgements_as_many_as_the_broker_takes() {
        // No connection is made: the loop connects only when polled.
        let mut client = Client::new(MqttOptions::new("unit", "127.0.0.1", 9), Gauge::default());
        client.count(&connack_with_receive_maximum(2));
        client.push_acknowledgement(Acknowledgement::PubAck(7));
        for qos in [1, 2, 1, 0] {
            client.publish(command(qos));
        }
        client.write_acknowledgements().expect("hand over");
        // Two unacknowledged at most: the third waits, and the QoS 0 one behind it keeps its
        // place; the acknowledgement still goes to the request queue.
        assert_eq!(client.event_loop.pending.len(), 2);
        assert_eq!(client.publishes.len(), 2);
        assert_eq!(client.acks_in_queue, 1);

        // The broker acknowledges the first: room for one more.
        client.count(&Event::Incoming(Packet::PubAck(PubAck::new(1, None))));
        client.write_acknowledgements().expect("hand over");
        assert_eq!(
            client.event_loop.pending.len(),
            4,
            "the QoS 1 and then the QoS 0"
        );
        assert!(client.publishes.is_empty());
        assert_eq!(client.unacknowledged, 2);

        // A broken session forgets what it counted.
        client.forget_acknowledgements();
        assert_eq!(client.unacknowledged, 0);
    }

    #[test]
    fn a_message_carries_its_user_properties_and_retain_flag() {
        let properties = PublishProperties {
            user_properties: vec![("ts".into(), "2026-11-30T10:00:00Z".into())],
            ..PublishProperties::default()
        };
        let mut publish = Publish::new("plant/gw-1", QoS::AtLeastOnce, b"{}".to_vec(), None);
        publish.properties = Some(properties);
        publish.pkid = 5;
        publish.retain = true;
        let message = message(publish);
        assert_eq!(message.topic, "plant/gw-1");
        assert_eq!(
            message.user_properties,
            vec![("ts".to_string(), "2026-11-30T10:00:00Z".to_string())]
        );
        assert!(message.retain);
        assert_eq!(message.acknowledgement(), Some(Acknowledgement::PubAck(5)));
    }

    #[test]
    fn a_refused_subscription_names_the_reason_code_and_string() {
        let suback = SubAck {
            pkid: 3,
            return_codes: vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::NotAuthorized,
            ],
            properties: Some(SubAckProperties {
                reason_string: Some("ACL".into()),
                user_properties: Vec::new(),
            }),
        };
        assert_eq!(
            subscription_answer(&suback),
            ClientEvent::SubscriptionAnswer {
                packet_id: 3,
                grants: vec![
                    Grant::Granted(1),
                    Grant::Refused(Some("not authorised (reason code 0x87): ACL".into())),
                ],
            }
        );
    }

    #[test]
    fn refusals_and_disconnects_carry_their_reason_codes() {
        let refused = failure(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword,
        ));
        assert!(refused.refused);
        assert_eq!(
            refused.message,
            "broker refused the connection: bad user name or password (reason code 0x86)"
        );
        let ended = failure(&ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code: DisconnectReasonCode::SessionTakenOver,
            reason_string: Some("another client".into()),
        }));
        assert!(!ended.refused);
        assert_eq!(
            ended.message,
            "the broker ended the session: SessionTakenOver (reason code 0x8E): another client"
        );
    }

    #[test]
    fn an_acknowledgement_stands_for_its_message() {
        let publish = acknowledged(Acknowledgement::PubRec(9));
        assert_eq!((publish.qos, publish.pkid), (QoS::ExactlyOnce, 9));
    }
}
