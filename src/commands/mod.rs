//! The subcommands, one file each; this is the binary's edge, where errors become exit codes.

mod check_parsers;
mod demo;
mod migrate;
pub mod serve;

use std::process::ExitCode;

use crate::cli::Command;
use crate::config::Config;

pub async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    // Only ring is linked (Cargo.toml keeps aws-lc out), and the crates built without a provider
    // of their own (Sentry's HTTP client, rumqttc) take the process default: set it before any
    // TLS connection is made.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match command {
        Command::Serve(args) => serve::run(config, args).await,
        Command::Migrate(args) => migrate::run(config, args).await,
        Command::Demo(args) => demo::run(config, args).await,
        Command::CheckParsers(args) => check_parsers::run(config, args),
    }
}
