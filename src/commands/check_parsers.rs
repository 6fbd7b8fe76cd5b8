//! `mqtt-supervisor check-parsers`: load the parsers folder and report every problem.

use std::process::ExitCode;

use crate::cli::CheckParsersArgs;
use crate::config::Config;
use crate::parsers::Registry;

pub fn run(config: Config, args: CheckParsersArgs) -> anyhow::Result<ExitCode> {
    let directory = args.dir.unwrap_or(config.pipeline.parsers_dir);
    match Registry::load(&directory) {
        Ok(registry) => {
            for info in registry.describe() {
                println!(
                    "ok  {:<28} {:<12} {}",
                    info.name, info.kind, info.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error  {error}");
            }
            eprintln!("{} problem(s) in {}", errors.len(), directory.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
