//! Load benchmark: a simulated fleet publishes to a real Mosquitto while the release binary
//! ingests into a real database. Prints the figures recorded in docs/performance.md.
//!
//! `cargo bench --bench ingest -- [--messages N] [--database-url URL] [--skip-connections]
//!  [--publishers N] [--broker-inflight N] [--service-config FILE] [--protocol 3.1.1|5]`, or
//! `cargo bench --bench ingest -- --cluster [--cluster-kills N] [--cluster-messages N]
//!  [--cluster-part failover|rebalance|connections|shards]...` for
//! several instances on one PostgreSQL (failover, rebalancing, 1 000 connections, shards), or
//! `cargo bench --bench ingest -- --commands [--protocol 3.1.1|5]` for commands to a device at
//! rest and during a steady 20 000 messages/s flood.
//! Defaults: 3 000 000 messages (about half a minute of flood) from 1 000 dataloggers on 10
//! gateways (one MQTT connection each), 2 sensors each, QoS 1, into the local PostgreSQL
//! (database `test`, user `postgres`, over the Unix socket in /var/run/postgresql when there is
//! one, else 127.0.0.1:5432; a fresh database per run).

mod cluster;
mod commands;
mod connections;
mod database;
mod fleet;
mod ingest;
mod processes;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use mqtt_supervisor::entity::{mqtt_connection, sensor_reading};
use mqtt_supervisor::seed::{self, PatternSeed, SiteSeed};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, Database, EntityTrait, PaginatorTrait};

const BINARY: &str = env!("CARGO_BIN_EXE_mqtt-supervisor");
const DATALOGGERS: usize = 1000;
const GATEWAYS: usize = 10;
const TOKEN: &str = "bench-token-0123456789abcdef";

use cluster::*;
use commands::*;
use connections::*;
use database::*;
use fleet::*;
use ingest::*;
use processes::*;

struct Options {
    messages: usize,
    database_url: String,
    connections: bool,
    /// Only the several-instances part.
    cluster: bool,
    /// Kills of the failover measurement (20 unless given).
    cluster_kills: usize,
    /// Messages of each flood through 1, 2 and 3 shards.
    cluster_messages: usize,
    /// Only these parts of the several-instances measurement (all when empty): `failover`,
    /// `rebalance`, `connections`, `shards`.
    cluster_parts: Vec<String>,
    /// A configuration file for the service (e.g. to compare writer counts or batch sizes).
    service_config: Option<String>,
    /// Mosquitto's `max_inflight_messages`: how many unacknowledged messages it sends ahead.
    broker_inflight: u16,
    /// MQTT connections the fleet publishes over: one per gateway unless told otherwise.
    publishers: usize,
    /// The MQTT version of the service's connection in the end-to-end part: "3.1.1" or "5".
    protocol: String,
    /// Only the commands part: latency API → device at rest and during a steady flood.
    commands: bool,
}

fn options() -> Options {
    let mut options = Options {
        messages: 3_000_000,
        database_url: local_database_url(),
        connections: true,
        cluster: false,
        cluster_kills: 20,
        cluster_messages: 300_000,
        cluster_parts: Vec::new(),
        service_config: None,
        broker_inflight: 1000,
        publishers: GATEWAYS,
        protocol: "3.1.1".into(),
        commands: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--messages" => {
                options.messages = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(options.messages)
            }
            "--database-url" => options.database_url = args.next().unwrap_or(options.database_url),
            "--skip-connections" => options.connections = false,
            "--cluster" => options.cluster = true,
            "--cluster-part" => options.cluster_parts.extend(args.next()),
            "--cluster-kills" => {
                options.cluster_kills = args.next().and_then(|v| v.parse().ok()).unwrap_or(20)
            }
            "--cluster-messages" => {
                options.cluster_messages = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(options.cluster_messages)
            }
            "--service-config" => options.service_config = args.next(),
            "--protocol" => options.protocol = args.next().unwrap_or(options.protocol),
            "--commands" => options.commands = true,
            "--publishers" => {
                options.publishers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(options.publishers)
                    .clamp(1, GATEWAYS)
            }
            "--broker-inflight" => {
                options.broker_inflight = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(options.broker_inflight)
            }
            _ => {}
        }
    }
    options
}

#[tokio::main]
async fn main() {
    let options = options();
    // `cargo bench` passes --bench; `cargo test --benches` runs this too, so keep that run short.
    let options = if std::env::args().any(|arg| arg == "--bench") {
        options
    } else {
        println!("(not under `cargo bench`: a short smoke run)");
        Options {
            messages: 2_000,
            connections: false,
            ..options
        }
    };
    println!(
        "mqtt-supervisor ingest benchmark: {} messages, {DATALOGGERS} dataloggers on {GATEWAYS} gateways over {} publishing connections, database {}, the service's connection on MQTT {}",
        options.messages, options.publishers, options.database_url, options.protocol
    );
    let broker = Broker::start(options.broker_inflight);
    if options.cluster {
        cluster(&options, &broker).await;
        return;
    }
    if options.commands {
        commands(&options, &broker).await;
        return;
    }
    let raw_before = raw_rate(&broker, options.messages, options.publishers).await;
    println!(
        "raw broker→subscriber (QoS 1, inflight {}): {raw_before:.0} messages/s",
        options.broker_inflight
    );
    let rate = end_to_end(&options, &broker).await;
    // The machine's speed drifts between parts of a run (shared cores of a virtual machine):
    // the reference is the mean of the raw rate just before and just after the ingest.
    let raw_after = raw_rate(&broker, options.messages, options.publishers).await;
    let raw = (raw_before + raw_after) / 2.0;
    println!("raw broker→subscriber again after the ingest: {raw_after:.0} messages/s");
    println!(
        "ratio of end to end to raw (mean {raw:.0} messages/s): {:.2}",
        rate / raw
    );
    if options.connections {
        connections(&options, &broker).await;
    }
}
