//! `mqtt-supervisor migrate`: apply pending migrations, roll back, list them, or move the stored
//! broker passwords to a new secret key.

use std::process::ExitCode;

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::db;
use crate::secrets::{reseal_stored_passwords, Secrets};

pub async fn run(config: Config, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let connection = db::connect(&config.database.url, 1).await?;
    if args.status {
        for (name, applied) in db::migration_status(&connection).await? {
            println!("{} {name}", if applied { "applied" } else { "pending" });
        }
    } else if args.rotate_secret_key {
        return rotate(&connection, &config).await;
    } else if let Some(steps) = args.down {
        db::migrate_down(&connection, steps).await?;
        println!("rolled back {steps} migration(s)");
    } else {
        db::migrate_up(&connection).await?;
        println!("database is up to date");
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves every stored password from `secrets.key` to `secrets.new_key`; a key problem is the
/// operator's to fix, so it exits 2 naming the variable.
async fn rotate(
    connection: &sea_orm::DatabaseConnection,
    config: &Config,
) -> anyhow::Result<ExitCode> {
    // Both keys passed the configuration's checks, so they parse.
    let old = Secrets::from_base64(&config.secrets.key)?;
    let new = Secrets::from_base64(&config.secrets.new_key)?;
    let Some(new_id) = new.key_id().map(str::to_string) else {
        eprintln!(
            "mqtt-supervisor: --rotate-secret-key needs the new key in SUPERVISOR_NEW_SECRET_KEY \
             (secrets.new_key)"
        );
        return Ok(ExitCode::from(2));
    };
    db::migrate_up(connection).await?;
    match reseal_stored_passwords(connection, &old, &new).await {
        Ok(moved) => {
            println!(
                "sealed {moved} password(s) under key {new_id}: start the service with \
                 SUPERVISOR_SECRET_KEY set to the new key"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) if error.is_key_problem() => {
            eprintln!("mqtt-supervisor: {error}");
            Ok(ExitCode::from(2))
        }
        Err(error) => Err(error.into()),
    }
}
