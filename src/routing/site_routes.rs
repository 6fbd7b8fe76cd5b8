//! A site's topic patterns as a client needs them: the filters to subscribe to (every pattern)
//! and the router that picks a pattern for each topic (the active ones).

use super::pattern::TopicPattern;
use super::router::{Route, Router};
use crate::entity::mqtt_topic;

/// A topic pattern as the client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub id: i32,
    pub pattern: String,
    pub parser: String,
    pub qos: u8,
    pub priority: i32,
    /// Inactive patterns are still subscribed, so their topics are discovered, but not parsed.
    pub is_active: bool,
}

impl From<mqtt_topic::Model> for TopicSpec {
    fn from(topic: mqtt_topic::Model) -> TopicSpec {
        TopicSpec {
            id: topic.id,
            pattern: topic.pattern,
            parser: topic.parser,
            qos: u8::try_from(topic.qos.clamp(0, 2)).unwrap_or(1),
            priority: topic.priority,
            is_active: topic.is_active,
        }
    }
}

/// A site's patterns, ready for subscribing (all of them) and matching (the active ones).
#[derive(Debug, Default)]
pub struct SiteRoutes {
    pub router: Router,
    /// Subscription filters with the highest QoS any pattern asks for on that filter.
    pub filters: Vec<(String, u8)>,
    /// Patterns in the database that do not parse; skipped, reported once per change.
    pub invalid: Vec<(i32, String)>,
}

/// QoS of the discovery filter's subscription: what it finds is stored like any message.
const DISCOVERY_QOS: u8 = 1;

impl SiteRoutes {
    /// The routes of `topics`; `discovery_filter` is subscribed as well (routing nothing), so
    /// topics no pattern matches are discovered.
    pub fn build(topics: &[TopicSpec], discovery_filter: Option<&str>) -> SiteRoutes {
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
        if let Some(discovery) = discovery_filter {
            match TopicPattern::parse(discovery) {
                Ok(pattern) => {
                    let filter = pattern.subscription_filter();
                    if !filters.iter().any(|(existing, _)| *existing == filter) {
                        filters.push((filter, DISCOVERY_QOS));
                    }
                }
                // Id 0: no pattern row; the API refuses such a filter, only a hand-edited row
                // gets here.
                Err(error) => invalid.push((0, format!("discovery filter {discovery}: {error}"))),
            }
        }
        SiteRoutes {
            router: Router::new(routes),
            filters,
            invalid,
        }
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

    #[test]
    fn invalid_stored_patterns_are_skipped_and_filters_deduplicated() {
        let routes = SiteRoutes::build(
            &[
                spec(1, "a/{x}", "flat_telemetry"),
                spec(2, "a/+", "flat_telemetry"),
                spec(3, "a/#/b", "flat_telemetry"),
            ],
            None,
        );
        assert_eq!(routes.filters, vec![("a/+".to_string(), 1)]);
        assert_eq!(routes.invalid.len(), 1);
    }

    #[test]
    fn inactive_patterns_subscribe_but_do_not_route() {
        let mut inactive = spec(1, "a/#", "flat_telemetry");
        inactive.is_active = false;
        let routes = SiteRoutes::build(&[inactive], None);
        assert_eq!(routes.filters, vec![("a/#".to_string(), 1)]);
        assert!(routes.router.route("a/b").is_none());
    }

    #[test]
    fn the_discovery_filter_is_subscribed_but_routes_nothing() {
        let routes = SiteRoutes::build(
            &[spec(1, "plant/{gateway}/data", "flat_telemetry")],
            Some("plant/#"),
        );
        assert_eq!(
            routes.filters,
            vec![("plant/+/data".to_string(), 1), ("plant/#".to_string(), 1)]
        );
        assert!(routes.router.route("plant/x/other").is_none());
        assert!(routes.router.route("plant/x/data").is_some());
        let same = SiteRoutes::build(&[spec(1, "a/#", "flat_telemetry")], Some("a/#"));
        assert_eq!(same.filters.len(), 1);
        let broken = SiteRoutes::build(&[], Some("a/#/b"));
        assert!(broken.filters.is_empty());
        assert_eq!(broken.invalid.len(), 1);
    }
}
