//! `mqtt-supervisor demo`: everything on one machine, for a first look: SQLite in ./data, an
//! embedded broker, a demo site and a simulated fleet.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::demo::{broker, fleet, seed};
use crate::{shutdown, telemetry};

use super::serve;

pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !config.auth_enabled() {
        config.api.admin_token = demo_token()?;
    }
    let _telemetry = telemetry::init(&config)?;
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());

    let broker_address = SocketAddr::from((Ipv4Addr::LOCALHOST, args.broker_port));
    broker::start(broker_address).await?;
    let listener = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set SUPERVISOR_HTTP_ADDR to another address)",
                config.http.addr
            )
        })?;
    let address = listener.local_addr()?;
    let admin_token = config.api.admin_token.clone();
    let single = match serve::claim_database(&config) {
        Ok(single) => single,
        Err(error) => {
            eprintln!("mqtt-supervisor: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let started = serve::start(config, token.clone(), single).await?;
    seed::seed(&started.state.db, args.broker_port).await?;
    started.state.supervisor.wake();

    let shape = fleet::FleetShape {
        gateways: args.gateways.max(1),
        dataloggers_per_gateway: args.dataloggers_per_gateway.max(1),
        interval: Duration::from_secs_f64(args.interval_secs.clamp(0.05, 3600.0)),
    };
    tokio::spawn(fleet::run(args.broker_port, shape, token.clone()));

    println!();
    println!("  mqtt-supervisor demo");
    println!("  Devices page:  http://{address}/#token={admin_token}");
    println!("  Admin token:   {admin_token}");
    println!(
        "  MQTT broker:   mqtt://{broker_address}  (try: mosquitto_sub -p {} -t 'demo/#' -v)",
        args.broker_port
    );
    println!("  Stop with Ctrl-C.");
    println!();
    serve::serve_http(started, listener).await
}

/// The demo's token survives restarts (kept in ./data), so an open page keeps working.
fn demo_token() -> anyhow::Result<String> {
    let path = std::path::Path::new("data").join("demo-admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let bytes: [u8; 16] = rand::rng().random();
    let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    std::fs::create_dir_all("data").context("cannot create ./data for the demo")?;
    std::fs::write(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}
