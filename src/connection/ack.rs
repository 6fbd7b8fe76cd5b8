//! Acknowledging a message to the broker once the transaction that stored it has committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rumqttc::{AsyncClient, Publish};

pub struct Ack {
    client: AsyncClient,
    publish: Publish,
    generation: u64,
    current_generation: Arc<AtomicU64>,
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
        client: AsyncClient,
        mut publish: Publish,
        current_generation: Arc<AtomicU64>,
    ) -> Ack {
        // Only the packet id matters for the acknowledgement; the payload travels separately.
        publish.payload = Default::default();
        let generation = current_generation.load(Ordering::SeqCst);
        Ack {
            client,
            publish,
            generation,
            current_generation,
        }
    }

    /// Sends the acknowledgement unless the session that delivered the message is gone (its
    /// packet id may belong to another message by now; the broker redelivers the original).
    pub async fn send_ref(&self) {
        if self.current_generation.load(Ordering::SeqCst) != self.generation {
            return;
        }
        let _ = self.client.ack(&self.publish).await;
    }
}
