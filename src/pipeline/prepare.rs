//! The pure half of the pipeline: from one received message to what the writer must store.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::route::{Route, RouteMatch, Router, TopicPattern};
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

/// Topics remembered by a `RouteCache`, and the bytes of their names, before it starts afresh:
/// a flood of unique topics must not grow it without end.
const ROUTE_CACHE_TOPICS: usize = 4096;
const ROUTE_CACHE_BYTES: usize = 1 << 20;

/// Route matches of recent topics. Devices publish to the same topics over and over, so a topic
/// is matched against the trie (and its captures copied out) once, and then found with one hash
/// lookup. Belongs to one `Router`: clear it when the routes change.
#[derive(Debug, Default)]
pub struct RouteCache {
    matches: foldhash::HashMap<Box<str>, Option<Arc<RouteMatch>>>,
    topic_bytes: usize,
}

impl RouteCache {
    /// The best route for `topic`, as `router.route` finds it.
    pub fn route(&mut self, router: &Router, topic: &str) -> Option<Arc<RouteMatch>> {
        if let Some(known) = self.matches.get(topic) {
            return known.clone();
        }
        let matched = router.route(topic).map(Arc::new);
        if self.matches.len() >= ROUTE_CACHE_TOPICS
            || self.topic_bytes + topic.len() > ROUTE_CACHE_BYTES
        {
            self.clear();
        }
        self.topic_bytes += topic.len();
        self.matches.insert(topic.into(), matched.clone());
        matched
    }

    pub fn clear(&mut self) {
        self.matches.clear();
        self.topic_bytes = 0;
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

/// `matched` is the topic's route, from `Router::route` or a `RouteCache`.
pub fn prepare(
    site_id: i32,
    topic: String,
    payload: Bytes,
    received_at: DateTime<Utc>,
    matched: Option<&RouteMatch>,
    registry: &Arc<Registry>,
    limits: &Limits,
) -> Prepared {
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
            (Some((matched.topic_id, matched.parser.clone())), outcome)
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

    fn prepared(routes: &SiteRoutes, topic: &str, payload: Vec<u8>) -> Prepared {
        prepare(
            1,
            topic.into(),
            payload.into(),
            Utc::now(),
            routes.router.route(topic).as_ref(),
            &Arc::new(Registry::builtin()),
            &LIMITS,
        )
    }

    #[test]
    fn routed_payload_is_parsed() {
        let routes = SiteRoutes::build(&[spec(
            1,
            "bfg/gateway/{gateway}/datalogger/{datalogger}",
            "datalogger_readings_v1",
        )]);
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
        let routes = SiteRoutes::build(&[spec(1, "a/#", "flat_telemetry")]);
        let prepared = prepared(&routes, "b/c", b"{}".to_vec());
        assert!(matches!(prepared.outcome, Outcome::Unrouted));
        assert!(!prepared.is_processable());
    }

    #[test]
    fn bad_payload_fails_with_reason() {
        let routes = SiteRoutes::build(&[spec(1, "a/{datalogger}", "flat_telemetry")]);
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
        let routes = SiteRoutes::build(&[spec(1, "a/#", "gone_v9")]);
        let prepared = prepared(&routes, "a/x", b"{}".to_vec());
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

    #[test]
    fn the_route_cache_answers_as_the_router_does() {
        let routes = SiteRoutes::build(&[
            spec(1, "a/{gateway}/+", "flat_telemetry"),
            spec(2, "a/x/#", "flat_telemetry"),
        ]);
        let mut cache = RouteCache::default();
        for topic in ["a/g/1", "a/x/1", "a/x/1/2", "b/c", "a/g/1", "b/c", "$SYS/a"] {
            let expected = routes.router.route(topic);
            assert_eq!(
                cache.route(&routes.router, topic).as_deref(),
                expected.as_ref()
            );
            // The second answer comes from the cache.
            assert_eq!(
                cache.route(&routes.router, topic).as_deref(),
                expected.as_ref()
            );
        }
        assert_eq!(cache.matches.len(), 5);
    }

    #[test]
    fn the_route_cache_starts_afresh_when_full() {
        let routes = SiteRoutes::build(&[spec(1, "a/{x}", "flat_telemetry")]);
        let mut cache = RouteCache::default();
        for n in 0..ROUTE_CACHE_TOPICS + 10 {
            let topic = format!("a/{n}");
            let matched = cache.route(&routes.router, &topic).expect("matches");
            assert_eq!(matched.captures["x"], n.to_string());
        }
        assert_eq!(cache.matches.len(), 10);
        let long = format!("a/{}", "x".repeat(ROUTE_CACHE_BYTES / 2));
        cache.route(&routes.router, &long);
        cache.route(&routes.router, &format!("{long}y"));
        assert!(cache.topic_bytes <= ROUTE_CACHE_BYTES);
        assert_eq!(cache.matches.len(), 1);
    }
}
