//! Route matches of recent topics, so a topic seen before is routed with one hash lookup.

use std::sync::Arc;

use super::router::{RouteMatch, Router};

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

    #[test]
    fn the_route_cache_answers_as_the_router_does() {
        let routes = SiteRoutes::build(
            &[
                spec(1, "a/{gateway}/+", "flat_telemetry"),
                spec(2, "a/x/#", "flat_telemetry"),
            ],
            None,
        );
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
        let routes = SiteRoutes::build(&[spec(1, "a/{x}", "flat_telemetry")], None);
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
