//! The command line: subcommands and their options.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mqtt-supervisor",
    version,
    about = "Keeps MQTT broker connections in line with a database and turns device payloads into a live model of sites, gateways, dataloggers and sensors.",
    long_about = None
)]
pub struct Cli {
    /// A TOML file overriding config/default.toml (any subset of its keys). Environment variables
    /// (DATABASE_URL, SUPERVISOR_HTTP_ADDR, SUPERVISOR_ADMIN_TOKEN, SUPERVISOR_RECONCILE_SECS,
    /// SUPERVISOR_LOG_DIR, SUPERVISOR_PARSERS_DIR, SENTRY_DSN) override both.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then supervise connections and serve the API and the Devices page
    /// (the default).
    Serve(ServeArgs),
    /// Apply pending migrations and exit; `--down N` rolls back the last N.
    Migrate(MigrateArgs),
    /// Run everything on this machine: SQLite in ./data, an MQTT broker on 127.0.0.1:1884, a demo
    /// site and a simulated fleet publishing to it. Prints the page URL and the admin token.
    Demo(DemoArgs),
    /// Load every parser of the parsers folder and report what is wrong; exit 1 on any error.
    CheckParsers(CheckParsersArgs),
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Serve without an admin token: every mutation is open to anyone who can reach the port.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Roll back the last N applied migrations instead of applying pending ones.
    #[arg(long, value_name = "N")]
    pub down: Option<u32>,
    /// List migrations and whether each is applied; change nothing.
    #[arg(long, conflicts_with = "down")]
    pub status: bool,
    /// Seal every stored broker password again under SUPERVISOR_NEW_SECRET_KEY, opening it with
    /// SUPERVISOR_SECRET_KEY; then start the service with the new key.
    #[arg(long, conflicts_with_all = ["down", "status"])]
    pub rotate_secret_key: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Port of the embedded MQTT broker.
    #[arg(long, default_value_t = 1884)]
    pub broker_port: u16,
    /// Gateways in the simulated fleet.
    #[arg(long, default_value_t = 3)]
    pub gateways: usize,
    /// Dataloggers per gateway.
    #[arg(long, default_value_t = 8)]
    pub dataloggers_per_gateway: usize,
    /// Seconds between two readings of one datalogger.
    #[arg(long, default_value_t = 2.0)]
    pub interval_secs: f64,
}

#[derive(Debug, clap::Args)]
pub struct CheckParsersArgs {
    /// The folder to check (default: pipeline.parsers_dir / SUPERVISOR_PARSERS_DIR).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
