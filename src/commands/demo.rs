//! `mqtt-supervisor demo`: everything on one machine, for a first look.

use std::process::ExitCode;

use crate::cli::DemoArgs;
use crate::config::Config;

pub async fn run(_config: Config, _args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("demo is not available yet")
}
