//! The WebSocket hub: one broadcast of typed events, fanned out to browsers without ever blocking
//! the producers.

mod events;
mod hub;
mod session;

pub use events::{Event, SensorUpdate};
pub use hub::{Hub, Published};
pub use session::handle_socket;
