//! The pure half of the pipeline: from one received message to what the writer must store.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::route::{Route, Router, TopicPattern};
use crate::connection::Ack;
use crate::parsers::{decode_payload, BytesInput, ParseInput, ParseOutput, Registry};
use crate::supervisor::TopicSpec;

/// A site's patterns, ready for subscribing (all of them) and matching (the active ones).
#[derive(Debug, Default)]
pub struct SiteRoutes {
    pub router: Router,
    /// Subscription filters with the highest QoS any pattern asks for on that filter.
    pub filters: Vec<(String, u8)>,
    /// Patterns in the database that do not parse; skipped, reported once per change.
    pub invalid: Vec<(i32, String)>,
}

impl SiteRoutes {
    pub fn build(topics: &[TopicSpec]) -> SiteRoutes {
        let mut routes = Vec::new();
        let mut filters: Vec<(String, u8)> = Vec::new();
        let mut invalid = Vec::new();
        for topic in topics {
            match TopicPattern::parse(&topic.pattern) {
                Ok(pattern) => {
                    let filter = pattern.subscription_filter();
                    match filters.iter_mut().find(|(existing, _)| *existing == filter) {
                        Some((_, qos)) => *qos = (*qos).max(topic.qos),
                        None => filters.push((filter, topic.qos.min(2))),
                    }
                    if topic.is_active {
                        routes.push(Route {
                            topic_id: topic.id,
                            pattern,
                            parser: topic.parser.as_str().into(),
                            priority: topic.priority,
                        });
                    }
                }
                Err(error) => invalid.push((topic.id, format!("{}: {error}", topic.pattern))),
            }
        }
        SiteRoutes {
            router: Router::new(routes),
            filters,
            invalid,
        }
    }
}

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
    pub payload: Vec<u8>,
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

pub fn prepare(
    site_id: i32,
    topic: String,
    payload: Vec<u8>,
    received_at: DateTime<Utc>,
    routes: &SiteRoutes,
    registry: &Arc<Registry>,
    limits: &Limits,
) -> Prepared {
    let matched = routes.router.route(&topic);
    let (route, outcome) = match matched {
        None => (None, Outcome::Unrouted),
        Some(matched) => {
            let outcome = parse_payload(
                registry,
                &matched.parser,
                &topic,
                &matched.captures,
                &payload,
                received_at,
                limits.max_payload_bytes,
            );
            (Some((matched.topic_id, matched.parser)), outcome)
        }
    };
    Prepared {
        site_id,
        topic,
        received_at,
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
    topic: &str,
    captures: &std::collections::BTreeMap<String, String>,
    payload: &[u8],
    received_at: DateTime<Utc>,
    max_payload_bytes: usize,
) -> Outcome {
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

    #[test]
    fn routed_payload_is_parsed() {
        let routes = SiteRoutes::build(&[spec(
            1,
            "bfg/gateway/{gateway}/datalogger/{datalogger}",
            "datalogger_readings_v1",
        )]);
        let registry = Arc::new(Registry::builtin());
        let prepared = prepare(
            1,
            "bfg/gateway/gw1/datalogger/dl1".into(),
            br#"{"sensors":[{"name":"t","value":1.5,"unit":"C"}]}"#.to_vec(),
            Utc::now(),
            &routes,
            &registry,
            &LIMITS,
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
        let routes = SiteRoutes::build(&[spec(1, "a/#", "flat_telemetry")]);
        let registry = Arc::new(Registry::builtin());
        let prepared = prepare(
            1,
            "b/c".into(),
            b"{}".to_vec(),
            Utc::now(),
            &routes,
            &registry,
            &LIMITS,
        );
        assert!(matches!(prepared.outcome, Outcome::Unrouted));
        assert!(!prepared.is_processable());
    }

    #[test]
    fn bad_payload_fails_with_reason() {
        let routes = SiteRoutes::build(&[spec(1, "a/{datalogger}", "flat_telemetry")]);
        let registry = Arc::new(Registry::builtin());
        for payload in [&b""[..], b"\xff\xfe", b"not json", b"[1,2]"] {
            let prepared = prepare(
                1,
                "a/x".into(),
                payload.to_vec(),
                Utc::now(),
                &routes,
                &registry,
                &LIMITS,
            );
            assert!(
                matches!(prepared.outcome, Outcome::Failed { .. }),
                "{payload:?}"
            );
        }
        let huge = vec![b' '; 2048];
        let prepared = prepare(
            1,
            "a/x".into(),
            huge,
            Utc::now(),
            &routes,
            &registry,
            &LIMITS,
        );
        assert!(matches!(prepared.outcome, Outcome::Failed { .. }));
    }

    #[test]
    fn unknown_parser_is_a_failure_not_a_panic() {
        let routes = SiteRoutes::build(&[spec(1, "a/#", "gone_v9")]);
        let registry = Arc::new(Registry::builtin());
        let prepared = prepare(
            1,
            "a/x".into(),
            b"{}".to_vec(),
            Utc::now(),
            &routes,
            &registry,
            &LIMITS,
        );
        match prepared.outcome {
            Outcome::Failed { error } => assert!(error.contains("gone_v9")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_stored_patterns_are_skipped_and_filters_deduplicated() {
        let routes = SiteRoutes::build(&[
            spec(1, "a/{x}", "flat_telemetry"),
            spec(2, "a/+", "flat_telemetry"),
            spec(3, "a/#/b", "flat_telemetry"),
        ]);
        assert_eq!(routes.filters, vec![("a/+".to_string(), 1)]);
        assert_eq!(routes.invalid.len(), 1);
    }

    #[test]
    fn inactive_patterns_subscribe_but_do_not_route() {
        let mut inactive = spec(1, "a/#", "flat_telemetry");
        inactive.is_active = false;
        let routes = SiteRoutes::build(&[inactive]);
        assert_eq!(routes.filters, vec![("a/#".to_string(), 1)]);
        assert!(routes.router.route("a/b").is_none());
    }
}
