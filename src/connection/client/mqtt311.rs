//! The MQTT 3.1.1 client as a connection task uses it: the one place that reaches into rumqttc's
//! internals (its network, session state and queued events), kept next to the raw-socket test
//! that pins down how they behave. Pin the rumqttc version when upgrading.
//!
//! Acknowledgements are written here without ever holding up reading.
//!
//! A broker may take acknowledgements far more slowly than it delivers messages: Mosquitto reads
//! one packet per connection per pass of its event loop, so while many publishers flood it, the
//! service's acknowledgements pile up in the socket buffers. If writing them held up the
//! connection task, the task would stop reading, the broker could not deliver, and ingestion
//! would stall until the publishers paused (13 s in a three-million-message benchmark run). So
//! acknowledgements go into the client's write buffer a bunch at a time and are flushed without
//! waiting; while a flush is unfinished, reading goes on beside it and the rest wait here.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use prometheus_client::metrics::gauge::Gauge;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions,
    Outgoing, Packet, PubAck, PubRec, Publish, QoS, Request, StateError, SubscribeFilter,
    SubscribeReasonCode,
};

use super::{ClientEvent, Failure, FilterRequest, Grant, Message, OutgoingPublish, RequestError};
use crate::delivery::Acknowledgement;

fn message(publish: Publish) -> Message {
    Message {
        qos: publish.qos as u8,
        packet_id: publish.pkid,
        retain: publish.retain,
        topic: publish.topic,
        payload: publish.payload,
        user_properties: Vec::new(),
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
        Event::Incoming(Packet::PubAck(ack)) => ClientEvent::PublishAcknowledged {
            packet_id: ack.pkid,
            refusal: None,
        },
        Event::Incoming(Packet::PubComp(complete)) => ClientEvent::PublishAcknowledged {
            packet_id: complete.pkid,
            refusal: None,
        },
        Event::Incoming(Packet::SubAck(suback)) => ClientEvent::SubscriptionAnswer {
            packet_id: suback.pkid,
            grants: suback
                .return_codes
                .iter()
                .map(|code| match code {
                    SubscribeReasonCode::Success(qos) => Grant::Granted(*qos as u8),
                    SubscribeReasonCode::Failure => Grant::Refused(None),
                })
                .collect(),
        },
        _ => ClientEvent::Other,
    }
}

/// A refused login will not fix itself by retrying quickly; everything else might.
fn failure(error: &ConnectionError) -> Failure {
    match error {
        ConnectionError::ConnectionRefused(code) => {
            let reason = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                ConnectReturnCode::NotAuthorized => "not authorised",
                ConnectReturnCode::BadClientId => "client id rejected",
                ConnectReturnCode::RefusedProtocolVersion => "protocol version refused",
                ConnectReturnCode::ServiceUnavailable => "service unavailable",
                ConnectReturnCode::Success => "refused",
            };
            Failure {
                refused: true,
                message: format!("broker refused the connection: {reason}"),
            }
        }
        other => Failure {
            refused: false,
            message: other.to_string(),
        },
    }
}

/// A QoS level as the 3.1.1 client names it; anything but 0 and 2 is 1.
pub(in crate::connection) fn qos_of(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

fn packet(acknowledgement: Acknowledgement) -> Packet {
    match acknowledgement {
        Acknowledgement::PubAck(pkid) => Packet::PubAck(PubAck::new(pkid)),
        Acknowledgement::PubRec(pkid) => Packet::PubRec(PubRec::new(pkid)),
    }
}

/// One broker session's client: requests (subscriptions), events and acknowledgements.
pub struct Client {
    requests: AsyncClient,
    event_loop: EventLoop,
    acks: OutgoingAcks,
    /// Our own publishes (commands), written straight to the connection before the waiting
    /// acknowledgements: through the request queue they would wait for every flush of a flood.
    publishes: VecDeque<Publish>,
    /// A connection that neither reads nor takes our acknowledgements for this long is dead.
    stuck_after: Duration,
}

impl Client {
    pub fn new(options: MqttOptions, waiting_gauge: Gauge) -> Client {
        let request_capacity = options.request_channel_capacity();
        let (requests, mut event_loop) = AsyncClient::new(options, request_capacity);
        let mut network_options = NetworkOptions::new();
        network_options.set_tcp_send_buffer_size(SEND_BUFFER_BYTES);
        event_loop.set_network_options(network_options);
        let stuck_after = match event_loop.mqtt_options.keep_alive() {
            keep_alive if keep_alive.is_zero() => Duration::from_secs(60),
            keep_alive => keep_alive * 2,
        };
        Client {
            requests,
            event_loop,
            acks: OutgoingAcks::new(waiting_gauge),
            publishes: VecDeque::new(),
            stuck_after,
        }
    }

    /// The next event of the session; see [`OutgoingAcks::next_event`].
    pub async fn next_event(&mut self) -> Result<ClientEvent, Failure> {
        self.acks
            .next_event(&mut self.event_loop, self.stuck_after)
            .await
            .map(client_event)
            .map_err(|error| {
                // Publishes of the broken session are the session's owner's to send again;
                // left here the client would send them a second time.
                self.event_loop.pending.clear();
                self.publishes.clear();
                failure(&error)
            })
    }

    /// The next message the client has already read, if that is what comes next.
    pub fn next_read_message(&mut self) -> Option<Message> {
        let events = &mut self.event_loop.state.events;
        if !matches!(events.front(), Some(Event::Incoming(Packet::Publish(_)))) {
            return None;
        }
        match events.pop_front() {
            Some(Event::Incoming(Packet::Publish(publish))) => Some(message(publish)),
            _ => None,
        }
    }

    pub fn push_acknowledgement(&mut self, acknowledgement: Acknowledgement) {
        self.acks.push(acknowledgement);
    }

    /// Writes our publishes, then waiting acknowledgements as far as the socket takes them at
    /// once.
    pub async fn write_acknowledgements(&mut self) -> Result<(), StateError> {
        if !self.publishes.is_empty() {
            let EventLoop { state, network, .. } = &mut self.event_loop;
            let Some(network) = network.as_mut() else {
                self.publishes.clear();
                return Ok(());
            };
            while let Some(publish) = self.publishes.pop_front() {
                // As the client's own loop does with a request: the session state gives it its
                // packet id and keeps it until the broker acknowledges it.
                if let Some(packet) = state.handle_outgoing_packet(Request::Publish(publish))? {
                    network.write(packet).await?;
                }
            }
            if !self.acks.flushing {
                match network.flush().now_or_never() {
                    Some(result) => result?,
                    None => self.acks.flushing = true,
                }
            }
        }
        self.acks.write(&mut self.event_loop).await
    }

    /// The session they belonged to is gone; the broker delivers those messages again.
    pub fn forget_acknowledgements(&mut self) {
        self.acks.clear();
    }

    pub fn subscribe(&self, filters: Vec<FilterRequest>) -> Result<(), RequestError> {
        let filters: Vec<SubscribeFilter> = filters
            .into_iter()
            .map(|request| SubscribeFilter::new(request.filter, qos_of(request.qos)))
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
        let mut packet = Publish::new(publish.topic, qos_of(publish.qos), Vec::new());
        packet.payload = publish.payload;
        packet.retain = publish.retain;
        self.publishes.push_back(packet);
    }

    /// At shutdown: sends the acknowledgements of what was committed (waiting up to 2 s for the
    /// socket), then disconnects on purpose, so the broker does not publish our will.
    pub async fn close(mut self) {
        self.acks
            .finish(&mut self.event_loop, Duration::from_secs(2))
            .await;
        let _ = self.requests.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Ok(event) = self.event_loop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// At most this many acknowledgements enter the client's write buffer at once. At four bytes
/// each the buffer stays under its 8 KiB back-pressure mark, above which adding a packet would
/// wait for the socket.
const BUNCH: usize = 1024;
// A PUBACK or PUBREC is four bytes; tokio-util's framed writer waits for the socket above 8 KiB,
// and the client's own packets (a ping, a subscription) may share the buffer.
const _: () = assert!(BUNCH * 4 <= 4 * 1024);

/// The socket's send buffer for a connection. Small on purpose: the client's own keep-alive
/// ping waits for room in it (and gives up on the connection after a few seconds), and the
/// kernel signals room only once half of the queued bytes have gone. Acknowledgements beyond it
/// wait in [`OutgoingAcks`], four bytes each on the wire.
const SEND_BUFFER_BYTES: u32 = 64 * 1024;

#[derive(Debug, Default)]
struct OutgoingAcks {
    waiting: VecDeque<Acknowledgement>,
    /// Some of ours are in the client's write buffer and the socket has not taken them yet.
    flushing: bool,
    /// How many wait here, for `/metrics`.
    waiting_gauge: Gauge,
}

enum Progress {
    Flushed(Result<(), StateError>),
    Read(Result<(), StateError>),
    Disconnected,
}

impl OutgoingAcks {
    fn new(waiting_gauge: Gauge) -> OutgoingAcks {
        OutgoingAcks {
            waiting_gauge,
            ..OutgoingAcks::default()
        }
    }

    fn push(&mut self, acknowledgement: Acknowledgement) {
        self.waiting.push_back(acknowledgement);
    }

    /// Forgets everything: the session they belonged to is gone, and the broker delivers those
    /// messages again to the next one.
    fn clear(&mut self) {
        self.waiting.clear();
        self.flushing = false;
        self.waiting.shrink_to(BUNCH);
        self.waiting_gauge.set(0);
    }

    /// Moves waiting acknowledgements into the client's write buffer, a bunch at a time, as long
    /// as the socket takes each bunch at once. Never waits for the socket.
    async fn write(&mut self, event_loop: &mut EventLoop) -> Result<(), StateError> {
        while !self.flushing && !self.waiting.is_empty() {
            let Some(network) = event_loop.network.as_mut() else {
                self.clear();
                return Ok(());
            };
            let bunch = self.waiting.len().min(BUNCH);
            for acknowledgement in self.waiting.drain(..bunch) {
                // Straight to the connection: the client's session state keeps nothing for an
                // acknowledgement it sends, it would only queue an `Outgoing` event for each,
                // and every event costs the connection task a round of its loop.
                // Below the back-pressure mark this only encodes into the buffer.
                network.write(packet(acknowledgement)).await?;
            }
            match network.flush().now_or_never() {
                Some(result) => result?,
                None => self.flushing = true,
            }
        }
        if self.waiting.is_empty() && self.waiting.capacity() > 16 * BUNCH {
            // A backlog is over; its room need not stay.
            self.waiting.shrink_to(BUNCH);
        }
        self.waiting_gauge
            .set(i64::try_from(self.waiting.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The client's next event. While a flush is unfinished, this reads the connection itself
    /// (the client's own `poll` would wait for the flush first) and finishes the flush whenever
    /// the socket has room. Without progress on either for `stuck_after`, the connection is
    /// given up, as the client gives up one whose flush does not finish.
    async fn next_event(
        &mut self,
        event_loop: &mut EventLoop,
        stuck_after: Duration,
    ) -> Result<Event, ConnectionError> {
        while self.flushing {
            if let Some(event) = event_loop.state.events.pop_front() {
                return Ok(event);
            }
            let progress = tokio::time::timeout(
                stuck_after,
                poll_fn(|context| {
                    let Some(network) = event_loop.network.as_mut() else {
                        return Poll::Ready(Progress::Disconnected);
                    };
                    // Both are safe to drop when pending: the unwritten bytes and any partly read
                    // packet stay in the client's buffers.
                    if let Poll::Ready(result) = pin!(network.flush()).poll(context) {
                        return Poll::Ready(Progress::Flushed(result));
                    }
                    pin!(network.readb(&mut event_loop.state))
                        .poll(context)
                        .map(Progress::Read)
                }),
            )
            .await;
            let failure = match progress {
                Ok(Progress::Read(Ok(()))) => continue,
                Ok(Progress::Disconnected) => {
                    self.clear();
                    continue;
                }
                Ok(Progress::Flushed(Ok(()))) => {
                    self.flushing = false;
                    match self.write(event_loop).await {
                        Ok(()) => continue,
                        Err(error) => ConnectionError::MqttState(error),
                    }
                }
                Ok(Progress::Flushed(Err(error)) | Progress::Read(Err(error))) => {
                    ConnectionError::MqttState(error)
                }
                Err(_) => ConnectionError::FlushTimeout,
            };
            // As the client does on its own errors: drop the connection, the next poll makes a
            // new one.
            event_loop.clean();
            self.clear();
            return Err(failure);
        }
        event_loop.poll().await
    }

    /// At shutdown: writes what waits and waits up to `within` for the socket to take it.
    async fn finish(&mut self, event_loop: &mut EventLoop, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.write(event_loop).await.is_err() || !self.flushing {
                return;
            }
            let Some(network) = event_loop.network.as_mut() else {
                return;
            };
            match tokio::time::timeout_at(deadline, network.flush()).await {
                Ok(Ok(())) => self.flushing = false,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_keeps_its_quality_of_service_and_packet_id() {
        let mut publish = Publish::new("t/1", QoS::ExactlyOnce, b"42".to_vec());
        publish.pkid = 8;
        publish.retain = true;
        let message = message(publish);
        assert_eq!((message.qos, message.packet_id), (2, 8));
        assert!(message.retain);
        assert_eq!(message.acknowledgement(), Some(Acknowledgement::PubRec(8)));
    }

    #[test]
    fn a_refused_login_is_a_refusal_and_a_lost_network_is_not() {
        let refused = failure(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword,
        ));
        assert!(refused.refused);
        assert_eq!(
            refused.message,
            "broker refused the connection: bad user name or password"
        );
        assert!(!failure(&ConnectionError::FlushTimeout).refused);
    }

    #[test]
    fn acknowledgements_become_their_packets() {
        assert_eq!(
            packet(Acknowledgement::PubAck(7)),
            Packet::PubAck(PubAck::new(7))
        );
        assert_eq!(
            packet(Acknowledgement::PubRec(8)),
            Packet::PubRec(PubRec::new(8))
        );
    }

    #[test]
    fn acknowledgements_wait_in_order_until_cleared() {
        let gauge = Gauge::default();
        let mut acks = OutgoingAcks::new(gauge.clone());
        acks.push(Acknowledgement::PubAck(7));
        acks.push(Acknowledgement::PubRec(8));
        assert_eq!(
            acks.waiting,
            VecDeque::from([Acknowledgement::PubAck(7), Acknowledgement::PubRec(8)])
        );
        acks.clear();
        assert!(acks.waiting.is_empty());
        assert_eq!(gauge.get(), 0);
    }

    /// A peer that takes no acknowledgements for a while must not stop the reading: the task
    /// writes what the socket takes, reads the next message, and delivers every acknowledgement,
    /// in order, once the peer reads again. (A plain socket stands in for the broker's end here:
    /// what is tested is this side's handling of a full send buffer, which a real broker shows
    /// only under minutes of flood; the benchmark covers that.)
    #[tokio::test]
    async fn reading_goes_on_while_the_peer_takes_no_acknowledgements() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        const COUNT: usize = 200_000;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut options = MqttOptions::new("test", "127.0.0.1", port);
        options.set_manual_acks(true);
        let mut event_loop = EventLoop::new(options, 10);
        let mut network_options = NetworkOptions::new();
        network_options.set_tcp_send_buffer_size(SEND_BUFFER_BYTES);
        event_loop.set_network_options(network_options);
        // The peer answers the CONNECT and then reads nothing until told.
        let peer = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await?;
            let mut connect = [0; 2];
            peer.read_exact(&mut connect).await?;
            let mut rest = vec![0; usize::from(connect[1])];
            peer.read_exact(&mut rest).await?;
            peer.write_all(&[0x20, 2, 0, 0]).await?;
            std::io::Result::Ok(peer)
        });
        let connected = event_loop.poll().await.unwrap();
        assert!(matches!(connected, Event::Incoming(Packet::ConnAck(_))));
        let mut peer = peer.await.unwrap().unwrap();

        let gauge = Gauge::default();
        let mut acks = OutgoingAcks::new(gauge.clone());
        for index in 0..COUNT {
            acks.push(Acknowledgement::PubAck((index % 65_535) as u16 + 1));
        }
        tokio::time::timeout(Duration::from_secs(5), acks.write(&mut event_loop))
            .await
            .expect("writing must not wait for the socket")
            .unwrap();
        assert!(
            acks.flushing,
            "the socket cannot have taken {} bytes",
            COUNT * 4
        );
        assert!(!acks.waiting.is_empty());
        assert_eq!(
            gauge.get(),
            acks.waiting.len() as i64,
            "the gauge shows the backlog"
        );

        // A QoS 1 PUBLISH of "sensors/1" with packet id 9 and payload "42".
        let mut packet = vec![0x32, 15, 0, 9];
        packet.extend_from_slice(b"sensors/1");
        packet.extend_from_slice(&[0, 9]);
        packet.extend_from_slice(b"42");
        peer.write_all(&packet).await.unwrap();
        let event = tokio::time::timeout(
            Duration::from_secs(5),
            acks.next_event(&mut event_loop, Duration::from_secs(30)),
        )
        .await
        .expect("the message must be read while acknowledgements wait")
        .unwrap();
        match event {
            Event::Incoming(Packet::Publish(publish)) => {
                assert_eq!((publish.topic.as_str(), publish.pkid), ("sensors/1", 9));
            }
            other => panic!("expected the publish, got {other:?}"),
        }
        assert!(acks.flushing, "the acknowledgements are still on their way");

        let reader = tokio::spawn(async move {
            let mut received = vec![0; COUNT * 4];
            peer.read_exact(&mut received).await.map(|_| received)
        });
        let received = tokio::select! {
            received = reader => received.unwrap().unwrap(),
            _ = async {
                loop {
                    let _ = acks.next_event(&mut event_loop, Duration::from_secs(30)).await;
                }
            } => unreachable!(),
        };
        assert_eq!(gauge.get(), 0, "nothing waits once the peer has them all");
        for (index, ack) in received.chunks(4).enumerate() {
            let pkid = (index % 65_535) as u16 + 1;
            let [high, low] = pkid.to_be_bytes();
            assert_eq!(ack, [0x40, 2, high, low], "acknowledgement {index}");
        }
    }
}
