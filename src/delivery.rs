//! Acknowledging a message to its broker once the transaction that stored it has committed.
//!
//! The pipeline carries an [`Ack`] with each message that needs one and calls it after the
//! commit; the connection that read the message owns the receiving end and writes the packet.
//! The writer never talks to the MQTT client itself: the connection task is the only one polling
//! the client, so if the writer waited on the client while that task waited on the writer, both
//! would stop for good. Hence an unbounded channel, which never makes the writer wait.

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// The packet that acknowledges a message, by its packet id: four bytes here as on the wire,
/// since a backlog of a million can wait for the broker while a flood lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgement {
    /// QoS 1.
    PubAck(u16),
    /// QoS 2, first step.
    PubRec(u16),
}

const _: () = assert!(std::mem::size_of::<Acknowledgement>() == 4);

/// A committed message's acknowledgement, tagged with the session that received it.
pub type AckRequest = (u64, Acknowledgement);

/// The end a connection reads committed acknowledgements from.
pub type AckReceiver = UnboundedReceiver<AckRequest>;

/// Makes the channel one connection's acknowledgements travel through.
pub fn ack_channel() -> (AckSender, AckReceiver) {
    let (sender, receiver) = unbounded_channel();
    (AckSender(sender), receiver)
}

/// The connection's sending end, from which each message's [`Ack`] is made.
#[derive(Debug, Clone)]
pub struct AckSender(UnboundedSender<AckRequest>);

impl AckSender {
    /// The acknowledgement of a message received in session `generation`.
    pub fn ack(&self, acknowledgement: Acknowledgement, generation: u64) -> Ack {
        Ack {
            sender: self.0.clone(),
            acknowledgement,
            generation,
        }
    }
}

/// A pending acknowledgement travelling with its message through the pipeline.
#[derive(Debug)]
pub struct Ack {
    sender: UnboundedSender<AckRequest>,
    acknowledgement: Acknowledgement,
    generation: u64,
}

impl Ack {
    /// Never waits. If the connection is gone, the broker keeps the message and delivers it
    /// again to the next session.
    pub fn acknowledge(&self) {
        let _ = self.sender.send((self.generation, self.acknowledgement));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_acknowledgement_reaches_the_connection_with_its_session() {
        let (sender, mut receiver) = ack_channel();
        let ack = sender.ack(Acknowledgement::PubAck(7), 3);
        ack.acknowledge();
        assert_eq!(receiver.recv().await, Some((3, Acknowledgement::PubAck(7))));
        drop(receiver);
        // The connection is gone: acknowledging is a no-op, not a panic or a wait.
        sender.ack(Acknowledgement::PubRec(8), 3).acknowledge();
    }
}
