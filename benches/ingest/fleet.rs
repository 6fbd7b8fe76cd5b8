//! The simulated fleet: its messages, made before any clock starts, published as fast as the
//! broker takes them; and the raw broker-to-subscriber rate the service is measured against.

use super::*;

pub(crate) fn reading(index: usize, ts: chrono::DateTime<Utc>) -> (String, Vec<u8>) {
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

pub(crate) async fn client(port: u16, name: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(name, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_inflight(1000);
    options.set_clean_session(true);
    AsyncClient::new(options, 10_000)
}

/// The fleet's messages, made before any clock starts so the publisher only publishes.
pub(crate) fn fleet_messages(count: usize, base: i64) -> Vec<(String, Vec<u8>)> {
    let origin = chrono::DateTime::from_timestamp(base, 0).expect("time");
    (0..count)
        .map(|index| reading(index, origin + chrono::Duration::microseconds(index as i64)))
        .collect()
}

/// Unacknowledged messages each gateway's publisher allows itself.
pub(crate) const PUBLISH_WINDOW: u64 = 2_000;

/// The fleet as it is deployed: by default each gateway is one MQTT client publishing its
/// dataloggers' readings, in order, all gateways at once (`publishers` fewer than the gateways
/// share connections). Returns when the broker has acknowledged every message.
pub(crate) async fn publish_fleet(
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
pub(crate) async fn publish_all(
    port: u16,
    name: &str,
    messages: Vec<(String, Vec<u8>)>,
) -> Duration {
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
pub(crate) async fn raw_rate(broker: &Broker, count: usize, publishers: usize) -> f64 {
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
