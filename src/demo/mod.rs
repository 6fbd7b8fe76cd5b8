//! The one-command demo: an embedded broker, a seeded demo site and a simulated fleet.

pub mod broker;
pub mod fleet;
pub mod seed;
