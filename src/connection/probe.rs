//! Trying a connection's settings without keeping anything: connect with a client id of its own
//! and a clean session (so the live session of the same connection is not taken over and the
//! broker keeps nothing), wait for the broker's answer, disconnect.

use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

use super::client::{Client, ClientEvent};
use super::settings::ConnectionSettings;

/// What the broker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub ok: bool,
    /// Why it failed: the refusal with its reason code, the TLS or network error, or the timeout.
    pub error: Option<String>,
    /// From the start of the attempt to the broker's CONNACK (or the failure).
    pub latency: Duration,
}

/// The client id a probe uses: the connection's own with a suffix, so brokers that authorise by
/// client id prefix still recognise it while the live session stays untouched.
pub fn probe_client_id(client_id: &str) -> String {
    let suffix: u32 = rand::random();
    format!("{client_id}-test-{suffix:08x}")
}

/// Connects once with `settings` (its client id replaced by a probe's, clean session) and
/// reports the broker's answer, giving up after `within`.
pub async fn probe(settings: &ConnectionSettings, within: Duration) -> ProbeOutcome {
    let started = Instant::now();
    let mut settings = settings.clone();
    settings.client_id = probe_client_id(&settings.client_id);
    settings.clean_session = true;
    settings.shards = 1;
    settings.last_will = None;
    let options = match settings.client_options(16) {
        Ok(options) => options,
        Err(error) => {
            return ProbeOutcome {
                ok: false,
                error: Some(error.to_string()),
                latency: started.elapsed(),
            }
        }
    };
    let mut client = Client::new(options, Gauge::default());
    let answer = tokio::time::timeout(within, async {
        loop {
            match client.next_event().await {
                Ok(ClientEvent::Connected { .. }) => return Ok(()),
                Ok(_) => continue,
                Err(failure) => return Err(failure.message),
            }
        }
    })
    .await;
    let latency = started.elapsed();
    let outcome = match answer {
        Ok(Ok(())) => ProbeOutcome {
            ok: true,
            error: None,
            latency,
        },
        Ok(Err(error)) => ProbeOutcome {
            ok: false,
            error: Some(error),
            latency,
        },
        Err(_) => ProbeOutcome {
            ok: false,
            error: Some(format!(
                "no answer from the broker within {} s",
                within.as_secs()
            )),
            latency,
        },
    };
    if outcome.ok {
        client.close().await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_never_uses_the_live_client_id() {
        let first = probe_client_id("mqtt-supervisor-north");
        assert!(first.starts_with("mqtt-supervisor-north-test-"));
        assert_ne!(first, "mqtt-supervisor-north");
    }
}
