//! Acknowledging a message to the broker once the transaction that stored it has committed.
//!
//! The writer never talks to the MQTT client itself: it hands the acknowledgement back to the
//! connection task through an unbounded channel. The connection task is the only one polling the
//! client's event loop, so if the writer waited on the client's request queue while that task
//! waited on the writer, both would stop for good.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rumqttc::{Packet, PubAck, PubRec, Publish, QoS};
use tokio::sync::mpsc::UnboundedSender;

/// The packet that acknowledges a message: four bytes here as on the wire, since a backlog of a
/// million can wait for the broker while a flood lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgement {
    PubAck(u16),
    PubRec(u16),
}

const _: () = assert!(std::mem::size_of::<Acknowledgement>() == 4);

impl Acknowledgement {
    /// What acknowledges this message; one at QoS 0 needs none.
    pub fn of(publish: &Publish) -> Option<Acknowledgement> {
        match publish.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Acknowledgement::PubAck(publish.pkid)),
            QoS::ExactlyOnce => Some(Acknowledgement::PubRec(publish.pkid)),
        }
    }

    pub fn packet(self) -> Packet {
        match self {
            Acknowledgement::PubAck(pkid) => Packet::PubAck(PubAck::new(pkid)),
            Acknowledgement::PubRec(pkid) => Packet::PubRec(PubRec::new(pkid)),
        }
    }
}

/// A pending acknowledgement: the session it belongs to and the packet to send.
pub type AckRequest = (u64, Acknowledgement);

#[derive(Debug)]
pub struct Ack {
    sender: UnboundedSender<AckRequest>,
    acknowledgement: Acknowledgement,
    generation: u64,
}

impl Ack {
    pub fn new(
        sender: UnboundedSender<AckRequest>,
        acknowledgement: Acknowledgement,
        current_generation: &Arc<AtomicU64>,
    ) -> Ack {
        Ack {
            sender,
            acknowledgement,
            generation: current_generation.load(Ordering::SeqCst),
        }
    }

    /// Never waits. If the connection task is gone, the broker keeps the message and delivers
    /// it again to the next session.
    pub fn acknowledge(&self) {
        let _ = self.sender.send((self.generation, self.acknowledgement));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(qos: QoS, pkid: u16) -> Publish {
        let mut publish = Publish::new("t", qos, Vec::new());
        publish.pkid = pkid;
        publish
    }

    #[test]
    fn each_quality_of_service_gets_its_own_acknowledgement() {
        assert_eq!(Acknowledgement::of(&publish(QoS::AtMostOnce, 0)), None);
        assert_eq!(
            Acknowledgement::of(&publish(QoS::AtLeastOnce, 7)),
            Some(Acknowledgement::PubAck(7))
        );
        assert_eq!(
            Acknowledgement::of(&publish(QoS::ExactlyOnce, 8)),
            Some(Acknowledgement::PubRec(8))
        );
        assert_eq!(
            Acknowledgement::PubAck(7).packet(),
            Packet::PubAck(PubAck::new(7))
        );
        assert_eq!(
            Acknowledgement::PubRec(8).packet(),
            Packet::PubRec(PubRec::new(8))
        );
    }
}
