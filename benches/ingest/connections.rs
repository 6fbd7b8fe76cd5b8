//! The fleet-of-connections part: one instance supervising 1 000 connections.

use super::*;

/// One instance supervising 1 000 connections to one Mosquitto.
pub(crate) async fn connections(options: &Options, broker: &Broker) {
    let database_url = fresh_database(&options.database_url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    let service = Service::start(
        &database_url,
        logs.path(),
        options.service_config.as_deref(),
    );
    let db = Database::connect(database_url).await.expect("connect");
    for index in 0..1000 {
        seed_site(&db, broker.port, &format!("fleet-{index}"), None, "3.1.1").await;
    }
    let idle_rss = service.rss_megabytes();
    mqtt_connection::Entity::update_many()
        .col_expr(mqtt_connection::Column::IsActive, Expr::value(true))
        .exec(&db)
        .await
        .expect("activate");
    let to_connect = wait_connected(&db, 1000, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let passes = service
        .metric("mqtt_supervisor_reconcile_seconds_count")
        .await;
    let total = service
        .metric("mqtt_supervisor_reconcile_seconds_sum")
        .await;
    // Steady state: passes with 1 000 running clients and nothing to change.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let passes_after = service
        .metric("mqtt_supervisor_reconcile_seconds_count")
        .await;
    let total_after = service
        .metric("mqtt_supervisor_reconcile_seconds_sum")
        .await;
    println!(
        "connections: 1000 connected {:.2} s after activation",
        to_connect.as_secs_f64()
    );
    println!(
        "  mean reconcile pass (including the start pass): {:.1} ms over {passes} passes",
        1000.0 * total / passes.max(1.0)
    );
    println!(
        "  mean steady reconcile pass with 1000 running: {:.1} ms over {} passes",
        1000.0 * (total_after - total) / (passes_after - passes).max(1.0),
        passes_after - passes
    );
    println!(
        "  RSS: {idle_rss:.1} MB idle, {:.1} MB with 1000 connections",
        service.rss_megabytes()
    );
    let started = Instant::now();
    mqtt_connection::Entity::update_many()
        .col_expr(mqtt_connection::Column::IsActive, Expr::value(false))
        .exec(&db)
        .await
        .expect("deactivate");
    loop {
        use sea_orm::{ColumnTrait, QueryFilter};
        let stopped = mqtt_connection::Entity::find()
            .filter(mqtt_connection::Column::Status.eq("stopped"))
            .count(&db)
            .await
            .unwrap_or(0);
        if stopped >= 1000 || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "  1000 stopped {:.2} s after deactivation",
        started.elapsed().as_secs_f64()
    );
}
