//! Reads shared by the HTTP API and the WebSocket sessions: one file per family of query, each
//! taking the database (and the supervisor's live statuses where it needs them), never the
//! application state, so the edges that use them stay independent of each other.

pub mod connections;
pub mod devices;
