//! The broadcast side: events are serialised once and shared by every client.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Event;

/// An event ready to send: its site for filtering and its JSON text.
#[derive(Debug)]
pub struct Published {
    pub site_id: i32,
    pub json: String,
}

/// Cloneable handle; `send` never waits. A client that falls more than the channel's capacity
/// behind sees `Lagged` and is dropped by its session.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Published>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Hub {
        let (sender, _) = broadcast::channel(capacity);
        Hub { sender }
    }

    pub fn send(&self, event: &Event) {
        // No receivers is the normal state when no page is open.
        if self.sender.receiver_count() == 0 {
            return;
        }
        match serde_json::to_string(event) {
            Ok(json) => {
                let _ = self.sender.send(Arc::new(Published {
                    site_id: event.site_id(),
                    json,
                }));
            }
            Err(error) => tracing::error!(%error, "cannot serialise a WebSocket event"),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }

    pub fn client_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_subscribers_as_tagged_json() {
        let hub = Hub::new(8);
        let mut receiver = hub.subscribe();
        hub.send(&Event::TopicDiscovered {
            site_id: 7,
            topic: "a/b".into(),
        });
        let published = receiver.recv().await.expect("event");
        assert_eq!(published.site_id, 7);
        let value: serde_json::Value = serde_json::from_str(&published.json).expect("json");
        assert_eq!(value["type"], "topic_discovered");
        assert_eq!(value["topic"], "a/b");
    }

    #[tokio::test]
    async fn a_lagging_receiver_is_told_so_and_the_sender_never_blocks() {
        let hub = Hub::new(4);
        let mut receiver = hub.subscribe();
        for index in 0..100 {
            hub.send(&Event::TopicDiscovered {
                site_id: 1,
                topic: format!("t/{index}"),
            });
        }
        assert!(matches!(
            receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
