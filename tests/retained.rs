//! Retained messages are old news, against the real broker of TEST_MQTT_URL: a message the broker
//! replays on subscribe stores its readings and creates the devices it names, but never moves a
//! device's `last_seen` or `is_online`, never records an online/offline transition and never
//! takes a latest value back in time; a replay from the parsing log keeps it old news. Each test
//! uses its own topic prefix and clears the retained messages it left on the shared broker.

mod common;

use std::time::Duration;

use common::{
    add_topic, config_args, create_site, eventually, unique_name, wait_for_granted_via_api,
    wait_for_status, Publisher, Service, ServiceOptions, TestDatabase,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

const READINGS: &str = "datalogger_readings_v1";
const STATUS: &str = "gateway_status_v1";

fn options(database: &TestDatabase, jobs: &str) -> ServiceOptions {
    ServiceOptions {
        reconcile_secs: 1,
        args: config_args(
            database.directory.path(),
            &format!("[supervisor]\nbackoff_initial_ms = 200\nbackoff_max_secs = 2\n{jobs}"),
        ),
        ..Default::default()
    }
}

/// Publishes `payload` with the retain flag and returns once the broker has acknowledged it,
/// so a connection started afterwards finds it in the broker's retained store.
async fn publish_retained(topic: &str, payload: &[u8]) {
    let (host, port) = common::broker();
    let (client, mut event_loop) =
        AsyncClient::new(MqttOptions::new(unique_name("retainer"), host, port), 10);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload.to_vec())
        .await
        .expect("queue the retained publish");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(error) => panic!("publishing to {topic}: {error}"),
            }
        }
    })
    .await
    .expect("the broker acknowledges the retained message");
    client.disconnect().await.ok();
}

/// The topics a test left retained messages on; an empty retained payload clears each, also when
/// the test fails.
struct RetainedTopics(Vec<String>);

impl RetainedTopics {
    async fn publish(&mut self, topic: &str, payload: &Value) {
        publish_retained(topic, payload.to_string().as_bytes()).await;
        self.0.push(topic.to_string());
    }
}

impl Drop for RetainedTopics {
    fn drop(&mut self) {
        let topics = std::mem::take(&mut self.0);
        // A runtime of its own: drop cannot await, and the test's runtime may be single-threaded.
        let cleared = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                for topic in &topics {
                    publish_retained(topic, b"").await;
                }
            });
        })
        .join();
        if cleared.is_err() && !std::thread::panicking() {
            panic!("the retained messages could not be cleared");
        }
    }
}

/// A site of the service on the shared broker, its connection not started yet, with a readings
/// pattern `{prefix}/gw/{gateway}/dl/{datalogger}` and a status pattern
/// `{prefix}/gw/{gateway}/status`.
struct Site {
    service: Service,
    site_id: i64,
    prefix: String,
    retained: RetainedTopics,
    _database: TestDatabase,
}

impl Site {
    async fn new(jobs: &str, readings_parser: &str) -> Site {
        let database = TestDatabase::new().await;
        let service = Service::start_with(&database, options(&database, jobs));
        let (site_id, prefix) = create_site(&service, false).await;
        add_topic(
            &service,
            site_id,
            &format!("{prefix}/gw/{{gateway}}/dl/{{datalogger}}"),
            readings_parser,
        )
        .await;
        add_topic(
            &service,
            site_id,
            &format!("{prefix}/gw/{{gateway}}/status"),
            STATUS,
        )
        .await;
        Site {
            service,
            site_id,
            prefix,
            retained: RetainedTopics(Vec::new()),
            _database: database,
        }
    }

    fn readings_topic(&self, gateway: &str, datalogger: &str) -> String {
        format!("{}/gw/{gateway}/dl/{datalogger}", self.prefix)
    }

    fn status_topic(&self, gateway: &str) -> String {
        format!("{}/gw/{gateway}/status", self.prefix)
    }

    async fn set_active(&self, active: bool) {
        let response = self
            .service
            .client()
            .patch(
                self.service
                    .url(&format!("/api/mqtt/connection/{}/", self.site_id)),
            )
            .json(&json!({"is_active": active}))
            .send()
            .await
            .expect("patch the connection");
        assert_eq!(response.status(), 202);
    }

    async fn start(&self) {
        self.set_active(true).await;
        wait_for_status(
            &self.service,
            self.site_id,
            "connected",
            Duration::from_secs(15),
        )
        .await;
        wait_for_granted_via_api(&self.service, self.site_id).await;
    }

    /// Stops and starts the connection: subscribing again, it is handed every retained message
    /// of its filters once more.
    async fn restart(&self) {
        self.set_active(false).await;
        wait_for_status(
            &self.service,
            self.site_id,
            "stopped",
            Duration::from_secs(15),
        )
        .await;
        self.start().await;
    }

    async fn get(&self, path: &str) -> Value {
        self.service
            .client()
            .get(self.service.url(path))
            .send()
            .await
            .expect("GET")
            .error_for_status()
            .expect("GET succeeds")
            .json()
            .await
            .expect("JSON")
    }

    /// The gateway as `GET /api/sites/{id}/devices` shows it, with its dataloggers and sensors.
    async fn gateway(&self, identifier: &str) -> Option<Value> {
        let devices = self
            .get(&format!("/api/sites/{}/devices", self.site_id))
            .await;
        devices
            .as_array()?
            .iter()
            .find(|gateway| gateway["identifier"] == identifier)
            .cloned()
    }

    async fn device_events(&self) -> Vec<Value> {
        let events = self
            .get(&format!("/api/sites/{}/device-events", self.site_id))
            .await;
        events.as_array().cloned().unwrap_or_default()
    }

    /// How many messages arrived on `topic`. The counters are written with the pending latest
    /// state, so once a count shows, whatever its messages did to `last_seen` shows too.
    async fn message_count(&self, topic: &str) -> i64 {
        let topics = self
            .get(&format!(
                "/api/mqtt/discovered-topics?site_id={}",
                self.site_id
            ))
            .await;
        topics
            .as_array()
            .and_then(|topics| topics.iter().find(|row| row["topic"] == topic))
            .and_then(|row| row["message_count"].as_i64())
            .unwrap_or(0)
    }

    async fn wait_for_count(&self, topic: &str, count: i64) {
        eventually(
            Duration::from_secs(20),
            &format!("{count} message(s) counted on {topic}"),
            || async { (self.message_count(topic).await == count).then_some(()) },
        )
        .await;
    }

    async fn parsing_logs(&self) -> Vec<Value> {
        let logs = self
            .get(&format!(
                "/api/mqtt/parsing-logs?site_id={}&limit=100",
                self.site_id
            ))
            .await;
        logs.as_array().cloned().unwrap_or_default()
    }
}

fn datalogger<'a>(gateway: &'a Value, identifier: &str) -> Option<&'a Value> {
    gateway["dataloggers"]
        .as_array()?
        .iter()
        .find(|datalogger| datalogger["identifier"] == identifier)
}

fn sensor<'a>(gateway: &'a Value, datalogger_identifier: &str) -> Option<&'a Value> {
    datalogger(gateway, datalogger_identifier)?["sensors"]
        .as_array()?
        .iter()
        .find(|sensor| sensor["name"] == "temperature")
}

/// A time `hours` ago, to the second (as a payload's `ts` carries it).
fn hours_ago(hours: i64) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now().timestamp();
    chrono::DateTime::from_timestamp(now - hours * 3600, 0).expect("timestamp")
}

fn same_time(value: &Value, expected: chrono::DateTime<chrono::Utc>) -> bool {
    value
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .is_some_and(|time| time == expected)
}

fn reading(ts: chrono::DateTime<chrono::Utc>, value: f64) -> Value {
    json!({"ts": ts.to_rfc3339(), "sensors": [{"name": "temperature", "value": value, "unit": "°C"}]})
}

/// A gateway or datalogger as the API shows one known only from retained messages.
fn assert_not_seen_live(device: &Value, what: &str) {
    assert_eq!(device["is_online"], false, "{what} is not online: {device}");
    assert!(
        device["last_seen"].is_null(),
        "{what} has no last_seen: {device}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_message_creates_its_devices_not_seen_live_and_stores_its_reading() {
    // The offline job runs every second and finds a device silent after one: it must leave
    // devices that were never seen live alone.
    let mut site = Site::new(
        "[jobs]\noffline_after_secs = 1\noffline_check_cron = \"* * * * * *\"\n",
        READINGS,
    )
    .await;
    let old = hours_ago(3);
    let readings_topic = site.readings_topic("gw-a", "dl-a");
    let status_topic = site.status_topic("gw-s");
    site.retained
        .publish(&readings_topic, &reading(old, 1.5))
        .await;
    site.retained
        .publish(
            &status_topic,
            &json!({"status": "online", "firmware": "2.1"}),
        )
        .await;
    site.start().await;

    let gateway = eventually(
        Duration::from_secs(20),
        "the retained reading stored",
        || async {
            let gateway = site.gateway("gw-a").await?;
            (sensor(&gateway, "dl-a")?["last_value"] == 1.5).then_some(gateway)
        },
    )
    .await;
    let status_gateway = eventually(
        Duration::from_secs(20),
        "the retained status's metadata",
        || async {
            let gateway = site.gateway("gw-s").await?;
            (gateway["metadata"]["firmware"] == "2.1").then_some(gateway)
        },
    )
    .await;
    let logged = datalogger(&gateway, "dl-a").expect("the datalogger exists");
    let stored = sensor(&gateway, "dl-a").expect("the sensor exists");
    assert_not_seen_live(&gateway, "the gateway of a retained reading");
    assert_not_seen_live(logged, "the datalogger of a retained reading");
    assert_not_seen_live(&status_gateway, "a gateway of a retained online status");
    assert!(
        same_time(&stored["last_reading_at"], old),
        "the latest value is the retained reading's, at its own time: {stored}"
    );
    let readings = site
        .get(&format!("/api/sensors/{}/readings", stored["id"]))
        .await;
    let readings = readings.as_array().cloned().unwrap_or_default();
    assert_eq!(readings.len(), 1, "the reading is stored: {readings:?}");

    // Several runs of the offline job later, nothing went online or offline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = site.device_events().await;
    assert!(events.is_empty(), "no transition: {events:?}");
    let gateway = site.gateway("gw-a").await.expect("the gateway");
    assert_not_seen_live(&gateway, "the gateway, after the offline job");
    assert_not_seen_live(
        datalogger(&gateway, "dl-a").expect("the datalogger"),
        "the datalogger, after the offline job",
    );
    assert_not_seen_live(
        &site.gateway("gw-s").await.expect("the gateway"),
        "the status gateway, after the offline job",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_news_is_not_undone_by_the_retained_replay_of_a_restart() {
    let mut site = Site::new("", READINGS).await;
    let topic = site.readings_topic("gw-b", "dl-b");
    site.retained
        .publish(&topic, &reading(hours_ago(2), 1.0))
        .await;
    site.start().await;
    eventually(
        Duration::from_secs(20),
        "the retained reading stored",
        || async {
            let gateway = site.gateway("gw-b").await?;
            (sensor(&gateway, "dl-b")?["last_value"] == 1.0).then_some(())
        },
    )
    .await;

    let live_at = hours_ago(0);
    let publisher = Publisher::connect().await;
    publisher
        .publish(&topic, reading(live_at, 2.0).to_string())
        .await;
    let live = eventually(Duration::from_secs(20), "the live message", || async {
        let gateway = site.gateway("gw-b").await?;
        let logger = datalogger(&gateway, "dl-b")?;
        let seen = gateway["is_online"] == true
            && !gateway["last_seen"].is_null()
            && logger["is_online"] == true
            && !logger["last_seen"].is_null()
            && sensor(&gateway, "dl-b")?["last_value"] == 2.0;
        seen.then_some(gateway)
    })
    .await;
    site.wait_for_count(&topic, 2).await;
    let events = site.device_events().await;
    assert!(
        events.is_empty(),
        "a first live sighting is no transition, whatever retained messages said before: \
         {events:?}"
    );

    site.restart().await;
    site.wait_for_count(&topic, 3).await;
    common::wait_until_settled(&site.service).await;
    let after = site.gateway("gw-b").await.expect("the gateway");
    assert_eq!(after["is_online"], true, "{after}");
    assert_eq!(
        after["last_seen"], live["last_seen"],
        "the gateway's last_seen stays"
    );
    let logger = datalogger(&after, "dl-b").expect("the datalogger");
    assert_eq!(logger["is_online"], true, "{logger}");
    assert_eq!(
        logger["last_seen"],
        datalogger(&live, "dl-b").expect("the datalogger")["last_seen"],
        "the datalogger's last_seen stays"
    );
    let latest = sensor(&after, "dl-b").expect("the sensor");
    assert_eq!(latest["last_value"], 2.0, "{latest}");
    assert!(same_time(&latest["last_reading_at"], live_at), "{latest}");
    let events = site.device_events().await;
    assert!(events.is_empty(), "no transition: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_offline_status_does_not_take_a_live_gateway_offline() {
    let mut site = Site::new("", READINGS).await;
    let topic = site.status_topic("gw-c");
    site.retained
        .publish(&topic, &json!({"status": "offline", "firmware": "1.0"}))
        .await;
    site.start().await;
    let known = eventually(
        Duration::from_secs(20),
        "the retained status stored",
        || async {
            let gateway = site.gateway("gw-c").await?;
            (gateway["metadata"]["firmware"] == "1.0").then_some(gateway)
        },
    )
    .await;
    assert_not_seen_live(&known, "a gateway of a retained offline status");

    let publisher = Publisher::connect().await;
    publisher
        .publish(&topic, json!({"status": "online"}).to_string())
        .await;
    let live = eventually(Duration::from_secs(20), "the live status", || async {
        let gateway = site.gateway("gw-c").await?;
        (gateway["is_online"] == true && !gateway["last_seen"].is_null()).then_some(gateway)
    })
    .await;

    site.restart().await;
    site.wait_for_count(&topic, 3).await;
    common::wait_until_settled(&site.service).await;
    let after = site.gateway("gw-c").await.expect("the gateway");
    assert_eq!(after["is_online"], true, "still online: {after}");
    assert_eq!(after["last_seen"], live["last_seen"], "last_seen stays");
    assert_eq!(
        after["metadata"]["firmware"], "1.0",
        "a retained status's metadata is kept"
    );
    let events = site.device_events().await;
    assert!(events.is_empty(), "no transition: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_message_replayed_from_the_parsing_log_stays_old_news() {
    // The readings pattern names the wrong parser at first: every reading fails and is logged.
    let mut site = Site::new("", STATUS).await;
    let old_topic = site.readings_topic("gw-old", "dl-old");
    let live_topic = site.readings_topic("gw-live", "dl-live");
    let old = hours_ago(4);
    site.retained.publish(&old_topic, &reading(old, 4.0)).await;
    site.start().await;
    let publisher = Publisher::connect().await;
    publisher
        .publish(&live_topic, reading(hours_ago(0), 5.0).to_string())
        .await;
    let logs = eventually(Duration::from_secs(20), "two parsing-log rows", || async {
        let logs = site.parsing_logs().await;
        (logs.len() == 2).then_some(logs)
    })
    .await;
    let row = |topic: &str| {
        logs.iter()
            .find(|row| row["topic"] == topic)
            .cloned()
            .unwrap_or_else(|| panic!("a parsing-log row of {topic}: {logs:?}"))
    };
    let (old_row, live_row) = (row(&old_topic), row(&live_topic));
    assert_eq!(old_row["retained"], true, "{old_row}");
    assert_eq!(live_row["retained"], false, "{live_row}");

    // The pattern fixed, both rows are replayed.
    let topics = site
        .get(&format!("/api/mqtt/topics?site_id={}", site.site_id))
        .await;
    let pattern = format!("{}/gw/{{gateway}}/dl/{{datalogger}}", site.prefix);
    let pattern_id = topics
        .as_array()
        .and_then(|topics| {
            topics
                .iter()
                .find(|topic| topic["pattern"] == pattern.as_str())
        })
        .and_then(|topic| topic["id"].as_i64())
        .expect("the readings pattern");
    site.service
        .client()
        .patch(site.service.url(&format!("/api/mqtt/topics/{pattern_id}")))
        .json(&json!({"parser": READINGS}))
        .send()
        .await
        .expect("patch the pattern")
        .error_for_status()
        .expect("pattern fixed");
    for row in [&old_row, &live_row] {
        let outcome: Value = site
            .service
            .client()
            .post(
                site.service
                    .url(&format!("/api/mqtt/parsing-logs/{}/replay", row["id"])),
            )
            .send()
            .await
            .expect("replay")
            .json()
            .await
            .expect("replay json");
        assert_eq!(outcome["ok"], true, "{outcome}");
    }

    let replayed_old = site.gateway("gw-old").await.expect("the old gateway");
    assert_not_seen_live(&replayed_old, "the gateway of a replayed retained message");
    assert_not_seen_live(
        datalogger(&replayed_old, "dl-old").expect("the old datalogger"),
        "the datalogger of a replayed retained message",
    );
    let old_sensor = sensor(&replayed_old, "dl-old").expect("the old sensor");
    assert_eq!(old_sensor["last_value"], 4.0, "its reading is stored");
    let replayed_live = site.gateway("gw-live").await.expect("the live gateway");
    assert_eq!(replayed_live["is_online"], true, "{replayed_live}");
    assert!(
        same_time(
            &replayed_live["last_seen"],
            parse_time(&live_row["received_at"])
        ),
        "a replayed live message was seen when it arrived: {replayed_live} {live_row}"
    );
}

fn parse_time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("a time: {value}"))
}
