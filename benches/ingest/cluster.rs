//! The several-instances part (`--cluster`): failover time over repeated kills, shards moved when
//! an instance joins or leaves, 1 000 connections over three instances, and one flood ingested
//! through 1, 2 and 3 shards of one connection.

use super::*;

/// Short enough that twenty kills take minutes, long enough to keep the lease renewals cheap.
const LEASE_SECS: u64 = 6;

fn cluster_instance(database_url: &str, logs: &std::path::Path, id: &str) -> Service {
    Service::start_with_env(
        database_url,
        &logs.join(id),
        None,
        &[
            ("SUPERVISOR_INSTANCE_ID", id.to_string()),
            ("SUPERVISOR_LEASE_SECS", LEASE_SECS.to_string()),
            ("SUPERVISOR_RECONCILE_SECS", "30".to_string()),
        ],
    )
}

/// (connection id, shard) → owner, of the live leases as any instance lists them.
async fn owners(service: &Service) -> BTreeMap<(i64, i64), String> {
    let mut owners = BTreeMap::new();
    if let Some(instances) = service.api("/api/instances").await.as_array() {
        for instance in instances.iter().filter(|instance| instance["live"] == true) {
            let id = instance["id"].as_str().unwrap_or_default().to_string();
            for shard in instance["connections"].as_array().into_iter().flatten() {
                let key = (
                    shard["connection_id"].as_i64().unwrap_or(0),
                    shard["shard"].as_i64().unwrap_or(0),
                );
                owners.insert(key, id.clone());
            }
        }
    }
    owners
}

/// Waits until `instances` instances are live and `count` shards are owned and stay so for a
/// whole lease (moves go a renewal round at a time, so a shorter calm can come between two of
/// them); returns the owners.
async fn settled_owners(
    service: &Service,
    instances: usize,
    count: usize,
) -> BTreeMap<(i64, i64), String> {
    let mut previous = BTreeMap::new();
    let mut calm_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let live = service
            .api("/api/instances")
            .await
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|instance| instance["live"] == true)
                    .count()
            })
            .unwrap_or(0);
        let now = owners(service).await;
        if now != previous || live != instances || now.len() != count {
            calm_since = Instant::now();
        } else if calm_since.elapsed() >= Duration::from_secs(LEASE_SECS) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "placement did not settle: {live} live, {now:?}"
        );
        previous = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn moved(before: &BTreeMap<(i64, i64), String>, after: &BTreeMap<(i64, i64), String>) -> usize {
    after
        .iter()
        .filter(|(key, owner)| before.get(key) != Some(owner))
        .count()
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

/// Messages every instance committed, together.
async fn processed_by_all(instances: &[Service]) -> f64 {
    let mut total = 0.0;
    for instance in instances {
        total += instance
            .metric("mqtt_supervisor_messages_processed_total")
            .await;
    }
    total
}

pub(crate) async fn cluster(options: &Options, broker: &Broker) {
    println!("several instances (lease {LEASE_SECS} s):");
    let part = |name: &str| {
        options.cluster_parts.is_empty() || options.cluster_parts.iter().any(|part| part == name)
    };
    if part("failover") {
        failover(options, broker).await;
    }
    if part("rebalance") {
        rebalance(options, broker).await;
    }
    if part("connections") {
        thousand_connections(options, broker).await;
    }
    if part("shards") {
        shards(options, broker).await;
    }
}

/// Kills the owner of one connection twenty times; the time until another instance has it
/// connected again.
async fn failover(options: &Options, broker: &Broker) {
    let database_url = fresh_database(&options.database_url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    let db = Database::connect(database_url.clone())
        .await
        .expect("connect");
    let mut instances: BTreeMap<String, Service> = BTreeMap::new();
    let mut next = 0;
    for _ in 0..3 {
        let id = format!("node-{next}");
        next += 1;
        instances.insert(
            id.clone(),
            cluster_instance(&database_url, logs.path(), &id),
        );
    }
    let site_id = seed_site(
        &db,
        broker.port,
        "failover",
        Some("failover/{gateway}/{datalogger}"),
        "3.1.1",
    )
    .await;
    let mut times = Vec::new();
    let kills = if options.cluster_kills == 0 {
        20
    } else {
        options.cluster_kills
    };
    for _ in 0..kills {
        let any = instances.values().next().expect("an instance");
        let owner = loop {
            let connection = any.api(&format!("/api/mqtt/connection/{site_id}/")).await;
            if connection["status"] == "connected" {
                if let Some(owner) = connection["owner"].as_str() {
                    break owner.to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let Some(mut victim) = instances.remove(&owner) else {
            panic!("owner {owner} is not one of ours");
        };
        let killed = Instant::now();
        let _ = victim.child.kill();
        let _ = victim.child.wait();
        let survivor = instances.values().next().expect("a survivor");
        loop {
            let connection = survivor
                .api(&format!("/api/mqtt/connection/{site_id}/"))
                .await;
            if connection["status"] == "connected"
                && connection["owner"].as_str().is_some_and(|new| new != owner)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        times.push(killed.elapsed().as_secs_f64());
        let id = format!("node-{next}");
        next += 1;
        instances.insert(
            id.clone(),
            cluster_instance(&database_url, logs.path(), &id),
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  failover over {} kills: median {:.2} s, worst {:.2} s (lease {LEASE_SECS} s)",
        times.len(),
        percentile(&times, 0.5),
        times.last().copied().unwrap_or(0.0)
    );
}

/// 30 connections on two instances; a third joins, then one of the first two stops.
async fn rebalance(options: &Options, broker: &Broker) {
    let database_url = fresh_database(&options.database_url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    let db = Database::connect(database_url.clone())
        .await
        .expect("connect");
    let a = cluster_instance(&database_url, logs.path(), "node-a");
    let mut b = cluster_instance(&database_url, logs.path(), "node-b");
    for index in 0..30 {
        seed_site(
            &db,
            broker.port,
            &format!("spread-{index}"),
            Some("spread/#"),
            "3.1.1",
        )
        .await;
    }
    let two = settled_owners(&a, 2, 30).await;
    let c = cluster_instance(&database_url, logs.path(), "node-c");
    let three = settled_owners(&c, 3, 30).await;
    let counts = |owners: &BTreeMap<(i64, i64), String>| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for owner in owners.values() {
            *counts.entry(owner.clone()).or_insert(0) += 1;
        }
        counts.into_values().collect::<Vec<_>>()
    };
    println!(
        "  30 connections: spread {:?} on two instances, {:?} after a third joined ({} moved)",
        counts(&two),
        counts(&three),
        moved(&two, &three)
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &b.child.id().to_string()])
        .status();
    let _ = b.child.wait();
    let left = settled_owners(&a, 2, 30).await;
    println!(
        "  after one stopped: {:?} ({} moved)",
        counts(&left),
        moved(&three, &left)
    );
}

/// 1 000 connections over three instances: time to all connected, reconcile passes, memory.
async fn thousand_connections(options: &Options, broker: &Broker) {
    let database_url = fresh_database(&options.database_url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    let db = Database::connect(database_url.clone())
        .await
        .expect("connect");
    let instances: Vec<Service> = ["node-a", "node-b", "node-c"]
        .into_iter()
        .map(|id| cluster_instance(&database_url, logs.path(), id))
        .collect();
    for index in 0..1000 {
        seed_site(&db, broker.port, &format!("many-{index}"), None, "3.1.1").await;
    }
    let started = Instant::now();
    mqtt_connection::Entity::update_many()
        .col_expr(mqtt_connection::Column::IsActive, Expr::value(true))
        .exec(&db)
        .await
        .expect("activate");
    let to_connect = wait_connected(&db, 1000, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut passes = Vec::new();
    for instance in &instances {
        let count = instance
            .metric("mqtt_supervisor_reconcile_seconds_count")
            .await;
        let sum = instance
            .metric("mqtt_supervisor_reconcile_seconds_sum")
            .await;
        let running = instance.metric("mqtt_supervisor_running_clients").await;
        passes.push(format!(
            "{running:.0} clients, pass {:.1} ms, {:.1} MB",
            if count > 0.0 {
                sum / count * 1000.0
            } else {
                0.0
            },
            instance.rss_megabytes()
        ));
    }
    println!(
        "  1 000 connections over three instances: all connected after {:.1} s ({:.1} s after activation); {}",
        to_connect.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        passes.join("; ")
    );
}

/// One flood into one connection split into 1, 2 and 3 shards over three instances.
async fn shards(options: &Options, broker: &Broker) {
    let messages = options.cluster_messages;
    let mut single = 0.0;
    for shards in 1..=3 {
        let database_url = fresh_database(&options.database_url).await;
        let logs = tempfile::tempdir().expect("tempdir");
        let db = Database::connect(database_url.clone())
            .await
            .expect("connect");
        let instances: Vec<Service> = ["node-a", "node-b", "node-c"]
            .into_iter()
            .map(|id| cluster_instance(&database_url, logs.path(), id))
            .collect();
        let slug = format!("sharded-{shards}");
        let pattern = "bench/gateway/{gateway}/datalogger/{datalogger}";
        let site = seed::seed_site(&db, &{
            let mut site = SiteSeed::new(&slug, "127.0.0.1", broker.port);
            site.client_id = format!("bench-{slug}");
            site.patterns = vec![PatternSeed::active(pattern, "datalogger_readings_v1")];
            site.connection_active = false;
            site
        })
        .await
        .expect("seed");
        mqtt_connection::Entity::update_many()
            .col_expr(mqtt_connection::Column::Shards, Expr::value(shards))
            .col_expr(mqtt_connection::Column::IsActive, Expr::value(true))
            .exec(&db)
            .await
            .expect("shards");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let connection = instances[0]
                .api(&format!("/api/mqtt/connection/{}/", site.site_id))
                .await;
            let connected = connection["shard_owners"]
                .as_array()
                .map(|owners| {
                    owners.len() == shards as usize
                        && owners.iter().all(|shard| shard["status"] == "connected")
                })
                .unwrap_or(false);
            if connected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "shards did not connect: {connection}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = processed_by_all(&instances).await;
        let fleet = fleet_messages(messages, 1_700_000_000);
        let started = Instant::now();
        let port = broker.port;
        let publishing =
            tokio::spawn(async move { publish_fleet(port, "bench-shards", GATEWAYS, fleet).await });
        while processed_by_all(&instances).await - before < messages as f64 {
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "the flood did not finish"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let _ = publishing.await;
        let rate = messages as f64 / elapsed;
        if shards == 1 {
            single = rate;
        }
        println!(
            "  {messages} messages through {shards} shard(s) on three instances: {rate:.0} messages/s, {:.2} of one shard",
            rate / single.max(1.0)
        );
        // The shards' sessions would keep queueing later floods for nobody.
        drop(instances);
        let client_ids: Vec<String> = if shards == 1 {
            vec![format!("bench-{slug}")]
        } else {
            (0..shards).map(|k| format!("bench-{slug}-{k}")).collect()
        };
        for client_id in client_ids {
            forget_session(broker.port, &client_id).await;
        }
    }
}
