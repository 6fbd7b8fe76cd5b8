//! Load benchmark: a simulated fleet publishes to a real Mosquitto while the release binary
//! ingests into a real database. Prints the figures recorded in docs/performance.md.
//!
//! `cargo bench --bench ingest -- [--messages N] [--database-url URL] [--skip-connections]
//!  [--publishers N] [--broker-inflight N] [--service-config FILE]`
//! Defaults: 3 000 000 messages (about half a minute of flood) from 1 000 dataloggers on 10
//! gateways (one MQTT connection each), 2 sensors each, QoS 1, into the local PostgreSQL
//! (database `test`, user `postgres`, over the Unix socket in /var/run/postgresql when there is
//! one, else 127.0.0.1:5432; a fresh database per run).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use mqtt_supervisor::entity::{mqtt_connection, sensor_reading};
use mqtt_supervisor::seed::{self, PatternSeed, SiteSeed};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, Database, EntityTrait, PaginatorTrait};

const BINARY: &str = env!("CARGO_BIN_EXE_mqtt-supervisor");
const DATALOGGERS: usize = 1000;
const GATEWAYS: usize = 10;
const TOKEN: &str = "bench-token";

struct Options {
    messages: usize,
    database_url: String,
    connections: bool,
    /// A configuration file for the service (e.g. to compare writer counts or batch sizes).
    service_config: Option<String>,
    /// Mosquitto's `max_inflight_messages`: how many unacknowledged messages it sends ahead.
    broker_inflight: u16,
    /// MQTT connections the fleet publishes over: one per gateway unless told otherwise.
    publishers: usize,
}

/// The PostgreSQL of this host, over its Unix socket when it has one: docs/deployment.md
/// recommends that for a database on the same host (no TCP, no TLS on loopback).
fn local_database_url() -> String {
    if std::path::Path::new("/var/run/postgresql/.s.PGSQL.5432").exists() {
        "postgres://postgres@localhost/test?host=/var/run/postgresql".into()
    } else {
        "postgres://postgres@127.0.0.1:5432/test".into()
    }
}

fn options() -> Options {
    let mut options = Options {
        messages: 3_000_000,
        database_url: local_database_url(),
        connections: true,
        service_config: None,
        broker_inflight: 1000,
        publishers: GATEWAYS,
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
            "--service-config" => options.service_config = args.next(),
            "--publishers" => {
                options.publishers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(options.publishers)
                    .clamp(1, GATEWAYS)
            }
            "--broker-inflight" => {
                options.broker_inflight = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(options.broker_inflight)
            }
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
    fn start(inflight: u16) -> Broker {
        let directory = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages {inflight}\nmax_queued_messages 10000000\nlog_dest none\n{}",
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

/// The fleet's messages, made before any clock starts so the publisher only publishes.
fn fleet_messages(count: usize, base: i64) -> Vec<(String, Vec<u8>)> {
    let origin = chrono::DateTime::from_timestamp(base, 0).expect("time");
    (0..count)
        .map(|index| reading(index, origin + chrono::Duration::microseconds(index as i64)))
        .collect()
}

/// Unacknowledged messages each gateway's publisher allows itself.
const PUBLISH_WINDOW: u64 = 2_000;

/// The fleet as it is deployed: by default each gateway is one MQTT client publishing its
/// dataloggers' readings, in order, all gateways at once (`publishers` fewer than the gateways
/// share connections). Returns when the broker has acknowledged every message.
async fn publish_fleet(
    port: u16,
    name: &str,
    publishers: usize,
    messages: Vec<(String, Vec<u8>)>,
) -> Duration {
    let mut per_gateway: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); publishers];
    for (index, message) in messages.into_iter().enumerate() {
        per_gateway[(index % DATALOGGERS) % GATEWAYS % publishers].push(message);
    }
    let started = Instant::now();
    let gateways: Vec<_> = per_gateway
        .into_iter()
        .enumerate()
        .map(|(gateway, messages)| {
            let name = format!("{name}-gw-{gateway}");
            tokio::spawn(async move { publish_all(port, &name, messages).await })
        })
        .collect();
    for gateway in gateways {
        gateway.await.expect("gateway publisher");
    }
    started.elapsed()
}

/// Publishes `messages` at QoS 1 as fast as the broker takes them; returns the time until the
/// broker has acknowledged the last one. The packets are encoded before the clock starts and
/// written in large chunks over one plain socket: real devices publish from other machines, so
/// the simulator should take as little of the shared CPUs as it can.
async fn publish_all(port: u16, name: &str, messages: Vec<(String, Vec<u8>)>) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CHUNK_BYTES: usize = 64 * 1024;
    let count = messages.len() as u64;
    // (encoded packets, how many messages they hold)
    let mut chunks: Vec<(bytes::BytesMut, u64)> = Vec::new();
    let mut chunk = bytes::BytesMut::with_capacity(CHUNK_BYTES);
    let mut in_chunk = 0;
    for (index, (topic, payload)) in messages.into_iter().enumerate() {
        let mut publish = rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload);
        publish.pkid = (index % usize::from(u16::MAX)) as u16 + 1;
        publish.write(&mut chunk).expect("encode PUBLISH");
        in_chunk += 1;
        if chunk.len() >= CHUNK_BYTES {
            chunks.push((std::mem::take(&mut chunk), in_chunk));
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        chunks.push((chunk, in_chunk));
    }

    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the broker");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (mut reader, mut writer) = stream.into_split();
    let mut connect = rumqttc::Connect::new(name);
    connect.keep_alive = 600;
    connect.clean_session = true;
    let mut packet = bytes::BytesMut::new();
    connect.write(&mut packet).expect("encode CONNECT");
    writer.write_all(&packet).await.expect("send CONNECT");
    let mut connack = [0u8; 4];
    reader.read_exact(&mut connack).await.expect("CONNACK");
    assert_eq!(
        connack,
        [0x20, 0x02, 0x00, 0x00],
        "the broker refused the publisher"
    );

    // After CONNACK the broker sends this client nothing but PUBACKs, four bytes each.
    let acknowledged = Arc::new(AtomicU64::new(0));
    let counter = acknowledged.clone();
    let acknowledgements = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut bytes_read = 0u64;
        while let Ok(read) = reader.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            bytes_read += read as u64;
            counter.store(bytes_read / 4, Ordering::Relaxed);
        }
    });
    let started = Instant::now();
    let mut sent = 0;
    for (packets, messages) in chunks {
        while sent - acknowledged.load(Ordering::Relaxed) > PUBLISH_WINDOW {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        writer.write_all(&packets).await.expect("publish");
        sent += messages;
    }
    while acknowledged.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    // DISCONNECT, so the broker does not wait for the keep-alive.
    let _ = writer.write_all(&[0xE0, 0x00]).await;
    acknowledgements.abort();
    elapsed
}

/// Raw broker → one rumqttc subscriber at QoS 1, measured on the same broker and publisher.
/// The raw rate in messages per second; also prints what it cost the broker and this process
/// (publishers and subscriber), to compare with the end-to-end part.
async fn raw_rate(broker: &Broker, count: usize, publishers: usize) -> f64 {
    let port = broker.port;
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
    let messages = fleet_messages(count, 1_600_000_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let broker_cpu_before = cpu_seconds(&[broker.child.id()]);
    let own_cpu_before = cpu_seconds(&[std::process::id()]);
    let started = Instant::now();
    tokio::spawn(async move { publish_fleet(port, "bench-raw", publishers, messages).await });
    while received.load(Ordering::Relaxed) < count as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if started.elapsed() > Duration::from_secs(300) {
            break;
        }
    }
    let elapsed = started.elapsed();
    let per_message = |seconds: f64| 1e6 * seconds / count as f64;
    println!(
        "  CPU per message: broker {:.1} µs, publishers and subscriber {:.1} µs",
        per_message(cpu_seconds(&[broker.child.id()]) - broker_cpu_before),
        per_message(cpu_seconds(&[std::process::id()]) - own_cpu_before),
    );
    task.abort();
    received.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

/// CPU time (user + system) of a set of processes, from /proc; Linux only, zero elsewhere.
fn cpu_seconds(pids: &[u32]) -> f64 {
    // Kernel clock ticks; 100 per second on every Linux this runs on.
    const TICKS_PER_SECOND: f64 = 100.0;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which is in parentheses and may contain spaces.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / TICKS_PER_SECOND)
        })
        .sum()
}

/// Every process of one program name (e.g. all PostgreSQL backends).
fn pids_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|comm| comm.trim() == name)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// CPU used by each party of the run: where the machine's two cores went.
struct CpuUse {
    service: f64,
    broker: f64,
    database: f64,
    publisher: f64,
}

impl CpuUse {
    fn now(service: u32, broker: u32) -> CpuUse {
        CpuUse {
            service: cpu_seconds(&[service]),
            broker: cpu_seconds(&[broker]),
            database: cpu_seconds(&pids_named("postgres")),
            publisher: cpu_seconds(&[std::process::id()]),
        }
    }

    fn since(&self, earlier: &CpuUse) -> CpuUse {
        CpuUse {
            service: self.service - earlier.service,
            broker: self.broker - earlier.broker,
            database: self.database - earlier.database,
            publisher: self.publisher - earlier.publisher,
        }
    }
}

struct Service {
    child: Child,
    base_url: String,
}

impl Service {
    fn start(database_url: &str, log_dir: &std::path::Path, config: Option<&str>) -> Service {
        let mut command = Command::new(BINARY);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
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

    /// One metric from /metrics, summed over its labelled series; 0 when it is missing or the
    /// service does not answer.
    async fn metric(&self, name: &str) -> f64 {
        let Ok(response) = reqwest::get(format!("{}/metrics", self.base_url)).await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.starts_with(name)
                    && matches!(line.as_bytes().get(name.len()), Some(b'{' | b' '))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The writer's batch counters, to tell the batches of one part of the run.
struct Batching {
    batches: f64,
    messages: f64,
    commit_seconds: f64,
}

impl Batching {
    async fn read(service: &Service) -> Batching {
        Batching {
            batches: service.metric("mqtt_supervisor_batch_messages_count").await,
            messages: service.metric("mqtt_supervisor_batch_messages_sum").await,
            commit_seconds: service.metric("mqtt_supervisor_commit_seconds_sum").await,
        }
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
    let mut site = SiteSeed::new(slug, "127.0.0.1", port);
    site.client_id = format!("bench-{slug}");
    site.keepalive_secs = 60;
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

/// Returns the ingest rate in messages per second.
async fn end_to_end(options: &Options, broker: &Broker) -> f64 {
    let database_url = fresh_database(&options.database_url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    let service = Service::start(
        &database_url,
        logs.path(),
        options.service_config.as_deref(),
    );
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

    // Steady 2 000 messages/s first, on a quiet database, then the flood.
    latency(&service, broker, site_id).await;

    let processed_before = service
        .metric("mqtt_supervisor_messages_processed_total")
        .await;
    let readings_before = sensor_reading::Entity::find().count(&db).await.unwrap_or(0);
    let batching_before = Batching::read(&service).await;
    let reconnects_before = service.metric("mqtt_supervisor_reconnects_total").await;
    let expected = 2 * options.messages as u64;
    let messages = fleet_messages(options.messages, 1_700_000_000);
    let cpu_before = CpuUse::now(service.child.id(), broker.child.id());
    let started = Instant::now();
    let port = broker.port;
    let publishers = options.publishers;
    let publishing =
        tokio::spawn(async move { publish_fleet(port, "bench-fleet", publishers, messages).await });
    // The service counts a message as processed after the transaction holding it commits.
    // Watching that counter costs the database nothing, unlike counting rows while it ingests.
    // Also kept: the count at each whole second, to show whether the rate holds over a long run.
    let mut processed_by_second = vec![processed_before];
    let mut most_acknowledgements_waiting: f64 = 0.0;
    loop {
        let processed = service
            .metric("mqtt_supervisor_messages_processed_total")
            .await;
        if processed - processed_before >= options.messages as f64
            || started.elapsed() > Duration::from_secs(600)
        {
            break;
        }
        if started.elapsed().as_secs() >= processed_by_second.len() as u64 {
            processed_by_second.push(processed);
            let waiting = service
                .metric("mqtt_supervisor_acknowledgements_waiting")
                .await;
            most_acknowledgements_waiting = most_acknowledgements_waiting.max(waiting);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu = CpuUse::now(service.child.id(), broker.child.id()).since(&cpu_before);
    let publish_elapsed = publishing.await.unwrap_or_default();
    let last_count = sensor_reading::Entity::find().count(&db).await.unwrap_or(0) - readings_before;
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
    let by_second: Vec<f64> = processed_by_second
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .collect();
    if !by_second.is_empty() {
        let listed: Vec<String> = by_second
            .iter()
            .map(|count| format!("{:.0}k", count / 1000.0))
            .collect();
        println!(
            "  messages per second, second by second: {}",
            listed.join(" ")
        );
    }
    // The first second includes the fleet connecting; a stall shows in the others.
    if let Some(slowest) = by_second.iter().skip(1).copied().reduce(f64::min) {
        println!("  slowest whole second after the first: {slowest:.0} messages");
    }
    println!(
        "  acknowledgements waiting for room on the broker's connection, most seen (each second): \
         {most_acknowledgements_waiting:.0}"
    );
    let per_message = |seconds: f64| 1e6 * seconds / options.messages as f64;
    println!(
        "  CPU per message: service {:.1} µs, broker {:.1} µs, PostgreSQL {:.1} µs, publisher {:.1} µs ({:.2} of 2 cores busy)",
        per_message(cpu.service),
        per_message(cpu.broker),
        per_message(cpu.database),
        per_message(cpu.publisher),
        (cpu.service + cpu.broker + cpu.database + cpu.publisher) / elapsed.as_secs_f64() / 2.0
    );
    let reconnects = service.metric("mqtt_supervisor_reconnects_total").await - reconnects_before;
    if reconnects > 0.0 {
        println!("  the service's connection to the broker broke {reconnects:.0} times");
    }
    let batching = Batching::read(&service).await;
    let batches = batching.batches - batching_before.batches;
    println!(
        "  {batches} batches while ingesting, {:.0} messages and {:.1} ms of commit each on average",
        (batching.messages - batching_before.messages) / batches.max(1.0),
        1000.0 * (batching.commit_seconds - batching_before.commit_seconds) / batches.max(1.0)
    );
    println!(
        "  service RSS after ingest: {:.1} MB",
        service.rss_megabytes()
    );

    drop(service);
    // The service's session is persistent (no loss across restarts); left behind, the broker
    // would keep queueing the fleet's messages for it during the next raw measurement.
    forget_session(broker.port, "bench-bench").await;
    rate
}

/// Ends a persistent session at the broker by connecting once with its client id and a clean
/// session.
async fn forget_session(port: u16, client_id: &str) {
    let (client, mut event_loop) = client(port, client_id).await;
    let connected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    if connected.is_ok() {
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), event_loop.poll()).await;
    }
}

/// Publish-to-WebSocket latency at a steady 2 000 messages/s: 2 s to warm up (the fleet's
/// devices are new to the database), then 10 s measured.
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
    let warm_up = Duration::from_secs(2);
    let measured_from = Utc::now() + warm_up;
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
                        .filter(|ts| *ts >= measured_from)
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
    while started.elapsed() < warm_up + Duration::from_secs(10) {
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
        index as f64 / (warm_up + Duration::from_secs(10)).as_secs_f64(),
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
    let service = Service::start(
        &database_url,
        logs.path(),
        options.service_config.as_deref(),
    );
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
    println!(
        "mqtt-supervisor ingest benchmark: {} messages, {DATALOGGERS} dataloggers on {GATEWAYS} gateways over {} publishing connections, database {}",
        options.messages, options.publishers, options.database_url
    );
    let broker = Broker::start(options.broker_inflight);
    let raw_before = raw_rate(&broker, options.messages, options.publishers).await;
    println!(
        "raw broker→subscriber (QoS 1, inflight {}): {raw_before:.0} messages/s",
        options.broker_inflight
    );
    let rate = end_to_end(&options, &broker).await;
    // The machine's speed drifts between parts of a run (shared cores of a virtual machine):
    // the reference is the mean of the raw rate just before and just after the ingest.
    let raw_after = raw_rate(&broker, options.messages, options.publishers).await;
    let raw = (raw_before + raw_after) / 2.0;
    println!("raw broker→subscriber again after the ingest: {raw_after:.0} messages/s");
    println!(
        "ratio of end to end to raw (mean {raw:.0} messages/s): {:.2}",
        rate / raw
    );
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
