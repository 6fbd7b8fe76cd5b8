//! The benchmark's databases: a fresh one per part of the run, its sites seeded as the demo and
//! the tests seed theirs.

use super::*;

/// The PostgreSQL of this host, over its Unix socket when it has one: docs/deployment.md
/// recommends that for a database on the same host (no TCP, no TLS on loopback).
pub(crate) fn local_database_url() -> String {
    if std::path::Path::new("/var/run/postgresql/.s.PGSQL.5432").exists() {
        "postgres://postgres@localhost/test?host=/var/run/postgresql".into()
    } else {
        "postgres://postgres@127.0.0.1:5432/test".into()
    }
}

pub(crate) async fn fresh_database(base: &str) -> String {
    if !base.starts_with("postgres") {
        return base.to_string();
    }
    let name = format!("mqtt_supervisor_bench_{}", std::process::id());
    let admin = Database::connect(base.to_string()).await.expect("connect");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .expect("drop");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create");
    let mut url = url::Url::parse(base).expect("url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub(crate) async fn seed_site(
    db: &sea_orm::DatabaseConnection,
    port: u16,
    slug: &str,
    pattern: Option<&str>,
    protocol: &str,
) -> i32 {
    let mut site = SiteSeed::new(slug, "127.0.0.1", port);
    site.client_id = format!("bench-{slug}");
    site.keepalive_secs = 60;
    site.protocol = protocol.into();
    site.connection_active = pattern.is_some();
    site.patterns = pattern
        .map(|pattern| PatternSeed::active(pattern, "datalogger_readings_v1"))
        .into_iter()
        .collect();
    seed::seed_site(db, &site)
        .await
        .expect("seed the site")
        .site_id
}

pub(crate) async fn wait_connected(
    db: &sea_orm::DatabaseConnection,
    count: u64,
    timeout: Duration,
) -> Duration {
    use sea_orm::{ColumnTrait, QueryFilter};
    let started = Instant::now();
    loop {
        let connected = mqtt_connection::Entity::find()
            .filter(mqtt_connection::Column::Status.eq("connected"))
            .count(db)
            .await
            .unwrap_or(0);
        if connected >= count || started.elapsed() > timeout {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
