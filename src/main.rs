//! The `mqtt-supervisor` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use mqtt_supervisor::cli::{Cli, Command, ServeArgs};
use mqtt_supervisor::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mqtt-supervisor: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mqtt-supervisor: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    match runtime.block_on(mqtt_supervisor::run(command, config)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mqtt-supervisor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// Every batch frees large buffers, which sends glibc's allocator into long consolidation passes;
// with jemalloc the service spent a fifth to a third less CPU per message, in the same memory
// (docs/performance.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
