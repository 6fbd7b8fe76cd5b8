//! Acknowledging a message to the broker once the transaction that stored it has committed.
//!
//! The writer never talks to the MQTT client itself: it hands the acknowledgement back to the
//! connection task through an unbounded channel. The connection task is the only one polling the
//! client's event loop, so if the writer waited on the client's request queue while that task
//! waited on the writer, both would stop for good.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rumqttc::Publish;
use tokio::sync::mpsc::UnboundedSender;

/// A pending acknowledgement: the session it belongs to and the packet to acknowledge.
pub type AckRequest = (u64, Publish);

pub struct Ack {
    sender: UnboundedSender<AckRequest>,
    publish: Publish,
    generation: u64,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("pkid", &self.publish.pkid)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Ack {
    pub fn new(
        sender: UnboundedSender<AckRequest>,
        mut publish: Publish,
        current_generation: &Arc<AtomicU64>,
    ) -> Ack {
        // Only the packet id matters for the acknowledgement; topic and payload travel
        // separately, and an empty one is free to clone.
        publish.topic = String::new();
        publish.payload = Default::default();
        Ack {
            sender,
            publish,
            generation: current_generation.load(Ordering::SeqCst),
        }
    }

    /// Never waits. If the connection task is gone, the broker keeps the message and delivers
    /// it again to the next session.
    pub fn acknowledge(&self) {
        let _ = self.sender.send((self.generation, self.publish.clone()));
    }
}
