//! Typed events and the broadcast hub: the pipeline, connections and jobs publish here, and
//! browser sessions (`ws`) read from it. Publishing never waits on a reader.

mod event;
mod hub;

pub use event::{Event, SensorUpdate, Subscription, SubscriptionState};
pub use hub::{Hub, Published};
