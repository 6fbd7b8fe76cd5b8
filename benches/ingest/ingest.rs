//! The end-to-end part: the fleet floods the service, which ingests into the database; then the
//! publish-to-WebSocket latency at a steady rate.

use super::*;

/// Returns the ingest rate in messages per second.
pub(crate) async fn end_to_end(options: &Options, broker: &Broker) -> f64 {
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
        &options.protocol,
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
pub(crate) async fn forget_session(port: u16, client_id: &str) {
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
pub(crate) async fn latency(service: &Service, broker: &Broker, site_id: i32) {
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
