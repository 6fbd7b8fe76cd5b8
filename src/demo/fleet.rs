//! A simulated fleet: gateways with dataloggers publishing readings, status and now and then a bad
//! payload, and a relay controller that obeys `set_relay` commands, so every part of the Devices
//! page has something to show.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct FleetShape {
    pub gateways: usize,
    pub dataloggers_per_gateway: usize,
    pub interval: Duration,
}

/// One step of a bounded random walk: values drift like real sensors instead of jumping.
pub fn drift(value: f64, step: f64, low: f64, high: f64, random: f64) -> f64 {
    (value + (random * 2.0 - 1.0) * step).clamp(low, high)
}

/// The payloads a faulty device might send, cycled through by the simulator.
pub fn bad_payload(sequence: u64) -> Vec<u8> {
    match sequence % 4 {
        0 => b"{\"sensors\": [{\"name\": \"temperature\", \"value\": \"warm\"}]}".to_vec(),
        1 => b"{truncated".to_vec(),
        2 => vec![0xff, 0xfe, 0x00, 0x01],
        _ => b"{\"ts\": \"yesterday\", \"sensors\": []}".to_vec(),
    }
}

/// Every this many rounds the last gateway of a fleet of several reports itself offline for one
/// round (a reboot), so the device history has transitions to show.
const REBOOT_EVERY_ROUNDS: u64 = 20;

/// The status a gateway (1-based) reports in a round of the simulation.
pub fn gateway_status(gateway: usize, gateways: usize, round: u64) -> &'static str {
    let reboots = gateways > 1 && gateway == gateways;
    if reboots && round % REBOOT_EVERY_ROUNDS == REBOOT_EVERY_ROUNDS / 2 {
        "offline"
    } else {
        "online"
    }
}

/// Where the simulated relay controller takes commands, and where it reports its relays.
const RELAY_COMMANDS: &str = "relayctl/+/relay/+/set";
const RELAY: &str = "relayctl/ctl-1/relay/1";

/// A relay command's new state: `{"state": "on"|"off"}` on `relayctl/{gateway}/relay/{n}/set`.
/// Returns the relay's state topic and its new state.
pub fn relay_command(topic: &str, payload: &[u8]) -> Option<(String, &'static str)> {
    let relay = topic.strip_suffix("/set")?;
    let command: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let state = match command.get("state")?.as_str()? {
        "on" => "on",
        "off" => "off",
        _ => return None,
    };
    Some((relay.to_owned(), state))
}

pub async fn run(port: u16, shape: FleetShape, cancel: CancellationToken) {
    let mut options = MqttOptions::new("demo-fleet-simulator", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(200);
    let (client, mut event_loop) = AsyncClient::new(options, 1000);
    // The relays' states: switched by commands, reported every round and at once when switched.
    let relays: Arc<Mutex<BTreeMap<String, &'static str>>> =
        Arc::new(Mutex::new(BTreeMap::from([(RELAY.to_owned(), "off")])));
    let poller = {
        let client = client.clone();
        let relays = relays.clone();
        tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.try_subscribe(RELAY_COMMANDS, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if let Some((relay, state)) =
                            relay_command(&publish.topic, &publish.payload)
                        {
                            relays
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner())
                                .insert(relay.clone(), state);
                            // Not awaited: this loop is what drives the client's queue.
                            let _ = client.try_publish(
                                relay,
                                QoS::AtLeastOnce,
                                false,
                                json!({"state": state}).to_string(),
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        })
    };
    let dataloggers = shape.gateways * shape.dataloggers_per_gateway;
    let mut temperatures: Vec<f64> = (0..dataloggers)
        .map(|index| 18.0 + (index % 7) as f64)
        .collect();
    let mut humidities: Vec<f64> = (0..dataloggers)
        .map(|index| 45.0 + (index % 11) as f64)
        .collect();
    let mut batteries: Vec<f64> = vec![3.9; dataloggers];
    let step = shape.interval / dataloggers.max(1) as u32;
    let mut sequence: u64 = 0;
    'outer: loop {
        for index in 0..dataloggers {
            if cancel.is_cancelled() {
                break 'outer;
            }
            let gateway = format!("gw-{}", index / shape.dataloggers_per_gateway + 1);
            let datalogger = format!("dl-{:02}", index % shape.dataloggers_per_gateway + 1);
            let (temperature, humidity, battery) = {
                let mut random = rand::rng();
                temperatures[index] = drift(temperatures[index], 0.4, -10.0, 45.0, random.random());
                humidities[index] = drift(humidities[index], 1.5, 5.0, 99.0, random.random());
                batteries[index] = drift(batteries[index], 0.01, 3.3, 4.2, random.random());
                (temperatures[index], humidities[index], batteries[index])
            };
            let payload = json!({
                "ts": Utc::now().to_rfc3339(),
                "sensors": [
                    {"name": "temperature", "value": (temperature * 10.0).round() / 10.0, "unit": "°C"},
                    {"name": "humidity", "value": humidity.round(), "unit": "%"},
                    {"name": "battery", "value": (battery * 100.0).round() / 100.0, "unit": "V"},
                ]
            });
            let topic = format!("demo/gateway/{gateway}/datalogger/{datalogger}");
            let _ = client
                .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
                .await;
            tokio::select! {
                _ = cancel.cancelled() => break 'outer,
                _ = tokio::time::sleep(step) => {}
            }
        }
        sequence += 1;
        for gateway in 1..=shape.gateways {
            let status = json!({
                "status": gateway_status(gateway, shape.gateways, sequence),
                "ip": format!("10.0.0.{gateway}"),
                "firmware": "2.4.1",
                "uptime": sequence * shape.interval.as_secs().max(1),
            });
            let _ = client
                .publish(
                    format!("demo/gateway/gw-{gateway}/status"),
                    QoS::AtLeastOnce,
                    false,
                    status.to_string(),
                )
                .await;
        }
        let telemetry =
            json!({"flow_rate": 12.0 + (sequence % 5) as f64, "pressure": 2.1, "pump_on": 1});
        let _ = client
            .publish(
                "demo/telemetry/gw-1/pump-station",
                QoS::AtLeastOnce,
                false,
                telemetry.to_string(),
            )
            .await;
        let states: Vec<(String, &'static str)> = relays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(relay, state)| (relay.clone(), *state))
            .collect();
        for (relay, state) in states {
            let _ = client
                .publish(
                    relay,
                    QoS::AtLeastOnce,
                    false,
                    json!({"state": state}).to_string(),
                )
                .await;
        }
        if sequence.is_multiple_of(5) {
            let _ = client
                .publish(
                    "demo/gateway/gw-1/datalogger/dl-01",
                    QoS::AtLeastOnce,
                    false,
                    bad_payload(sequence / 5),
                )
                .await;
            let _ = client
                .publish(
                    format!("demo/unmapped/sensor-{}", sequence % 3),
                    QoS::AtLeastOnce,
                    false,
                    "{\"raw\": 1}",
                )
                .await;
        }
    }
    let _ = client.disconnect().await;
    poller.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_stays_in_bounds() {
        let mut value = 20.0;
        for step in 0..1000 {
            value = drift(value, 5.0, 0.0, 30.0, (step % 10) as f64 / 10.0);
            assert!((0.0..=30.0).contains(&value));
        }
    }

    #[test]
    fn only_the_last_of_several_gateways_reboots_one_round_in_twenty() {
        let offline = |gateway, gateways| {
            (0..40)
                .filter(|round| gateway_status(gateway, gateways, *round) == "offline")
                .count()
        };
        assert_eq!(offline(3, 3), 2);
        assert_eq!(offline(1, 3), 0);
        assert_eq!(offline(1, 1), 0, "a lone gateway stays up");
    }

    #[test]
    fn the_relay_obeys_on_and_off_only() {
        assert_eq!(
            relay_command("relayctl/ctl-1/relay/1/set", br#"{"state": "on"}"#),
            Some(("relayctl/ctl-1/relay/1".to_owned(), "on"))
        );
        assert_eq!(
            relay_command("relayctl/ctl-1/relay/1", br#"{"state": "on"}"#),
            None
        );
        assert_eq!(
            relay_command("relayctl/ctl-1/relay/1/set", br#"{"state": "dim"}"#),
            None
        );
        assert_eq!(relay_command("relayctl/ctl-1/relay/1/set", b"on"), None);
    }

    #[test]
    fn bad_payloads_are_really_bad() {
        let registry = crate::parsers::Registry::builtin();
        let parser = registry.get("datalogger_readings_v1").expect("built-in");
        for sequence in 0..4 {
            let payload = bad_payload(sequence);
            let decoded = crate::parsers::decode_payload(&payload, 1024);
            let parsed = decoded.map(|value| {
                let captures = std::collections::BTreeMap::from([
                    ("gateway".to_string(), "gw".to_string()),
                    ("datalogger".to_string(), "dl".to_string()),
                ]);
                parser
                    .parse(&crate::parsers::ParseInput {
                        topic: "t",
                        captures: &captures,
                        payload: &value,
                        user_properties: &[],
                        received_at: Utc::now(),
                    })
                    .is_ok()
            });
            assert!(!matches!(parsed, Ok(true)), "payload {sequence} parsed");
        }
    }
}
