//! Load benchmark: a simulated fleet publishes to a real Mosquitto while the release binary
//! ingests into a real database. Prints the figures recorded in docs/performance.md.
//!
//! `cargo bench --bench ingest -- [--messages N] [--database-url URL] [--skip-connections]`
//! Defaults: 200 000 messages from 1 000 dataloggers on 10 gateways, 2 sensors each, QoS 1, into
//! PostgreSQL at postgres://postgres@127.0.0.1:5432/test (a fresh database per run).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use mqtt_supervisor::entity::{mqtt_connection, mqtt_topic, sensor_reading, site};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, Set};

const BINARY: &str = env!("CARGO_BIN_EXE_mqtt-supervisor");
const DATALOGGERS: usize = 1000;
const GATEWAYS: usize = 10;
const TOKEN: &str = "bench-token";

struct Options {
    messages: usize,
    database_url: String,
    connections: bool,
}

fn options() -> Options {
    let mut options = Options {
        messages: 200_000,
        database_url: "postgres://postgres@127.0.0.1:5432/test".into(),
        connections: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--messages" => {
                options.messages = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(options.messages)
            }
            "--database-url" => options.database_url = args.next().unwrap_or(options.database_url),
            "--skip-connections" => options.connections = false,
            _ => {}
        }
    }
    options
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Mosquitto tuned as docs/deployment.md recommends: a large in-flight window and queue.
struct Broker {
    port: u16,
    child: Child,
    _directory: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let directory = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 10000000\nlog_dest none\n{}",
            if running_as_root() { "user root\n" } else { "" }
        );
        let path = directory.path().join("mosquitto.conf");
        std::fs::write(&path, config).expect("write config");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            port,
            child,
            _directory: directory,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reading(index: usize, ts: chrono::DateTime<Utc>) -> (String, Vec<u8>) {
    let datalogger = index % DATALOGGERS;
    let topic = format!(
        "bench/gateway/gw-{}/datalogger/dl-{datalogger}",
        datalogger % GATEWAYS
    );
    let payload = serde_json::json!({
        "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "sensors": [
            {"name": "temperature", "value": (index % 400) as f64 / 10.0, "unit": "°C"},
            {"name": "humidity", "value": (index % 100) as f64, "unit": "%"}
        ]
    });
    (topic, payload.to_string().into_bytes())
}

async fn client(port: u16, name: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(name, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_inflight(1000);
    options.set_clean_session(true);
    AsyncClient::new(options, 10_000)
}

/// Publishes `count` messages as fast as the broker takes them; returns the elapsed time.
async fn publish_all(port: u16, count: usize, base: i64) -> Duration {
    let (publisher, mut event_loop) = client(port, &format!("bench-publisher-{base}")).await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let counter = acknowledged.clone();
    let poller = tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let started = Instant::now();
    let origin = chrono::DateTime::from_timestamp(base, 0).expect("time");
    for index in 0..count {
        let ts = origin + chrono::Duration::microseconds(index as i64);
        let (topic, payload) = reading(index, ts);
        publisher
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }
    while acknowledged.load(Ordering::Relaxed) < count as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    poller.abort();
    elapsed
}

/// Raw broker → one rumqttc subscriber at QoS 1, measured on the same broker and publisher.
async fn raw_rate(port: u16, count: usize) -> f64 {
    let (subscriber, mut event_loop) = client(port, "bench-raw-subscriber").await;
    subscriber
        .subscribe("bench/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let first = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let first_seen = first.clone();
    let task = tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    if let Ok(mut first) = first_seen.lock() {
                        first.get_or_insert_with(Instant::now);
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    tokio::spawn(publish_all(port, count, 1_600_000_000));
    while received.load(Ordering::Relaxed) < count as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if started.elapsed() > Duration::from_secs(300) {
            break;
        }
    }
    let elapsed = started.elapsed();
    task.abort();
    received.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

struct Service {
    child: Child,
    base_url: String,
}

impl Service {
    fn start(database_url: &str, log_dir: &std::path::Path) -> Service {
        let mut child = Command::new(BINARY)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("SUPERVISOR_HTTP_ADDR", "127.0.0.1:0")
            .env("SUPERVISOR_ADMIN_TOKEN", TOKEN)
            .env("SUPERVISOR_RECONCILE_SECS", "1")
            .env("SUPERVISOR_LOG_DIR", log_dir)
            .env(
                "SUPERVISOR_PARSERS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"),
            )
            // BENCH_SERVICE_LOG=FILTER shows the service's own log (on stderr) for profiling.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(if std::env::var("BENCH_SERVICE_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start service");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base_url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("listening on ") {
                        break address.trim().to_string();
                    }
                }
                _ => panic!("service exited before listening"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Service { child, base_url }
    }

    fn rss_megabytes(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kilobytes| kilobytes / 1024.0)
            .unwrap_or(0.0)
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base_url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn fresh_database(base: &str) -> String {
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

async fn seed_site(
    db: &sea_orm::DatabaseConnection,
    port: u16,
    slug: &str,
    pattern: Option<&str>,
) -> i32 {
    let now = Utc::now();
    let site = site::ActiveModel {
        name: Set(slug.into()),
        slug: Set(slug.into()),
        is_active: Set(true),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("site");
    mqtt_connection::ActiveModel {
        site_id: Set(site.id),
        host: Set("127.0.0.1".into()),
        port: Set(i32::from(port)),
        username: Set(None),
        password: Set(None),
        client_id: Set(format!("bench-{slug}")),
        use_tls: Set(false),
        ca_file: Set(None),
        keepalive_secs: Set(60),
        clean_session: Set(false),
        is_active: Set(pattern.is_some()),
        status: Set("stopped".into()),
        last_error: Set(None),
        connected_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("connection");
    if let Some(pattern) = pattern {
        mqtt_topic::ActiveModel {
            site_id: Set(site.id),
            pattern: Set(pattern.into()),
            parser: Set("datalogger_readings_v1".into()),
            qos: Set(1),
            is_active: Set(true),
            priority: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("topic");
    }
    site.id
}

async fn wait_connected(
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

async fn end_to_end(options: &Options, broker: &Broker, raw: f64) {
    let database_url = fresh_database(&options.database_url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&database_url, logs.path());
    let db = Database::connect(database_url.clone())
        .await
        .expect("connect");
    let site_id = seed_site(
        &db,
        broker.port,
        "bench",
        Some("bench/gateway/{gateway}/datalogger/{datalogger}"),
    )
    .await;
    wait_connected(&db, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let expected = 2 * options.messages as u64;
    let started = Instant::now();
    let publishing = tokio::spawn(publish_all(broker.port, options.messages, 1_700_000_000));
    let mut last_count = 0;
    loop {
        last_count = sensor_reading::Entity::find()
            .count(&db)
            .await
            .unwrap_or(last_count);
        if last_count >= expected || started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let publish_elapsed = publishing.await.unwrap_or_default();
    let rate = options.messages as f64 / elapsed.as_secs_f64();
    println!(
        "end-to-end: {} messages ({} readings stored of {expected}) in {:.2} s",
        options.messages,
        last_count,
        elapsed.as_secs_f64()
    );
    println!(
        "  publisher finished after {:.2} s",
        publish_elapsed.as_secs_f64()
    );
    println!(
        "  ingest rate: {rate:.0} messages/s ({:.0} readings/s)",
        rate * 2.0
    );
    println!("  ratio to raw broker→subscriber rate: {:.2}", rate / raw);
    println!(
        "  service RSS after ingest: {:.1} MB",
        service.rss_megabytes()
    );

    latency(&service, broker, site_id).await;
    drop(service);
}

/// Publish-to-WebSocket latency at a steady 2 000 messages/s for 10 s.
async fn latency(service: &Service, broker: &Broker, site_id: i32) {
    let ws_url = format!(
        "{}/ws?token={TOKEN}",
        service.base_url.replacen("http://", "ws://", 1)
    );
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(ws_url).await else {
        println!("latency: the WebSocket endpoint is not available; skipped");
        return;
    };
    let subscribe = serde_json::json!({"subscribe": {"site_id": site_id}}).to_string();
    let _ = socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            subscribe.into(),
        ))
        .await;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let collected = latencies.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let received = Utc::now();
            let Ok(text) = message.into_text() else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if event["type"] != "datalogger_update" {
                continue;
            }
            if let Some(sensors) = event["sensors"].as_array() {
                for sensor in sensors.iter().take(1) {
                    if let Some(ts) = sensor["ts"]
                        .as_str()
                        .and_then(|ts| chrono::DateTime::parse_from_rfc3339(ts).ok())
                    {
                        let millis = (received - ts.with_timezone(&Utc))
                            .num_microseconds()
                            .unwrap_or(0) as f64
                            / 1000.0;
                        if let Ok(mut all) = collected.lock() {
                            all.push(millis);
                        }
                    }
                }
            }
        }
    });
    let (publisher, mut event_loop) = client(broker.port, "bench-latency-publisher").await;
    let poller = tokio::spawn(async move { while event_loop.poll().await.is_ok() {} });
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let started = Instant::now();
    let mut index = 0usize;
    while started.elapsed() < Duration::from_secs(10) {
        ticker.tick().await;
        for _ in 0..2 {
            // Each message is stamped with its publish time; the event carries it back.
            let (topic, payload) = reading(index, Utc::now());
            let _ = publisher
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await;
            index += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    reader.abort();
    poller.abort();
    let mut values = latencies.lock().map(|all| all.clone()).unwrap_or_default();
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        println!("latency: no datalogger_update events received");
        return;
    }
    let percentile = |p: f64| values[((values.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "latency at {:.0} messages/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        index as f64 / 10.0,
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
        values.len()
    );
}

/// One instance supervising 1 000 connections to one Mosquitto.
async fn connections(options: &Options, broker: &Broker) {
    let database_url = fresh_database(&options.database_url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&database_url, logs.path());
    let db = Database::connect(database_url).await.expect("connect");
    for index in 0..1000 {
        seed_site(&db, broker.port, &format!("fleet-{index}"), None).await;
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
        .await
        .unwrap_or(0.0);
    let total = service
        .metric("mqtt_supervisor_reconcile_seconds_sum")
        .await
        .unwrap_or(0.0);
    // Steady state: passes with 1 000 running clients and nothing to change.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let passes_after = service
        .metric("mqtt_supervisor_reconcile_seconds_count")
        .await
        .unwrap_or(0.0);
    let total_after = service
        .metric("mqtt_supervisor_reconcile_seconds_sum")
        .await
        .unwrap_or(0.0);
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

#[tokio::main]
async fn main() {
    let options = options();
    // `cargo bench` passes --bench; `cargo test --benches` runs this too, so keep that run short.
    let options = if std::env::args().any(|arg| arg == "--bench") {
        options
    } else {
        println!("(not under `cargo bench`: a short smoke run)");
        Options {
            messages: 2_000,
            connections: false,
            ..options
        }
    };
    println!("mqtt-supervisor ingest benchmark: {} messages, {DATALOGGERS} dataloggers on {GATEWAYS} gateways, database {}", options.messages, options.database_url);
    let broker = Broker::start();
    let raw = raw_rate(broker.port, options.messages).await;
    println!("raw broker→subscriber (QoS 1, inflight 1000): {raw:.0} messages/s");
    end_to_end(&options, &broker, raw).await;
    if options.connections {
        connections(&options, &broker).await;
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}
