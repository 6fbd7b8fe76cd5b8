//! The downlink part (`--commands`): commands from the API to a device over the service's one
//! connection, at rest and during a steady 20 000 messages/s ingest flood on the same
//! connection; and the flood's own pace with and without commands beside it.

use std::collections::HashMap;

use super::*;

/// Messages per second of the steady flood, and how long it lasts.
const FLOOD_RATE: u64 = 20_000;
const FLOOD_SECS: u64 = 15;
/// One command every this often.
const COMMAND_EVERY: Duration = Duration::from_millis(50);

type Arrivals = Arc<std::sync::Mutex<HashMap<String, Instant>>>;

/// A device subscribed to `cmd/#`, noting when each command topic first arrives.
async fn device(port: u16) -> (Arrivals, tokio::task::JoinHandle<()>) {
    let (client, mut event_loop) = client(port, "bench-command-device").await;
    client
        .subscribe("cmd/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let arrivals: Arrivals = Arc::default();
    let noted = arrivals.clone();
    let task = tokio::spawn(async move {
        let _client = client;
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Ok(mut noted) = noted.lock() {
                        noted
                            .entry(publish.topic.clone())
                            .or_insert_with(Instant::now);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    (arrivals, task)
}

/// Posts `count` commands, one every `COMMAND_EVERY`, and returns each one's time from the
/// API call to the device, in milliseconds.
async fn command_latencies(
    service: &Service,
    site_id: i32,
    arrivals: &Arrivals,
    label: &str,
    count: usize,
) -> Vec<f64> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/sites/{site_id}/commands", service.base_url);
    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(count);
    let mut ticker = tokio::time::interval(COMMAND_EVERY);
    for index in 0..count {
        ticker.tick().await;
        let topic = format!("cmd/{label}/{index}");
        let started = Instant::now();
        let response = http
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"topic": topic, "payload": {"state": "on"}, "qos": 1}))
            .send()
            .await;
        if response.is_ok_and(|response| response.status().as_u16() == 202) {
            sent.push((topic, started));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all_arrived = arrivals
            .lock()
            .map(|all| sent.iter().all(|(topic, _)| all.contains_key(topic)))
            .unwrap_or(false);
        if all_arrived || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrivals = arrivals.lock().map(|all| all.clone()).unwrap_or_default();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(topic, started)| {
            arrivals
                .get(topic)
                .map(|arrived| arrived.duration_since(*started).as_secs_f64() * 1000.0)
        })
        .collect();
    if latencies.len() < sent.len() {
        println!(
            "  {label}: {} of {} commands did not arrive within 30 s",
            sent.len() - latencies.len(),
            sent.len()
        );
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    latencies
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

/// Publishes a steady `FLOOD_RATE` for `FLOOD_SECS` from four publishers and returns how long
/// the service took, from the first message, to have processed all of them.
async fn steady_flood(service: &Service, broker: &Broker, base: i64) -> (u64, Duration) {
    const PUBLISHERS: u64 = 4;
    let per_publisher_per_ms = FLOOD_RATE / PUBLISHERS / 1000;
    let total = FLOOD_RATE * FLOOD_SECS;
    let processed_before = service
        .metric("mqtt_supervisor_messages_processed_total")
        .await;
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|publisher| {
            let port = broker.port;
            tokio::spawn(async move {
                let (client, mut event_loop) =
                    client(port, &format!("bench-steady-{base}-{publisher}")).await;
                let poller = tokio::spawn(async move { while event_loop.poll().await.is_ok() {} });
                let origin = chrono::DateTime::from_timestamp(base, 0).expect("time");
                let mut ticker = tokio::time::interval(Duration::from_millis(1));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut index = publisher as usize;
                for _ in 0..FLOOD_SECS * 1000 {
                    ticker.tick().await;
                    for _ in 0..per_publisher_per_ms {
                        let (topic, payload) =
                            reading(index, origin + chrono::Duration::microseconds(index as i64));
                        let _ = client
                            .publish(topic, QoS::AtLeastOnce, false, payload)
                            .await;
                        index += PUBLISHERS as usize;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                poller.abort();
            })
        })
        .collect();
    for publisher in publishers {
        let _ = publisher.await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let processed = service
            .metric("mqtt_supervisor_messages_processed_total")
            .await;
        if processed - processed_before >= total as f64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (total, started.elapsed())
}

pub(crate) async fn commands(options: &Options, broker: &Broker) {
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
        "commands",
        Some("bench/gateway/{gateway}/datalogger/{datalogger}"),
        &options.protocol,
    )
    .await;
    wait_connected(&db, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (arrivals, device_task) = device(broker.port).await;
    println!(
        "commands over one MQTT {} connection (QoS 1, one every {} ms):",
        options.protocol,
        COMMAND_EVERY.as_millis()
    );

    let at_rest = command_latencies(&service, site_id, &arrivals, "rest", 200).await;
    println!(
        "  at rest: API → device p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} commands)",
        percentile(&at_rest, 0.5),
        percentile(&at_rest, 0.99),
        percentile(&at_rest, 1.0),
        at_rest.len()
    );

    // The same steady flood twice: alone, then with commands beside it.
    let (messages, alone) = steady_flood(&service, broker, 1_700_000_000).await;
    println!(
        "  uplink alone: {messages} messages at {FLOOD_RATE}/s processed in {:.2} s ({:.0} messages/s)",
        alone.as_secs_f64(),
        messages as f64 / alone.as_secs_f64()
    );
    let flood_commands = (FLOOD_SECS * 1000 / COMMAND_EVERY.as_millis() as u64) as usize;
    let flood = steady_flood(&service, broker, 1_710_000_000);
    let during = command_latencies(&service, site_id, &arrivals, "flood", flood_commands);
    let ((messages, beside), during) = tokio::join!(flood, during);
    println!(
        "  uplink with commands: {messages} messages processed in {:.2} s ({:.0} messages/s, {:+.1} % time against alone)",
        beside.as_secs_f64(),
        messages as f64 / beside.as_secs_f64(),
        (beside.as_secs_f64() / alone.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  during the flood: API → device p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} commands)",
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        percentile(&during, 1.0),
        during.len()
    );
    device_task.abort();
    drop(service);
    forget_session(broker.port, "bench-commands").await;
}
