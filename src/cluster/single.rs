//! SQLite serves one instance: `serve` holds an exclusive lock on a file beside the database for
//! as long as it runs (the operating system drops it when the process ends, however it ends), and
//! a second `serve` on the same file stops at once naming the instance that holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SingleInstanceError {
    #[error(
        "the SQLite database {database} is in use by instance {holder}: SQLite serves one \
         instance; stop that one, or use PostgreSQL (DATABASE_URL=postgres://…) to run several"
    )]
    Held { database: String, holder: String },
    #[error("cannot lock {path} beside the SQLite database: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// Keeps the lock while it lives.
#[derive(Debug)]
pub struct SingleInstanceGuard {
    _file: File,
}

/// Takes the lock of the SQLite database at `database` for `instance_id`.
pub fn hold_single_instance(
    database: &str,
    instance_id: &str,
) -> Result<SingleInstanceGuard, SingleInstanceError> {
    let path = PathBuf::from(format!("{database}.instance-lock"));
    let lock_error = |source| SingleInstanceError::Lock {
        path: path.display().to_string(),
        source,
    };
    // The lock comes before the database is opened, so on a fresh machine its folder (the
    // default `data/`) may not exist yet.
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(lock_error)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(SingleInstanceError::Held {
                database: database.to_string(),
                holder: if holder.is_empty() {
                    "(unknown)".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    file.set_len(0).map_err(lock_error)?;
    file.rewind().map_err(lock_error)?;
    writeln!(file, "{instance_id}").map_err(lock_error)?;
    file.flush().map_err(lock_error)?;
    Ok(SingleInstanceGuard { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let directory = tempfile::tempdir().expect("temp dir");
        let database = directory.path().join("supervisor.db").display().to_string();
        let first = hold_single_instance(&database, "host-a-1").expect("first");
        match hold_single_instance(&database, "host-b-2") {
            Err(SingleInstanceError::Held { holder, .. }) => assert_eq!(holder, "host-a-1"),
            other => panic!("expected the database to be held, got {other:?}"),
        }
        drop(first);
        hold_single_instance(&database, "host-b-2").expect("free again");
    }

    #[test]
    fn the_folder_of_a_database_not_made_yet_is_created() {
        let directory = tempfile::tempdir().expect("temp dir");
        let database = directory.path().join("data/supervisor.db");
        let _guard = hold_single_instance(&database.display().to_string(), "host-a-1")
            .expect("lock in a new folder");
        assert!(database.with_extension("db.instance-lock").exists());
    }
}
