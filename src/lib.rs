//! mqtt-supervisor: keeps a fleet of MQTT broker connections in line with a database, turns what
//! devices publish into a live model of sites, gateways, dataloggers and sensors, and serves it
//! over a REST API, a WebSocket and the Devices page.

pub mod api;
pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod connection;
pub mod db;
pub mod delivery;
pub mod demo;
pub mod downlink;
pub mod entity;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod parsers;
pub mod pipeline;
pub mod queries;
pub mod routing;
pub mod secrets;
pub mod seed;
pub mod shutdown;
pub mod state;
pub mod supervisor;
pub mod telemetry;
pub mod ws;

pub use commands::run;
