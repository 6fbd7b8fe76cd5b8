//! `mqtt-supervisor check-parsers`: load the parsers folder and report every problem.
//!
//! Loading checks each file against the format's JSON Schema (every problem of form at once),
//! then what the schema cannot say (the payload schema compiles, no state both online and
//! offline), then that names are unique; see docs/parsers.md.

use std::process::ExitCode;

use crate::cli::CheckParsersArgs;
use crate::config::Config;
use crate::parsers::{outdated_schema_copy, Registry};

pub fn run(config: Config, args: CheckParsersArgs) -> anyhow::Result<ExitCode> {
    let directory = args.dir.unwrap_or(config.pipeline.parsers_dir);
    // Only a note: the service never reads the copy, but editors check definitions against it.
    if let Some(copy) = outdated_schema_copy(&directory) {
        eprintln!(
            "note   {}: differs from the parser format this build reads, so editors check \
             definitions against another format; replace it with the file of the same name in \
             this version's parsers/ folder (/app/parsers in the container image)",
            copy.display()
        );
    }
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
