//! The pure half of the pipeline: from one received message to what the writer must store.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::delivery::Ack;
use crate::parsers::{decode_payload, BytesInput, ParseInput, ParseOutput, Registry};
use crate::routing::RouteMatch;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub sample_bytes: usize,
}

#[derive(Debug)]
pub enum Outcome {
    /// No active pattern matches: only discovered.
    Unrouted,
    Parsed(ParseOutput),
    /// Kept whole in the parsing log for replay.
    Failed {
        error: String,
    },
}

/// One message, decided; the writer only stores it.
#[derive(Debug)]
pub struct Prepared {
    pub site_id: i32,
    pub topic: String,
    pub received_at: DateTime<Utc>,
    /// Replayed by the broker from its retained store: perhaps hours old, so it tells nothing of
    /// whether its devices are alive now (see `Arrival::retained`).
    pub retained: bool,
    /// The bytes as the client read them (shared, not copied); a copy is made only for the
    /// parsing log.
    pub payload: Bytes,
    /// The matched pattern's id and parser.
    pub route: Option<(i32, Arc<str>)>,
    pub outcome: Outcome,
    pub ack: Option<Ack>,
}

impl Prepared {
    pub fn is_processable(&self) -> bool {
        self.route.is_some()
    }

    pub fn parser(&self) -> Option<&str> {
        self.route.as_ref().map(|(_, parser)| &**parser)
    }
}

/// One message as it arrived from the broker.
#[derive(Debug)]
pub struct Arrival {
    pub site_id: i32,
    pub topic: String,
    pub payload: Bytes,
    /// MQTT 5 user properties; empty on 3.1.1 and in a replay (they are not stored).
    pub user_properties: Vec<(String, String)>,
    pub received_at: DateTime<Utc>,
    /// The broker delivered it with the retain flag: a message it kept and hands to every new
    /// subscription, not one published just now. Its readings are stored, but it never moves a
    /// device's `last_seen` or `is_online`. A parsing-log row remembers the flag for its replay.
    pub retained: bool,
}

/// A message's parts as a parser needs them, before its payload is decoded.
#[derive(Debug, Clone, Copy)]
pub struct RawMessage<'a> {
    pub topic: &'a str,
    pub captures: &'a std::collections::BTreeMap<String, String>,
    pub payload: &'a [u8],
    pub user_properties: &'a [(String, String)],
    pub received_at: DateTime<Utc>,
}

/// `matched` is the topic's route, from `Router::route` or a `RouteCache`.
pub fn prepare(
    arrival: Arrival,
    matched: Option<&RouteMatch>,
    registry: &Arc<Registry>,
    limits: &Limits,
) -> Prepared {
    let Arrival {
        site_id,
        topic,
        payload,
        user_properties,
        received_at,
        retained,
    } = arrival;
    let (route, outcome) = match matched {
        None => (None, Outcome::Unrouted),
        Some(matched) => {
            let outcome = parse_payload(
                registry,
                &matched.parser,
                &RawMessage {
                    topic: &topic,
                    captures: &matched.captures,
                    payload: &payload,
                    user_properties: &user_properties,
                    received_at,
                },
                limits.max_payload_bytes,
            );
            (Some((matched.topic_id, matched.parser.clone())), outcome)
        }
    };
    Prepared {
        site_id,
        topic,
        received_at,
        retained,
        payload,
        route,
        outcome,
        ack: None,
    }
}

/// Decode and parse with one named parser; shared by ingestion, replay and the test endpoint.
pub fn parse_payload(
    registry: &Registry,
    parser: &str,
    message: &RawMessage<'_>,
    max_payload_bytes: usize,
) -> Outcome {
    let RawMessage {
        topic,
        captures,
        payload,
        user_properties,
        received_at,
    } = *message;
    let Some(parser) = registry.get(parser) else {
        return Outcome::Failed {
            error: format!("unknown parser '{parser}': add it to the parsers folder or change the topic pattern"),
        };
    };
    if payload.len() <= max_payload_bytes {
        let input = BytesInput {
            captures,
            payload,
            received_at,
        };
        if let Some(output) = parser.parse_fast(&input) {
            return Outcome::Parsed(output);
        }
    }
    let value = match decode_payload(payload, max_payload_bytes) {
        Ok(value) => value,
        Err(error) => {
            return Outcome::Failed {
                error: error.to_string(),
            }
        }
    };
    let input = ParseInput {
        topic,
        captures,
        payload: &value,
        user_properties,
        received_at,
    };
    match parser.parse(&input) {
        Ok(output) => Outcome::Parsed(output),
        Err(error) => Outcome::Failed {
            error: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{SiteRoutes, TopicSpec};

    fn spec(id: i32, pattern: &str, parser: &str) -> TopicSpec {
        TopicSpec {
            id,
            pattern: pattern.into(),
            parser: parser.into(),
            qos: 1,
            priority: 0,
            is_active: true,
        }
    }

    const LIMITS: Limits = Limits {
        max_payload_bytes: 1024,
        sample_bytes: 16,
    };

    fn prepared(routes: &SiteRoutes, topic: &str, payload: Vec<u8>) -> Prepared {
        prepare(
            Arrival {
                site_id: 1,
                topic: topic.into(),
                payload: payload.into(),
                user_properties: Vec::new(),
                received_at: Utc::now(),
                retained: false,
            },
            routes.router.route(topic).as_ref(),
            &Arc::new(Registry::builtin()),
            &LIMITS,
        )
    }

    #[test]
    fn routed_payload_is_parsed() {
        let routes = SiteRoutes::build(
            &[spec(
                1,
                "bfg/gateway/{gateway}/datalogger/{datalogger}",
                "datalogger_readings_v1",
            )],
            None,
        );
        let prepared = prepared(
            &routes,
            "bfg/gateway/gw1/datalogger/dl1",
            br#"{"sensors":[{"name":"t","value":1.5,"unit":"C"}]}"#.to_vec(),
        );
        assert_eq!(prepared.route, Some((1, "datalogger_readings_v1".into())));
        let Outcome::Parsed(output) = prepared.outcome else {
            panic!("expected parsed, got {:?}", prepared.outcome)
        };
        assert_eq!(output.dataloggers[0].gateway, "gw1");
        assert_eq!(output.dataloggers[0].identifier, "dl1");
    }

    #[test]
    fn unmatched_topic_is_only_discovered() {
        let routes = SiteRoutes::build(&[spec(1, "a/#", "flat_telemetry")], None);
        let prepared = prepared(&routes, "b/c", b"{}".to_vec());
        assert!(matches!(prepared.outcome, Outcome::Unrouted));
        assert!(!prepared.is_processable());
    }

    #[test]
    fn bad_payload_fails_with_reason() {
        let routes = SiteRoutes::build(&[spec(1, "a/{datalogger}", "flat_telemetry")], None);
        for payload in [&b""[..], b"\xff\xfe", b"not json", b"[1,2]"] {
            let prepared = prepared(&routes, "a/x", payload.to_vec());
            assert!(
                matches!(prepared.outcome, Outcome::Failed { .. }),
                "{payload:?}"
            );
        }
        let huge = vec![b' '; 2048];
        let prepared = prepared(&routes, "a/x", huge);
        assert!(matches!(prepared.outcome, Outcome::Failed { .. }));
    }

    #[test]
    fn unknown_parser_is_a_failure_not_a_panic() {
        let routes = SiteRoutes::build(&[spec(1, "a/#", "gone_v9")], None);
        let prepared = prepared(&routes, "a/x", b"{}".to_vec());
        match prepared.outcome {
            Outcome::Failed { error } => assert!(error.contains("gone_v9")),
            other => panic!("{other:?}"),
        }
    }
}
