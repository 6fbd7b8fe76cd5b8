//! `mqtt-supervisor migrate`: apply pending migrations, roll back, or list them.

use std::process::ExitCode;

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::db;

pub async fn run(config: Config, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let connection = db::connect(&config.database.url, 1).await?;
    if args.status {
        for (name, applied) in db::migration_status(&connection).await? {
            println!("{} {name}", if applied { "applied" } else { "pending" });
        }
    } else if let Some(steps) = args.down {
        db::migrate_down(&connection, steps).await?;
        println!("rolled back {steps} migration(s)");
    } else {
        db::migrate_up(&connection).await?;
        println!("database is up to date");
    }
    Ok(ExitCode::SUCCESS)
}
