//! The router: a trie over topic levels built from a site's active patterns, which finds the best
//! pattern for a topic without scanning every pattern per message.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::pattern::{is_valid_topic, Level, TopicPattern};

#[derive(Debug, Clone)]
pub struct Route {
    pub topic_id: i32,
    pub pattern: TopicPattern,
    /// Shared with every message it matches: a count bump instead of a copy per message.
    pub parser: Arc<str>,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub topic_id: i32,
    pub parser: Arc<str>,
    pub captures: BTreeMap<String, String>,
}

/// Trie nodes live in one arena addressed by index: patterns may be tens of thousands of levels
/// deep, and a tree of boxes would overflow the stack when dropped, cloned or printed.
#[derive(Debug, Clone, Default)]
struct Node {
    literals: HashMap<String, usize>,
    /// Shared by '+' and every `{name}`: they match alike, and names are read from the winner.
    single: Option<usize>,
    /// The best route whose pattern ends at this node.
    end: Option<usize>,
    /// The best route whose pattern continues with '#' from this node.
    multi: Option<usize>,
}

/// A trie over topic levels built from a site's active routes. Matching walks the trie (literal
/// child, '+'/capture child, '#' child) and does not scan every pattern per message.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    nodes: Vec<Node>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        let mut nodes = vec![Node::default()];
        for idx in 0..routes.len() {
            insert(&mut nodes, &routes, idx);
        }
        Router { routes, nodes }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The best route for a topic: highest priority, then fewest wildcards, then lowest topic_id,
    /// then the earliest given, so the answer never depends on hashing or insertion accidents.
    pub fn route(&self, topic: &str) -> Option<RouteMatch> {
        if !is_valid_topic(topic) {
            return None;
        }
        let levels: Vec<&str> = topic.split('/').collect();
        let best = self.best_match(&levels, &mut 0)?;
        let route = &self.routes[best];
        Some(RouteMatch {
            topic_id: route.topic_id,
            parser: route.parser.clone(),
            captures: route.pattern.captures_from(&levels),
        })
    }

    /// One `(filter, topic_id)` per route, in the order the routes were given.
    pub fn subscription_filters(&self) -> Vec<(String, i32)> {
        self.routes
            .iter()
            .map(|r| (r.pattern.subscription_filter(), r.topic_id))
            .collect()
    }

    /// `visits` counts trie nodes entered, so tests can prove the walk stays narrow.
    fn best_match(&self, levels: &[&str], visits: &mut usize) -> Option<usize> {
        if self.nodes.is_empty() {
            // A derived Default router has no root node.
            return None;
        }
        let dollar = levels.first().is_some_and(|l| l.starts_with('$'));
        let mut best: Option<usize> = None;
        // An explicit stack, not recursion: topics may be tens of thousands of levels deep.
        // Every node sits at one fixed depth, so each is entered at most once per walk.
        let mut stack = vec![(0usize, 0usize)];
        while let Some((n, depth)) = stack.pop() {
            *visits += 1;
            let node = &self.nodes[n];
            let wildcards_allowed = !(depth == 0 && dollar);
            if wildcards_allowed {
                if let Some(r) = node.multi {
                    best = Some(self.better(best, r));
                }
            }
            match levels.get(depth) {
                None => {
                    if let Some(r) = node.end {
                        best = Some(self.better(best, r));
                    }
                }
                Some(level) => {
                    if let Some(&child) = node.literals.get(*level) {
                        stack.push((child, depth + 1));
                    }
                    if wildcards_allowed {
                        if let Some(child) = node.single {
                            stack.push((child, depth + 1));
                        }
                    }
                }
            }
        }
        best
    }

    fn better(&self, current: Option<usize>, candidate: usize) -> usize {
        pick(&self.routes, current, candidate)
    }
}

fn rank(routes: &[Route], idx: usize) -> (Reverse<i32>, usize, i32, usize) {
    let r = &routes[idx];
    (
        Reverse(r.priority),
        r.pattern.wildcard_count(),
        r.topic_id,
        idx,
    )
}

fn pick(routes: &[Route], current: Option<usize>, candidate: usize) -> usize {
    match current {
        Some(cur) if rank(routes, cur) <= rank(routes, candidate) => cur,
        _ => candidate,
    }
}

fn insert(nodes: &mut Vec<Node>, routes: &[Route], idx: usize) {
    let mut node = 0;
    for level in &routes[idx].pattern.levels {
        node = match level {
            Level::Multi => {
                // Only the best route per slot is kept: ranking does not depend on the topic, so
                // a loser here could never win a match later.
                let slot = nodes[node].multi;
                nodes[node].multi = Some(pick(routes, slot, idx));
                return;
            }
            Level::Literal(lit) => match nodes[node].literals.get(lit.as_str()) {
                Some(&child) => child,
                None => {
                    let child = push_node(nodes);
                    nodes[node].literals.insert(lit.clone(), child);
                    child
                }
            },
            Level::Single | Level::Capture(_) => match nodes[node].single {
                Some(child) => child,
                None => {
                    let child = push_node(nodes);
                    nodes[node].single = Some(child);
                    child
                }
            },
        };
    }
    let slot = nodes[node].end;
    nodes[node].end = Some(pick(routes, slot, idx));
}

fn push_node(nodes: &mut Vec<Node>) -> usize {
    nodes.push(Node::default());
    nodes.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pattern: &str) -> TopicPattern {
        TopicPattern::parse(pattern).expect("test pattern must parse")
    }

    fn route(topic_id: i32, pattern: &str, priority: i32) -> Route {
        Route {
            topic_id,
            pattern: p(pattern),
            parser: format!("parser{topic_id}").into(),
            priority,
        }
    }

    fn caps(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn routed_id(router: &Router, topic: &str) -> Option<i32> {
        router.route(topic).map(|m| m.topic_id)
    }

    // ---- MQTT 3.1.1 §4.7 matching rules, single pattern and router alike ----

    /// Checks one pattern against one topic both directly and through a one-route router.
    fn both(pattern: &str, topic: &str) -> bool {
        let direct = p(pattern).matches(topic).is_some();
        let routed = Router::new(vec![route(1, pattern, 0)])
            .route(topic)
            .is_some();
        assert_eq!(direct, routed, "pattern {pattern:?} topic {topic:?}");
        direct
    }

    #[test]
    fn multi_level_matches_parent_and_descendants() {
        assert!(both("a/#", "a"));
        assert!(both("a/#", "a/"));
        assert!(both("a/#", "a/b"));
        assert!(both("a/#", "a/b/c"));
        assert!(!both("a/#", "b"));
        assert!(!both("a/#", "ab"));
        assert!(both("#", "a"));
        assert!(both("#", "/"));
        assert!(both("#", "a/b/c"));
        assert!(both("a/+/#", "a/b"));
        assert!(!both("a/+/#", "a"));
    }

    #[test]
    fn single_level_matches_exactly_one_level_even_empty() {
        assert!(both("a/+", "a/b"));
        assert!(both("a/+", "a/"));
        assert!(!both("a/+", "a"));
        assert!(!both("a/+", "a/b/c"));
        assert!(both("+", "a"));
        assert!(!both("+", "/"));
        assert!(both("+/+", "/"));
        assert!(both("+/b", "/b"));
        assert!(both("a/+/c", "a//c"));
        assert!(both("{x}/b", "a/b"));
        assert!(!both("{x}/b", "a/c/b"));
    }

    #[test]
    fn dollar_topics_need_a_literal_first_level() {
        assert!(!both("#", "$SYS/broker/load"));
        assert!(!both("+/broker/load", "$SYS/broker/load"));
        assert!(!both("{x}/broker/load", "$SYS/broker/load"));
        assert!(!both("+", "$SYS"));
        assert!(both("$SYS/#", "$SYS/broker/load"));
        assert!(both("$SYS/#", "$SYS"));
        assert!(both("$SYS/+/load", "$SYS/broker/load"));
        assert!(!both("$SYS/#", "$OTHER/x"));
        // The rule is for the first level only.
        assert!(both("a/+", "a/$x"));
        assert!(both("a/#", "a/$x/y"));
    }

    #[test]
    fn empty_levels_are_distinct_levels() {
        assert!(both("a//b", "a//b"));
        assert!(!both("a//b", "a/b"));
        assert!(!both("a/b", "a//b"));
        assert!(both("/a", "/a"));
        assert!(!both("/a", "a"));
        assert!(both("a/", "a/"));
        assert!(!both("a/", "a"));
    }

    #[test]
    fn topics_with_wildcard_characters_never_match() {
        for topic in ["a/+", "a/#", "+", "#", "a/b+", "a/#b", "", "a/\0"] {
            assert!(!both("#", topic), "{topic:?}");
            assert!(!both("a/+", topic), "{topic:?}");
        }
        assert!(!both("a/+", "a/+"));
        assert_eq!(p("a/+").matches("a/+"), None);
    }

    #[test]
    fn literals_are_case_sensitive_and_exact() {
        assert!(both("Site/A", "Site/A"));
        assert!(!both("Site/A", "site/a"));
        assert!(!both("a/b", "a/b/"));
        assert!(both("héllo/+", "héllo/wörld"));
    }

    #[test]
    fn overlong_topic_never_matches() {
        let topic = "a".repeat(65_536);
        assert!(!both("#", &topic));
    }

    // ---- captures ----

    #[test]
    fn captures_are_returned_by_name() {
        let pat = p("bfg/gateway/{gateway}/datalogger/{datalogger}");
        assert_eq!(
            pat.matches("bfg/gateway/gw-7/datalogger/dl-3"),
            Some(caps(&[("gateway", "gw-7"), ("datalogger", "dl-3")]))
        );
        assert_eq!(pat.matches("bfg/gateway/gw-7/datalogger"), None);
        assert_eq!(p("a/+").matches("a/b"), Some(BTreeMap::new()));
        assert_eq!(p("{x}/#").matches("v/1/2"), Some(caps(&[("x", "v")])));
        assert_eq!(p("a/{x}").matches("a/"), Some(caps(&[("x", "")])));

        let router = Router::new(vec![route(
            9,
            "bfg/gateway/{gateway}/datalogger/{datalogger}",
            0,
        )]);
        assert_eq!(
            router.route("bfg/gateway/gw-7/datalogger/dl-3"),
            Some(RouteMatch {
                topic_id: 9,
                parser: "parser9".into(),
                captures: caps(&[("gateway", "gw-7"), ("datalogger", "dl-3")]),
            })
        );
    }

    #[test]
    fn captures_come_from_the_winning_pattern() {
        // Both share one '+' node in the trie; the names must follow whichever route wins.
        let router = Router::new(vec![
            route(1, "s/{gateway}/status", 0),
            route(2, "s/{device}/status", 5),
            route(3, "s/+/status", 1),
        ]);
        let m = router.route("s/g1/status").expect("matches");
        assert_eq!(m.topic_id, 2);
        assert_eq!(m.captures, caps(&[("device", "g1")]));

        let router = Router::new(vec![
            route(3, "s/+/status", 1),
            route(1, "s/{gateway}/status", 0),
        ]);
        let m = router.route("s/g1/status").expect("matches");
        assert_eq!(m.topic_id, 3);
        assert!(m.captures.is_empty());
    }

    // ---- router ranking ----

    #[test]
    fn priority_beats_specificity() {
        let router = Router::new(vec![route(1, "a/b/c", 0), route(2, "a/#", 10)]);
        assert_eq!(routed_id(&router, "a/b/c"), Some(2));
        assert_eq!(routed_id(&router, "a"), Some(2));
    }

    #[test]
    fn fewest_wildcards_wins_at_equal_priority() {
        let router = Router::new(vec![
            route(5, "#", 0),
            route(4, "a/#", 0),
            route(3, "a/+/+", 0),
            route(2, "a/b/+", 0),
            route(1, "a/b/c", 0),
        ]);
        assert_eq!(routed_id(&router, "a/b/c"), Some(1));
        assert_eq!(routed_id(&router, "a/b/x"), Some(2));
        // "a/#" has one wildcard, "a/+/+" two.
        assert_eq!(routed_id(&router, "a/x/y"), Some(4));
        assert_eq!(routed_id(&router, "a/x/y/z"), Some(4));
        assert_eq!(routed_id(&router, "a"), Some(4));
        assert_eq!(routed_id(&router, "b"), Some(5));
        assert_eq!(routed_id(&router, "$SYS/x"), None);
    }

    #[test]
    fn wildcard_count_ignores_literal_depth() {
        // "#" and "a/b/+" both hold one wildcard: the documented order leaves the tie to topic_id.
        let router = Router::new(vec![route(2, "a/b/+", 0), route(1, "#", 0)]);
        assert_eq!(routed_id(&router, "a/b/x"), Some(1));
        let router = Router::new(vec![route(1, "a/b/+", 0), route(2, "#", 0)]);
        assert_eq!(routed_id(&router, "a/b/x"), Some(1));
    }

    #[test]
    fn lowest_topic_id_breaks_remaining_ties_in_any_order() {
        let mut routes = vec![
            route(30, "a/+/c", 1),
            route(20, "a/b/#", 1),
            route(10, "+/b/c", 1),
        ];
        for _ in 0..3 {
            routes.rotate_left(1);
            let router = Router::new(routes.clone());
            assert_eq!(routed_id(&router, "a/b/c"), Some(10));
        }
        // Same topic_id twice: the first given wins.
        let mut first = route(7, "x/+", 0);
        first.parser = "first".into();
        let mut second = route(7, "x/{y}", 0);
        second.parser = "second".into();
        let router = Router::new(vec![first, second]);
        assert_eq!(router.route("x/1").map(|m| m.parser), Some("first".into()));
    }

    #[test]
    fn negative_priorities_rank_below_zero() {
        let router = Router::new(vec![route(1, "#", -5), route(2, "+/+", 0)]);
        assert_eq!(routed_id(&router, "a/b"), Some(2));
        assert_eq!(routed_id(&router, "a"), Some(1));
    }

    #[test]
    fn router_with_share_patterns_matches_stripped_filter() {
        let router = Router::new(vec![route(1, "$share/g/a/{x}", 0), route(2, "a/b", 0)]);
        assert_eq!(routed_id(&router, "a/b"), Some(2));
        let m = router.route("a/c").expect("matches");
        assert_eq!(m.topic_id, 1);
        assert_eq!(m.captures, caps(&[("x", "c")]));
        assert_eq!(
            router.subscription_filters(),
            vec![("$share/g/a/+".to_owned(), 1), ("a/b".to_owned(), 2)]
        );
    }

    #[test]
    fn empty_and_default_routers_match_nothing() {
        let empty = Router::new(Vec::new());
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.route("a"), None);
        let default = Router::default();
        assert!(default.is_empty());
        assert_eq!(default.route("a"), None);
        assert!(default.subscription_filters().is_empty());
    }

    #[test]
    fn router_agrees_with_single_pattern_matching() {
        let patterns = [
            "#",
            "+",
            "a",
            "a/#",
            "a/+",
            "a/b",
            "a//b",
            "+/+",
            "+/b",
            "/",
            "/#",
            "$SYS/#",
            "a/+/#",
            "{x}/b/{y}",
            "a/b/c/#",
        ];
        let topics = [
            "a", "a/", "a/b", "a//b", "/", "/b", "b", "a/b/c", "a/b/c/d", "$SYS", "$SYS/x",
            "x/b/y", "//", "a/$x",
        ];
        for (i, pat) in patterns.iter().enumerate() {
            let router = Router::new(vec![route(i as i32, pat, 0)]);
            for topic in topics {
                assert_eq!(
                    router.route(topic).is_some(),
                    p(pat).matches(topic).is_some(),
                    "{pat:?} vs {topic:?}"
                );
            }
        }
        // All at once: the winner must be a pattern that matches on its own, and none of the
        // patterns that match may outrank it.
        let routes: Vec<Route> = patterns
            .iter()
            .enumerate()
            .map(|(i, pat)| route(i as i32, pat, (i % 3) as i32))
            .collect();
        let router = Router::new(routes.clone());
        for topic in topics {
            let expected = routes
                .iter()
                .filter(|r| r.pattern.matches(topic).is_some())
                .min_by_key(|r| (Reverse(r.priority), r.pattern.wildcard_count(), r.topic_id))
                .map(|r| r.topic_id);
            assert_eq!(routed_id(&router, topic), expected, "{topic:?}");
        }
    }

    #[test]
    fn ten_thousand_routes_match_correctly_without_scanning() {
        let mut routes = Vec::new();
        for i in 0..10_000 {
            let pattern = match i % 4 {
                0 => format!("fleet/g{i}/status"),
                1 => format!("fleet/g{i}/dl/{{datalogger}}"),
                2 => format!("fleet/g{i}/dl/{{datalogger}}/#"),
                _ => format!("site{i}/gateway/{{gateway}}/datalogger/{{datalogger}}"),
            };
            routes.push(route(i, &pattern, 0));
        }
        routes.push(route(10_000, "fleet/#", -1));
        routes.push(route(10_001, "fleet/+/status", 1));
        let router = Router::new(routes);
        assert_eq!(router.len(), 10_002);
        assert!(!router.is_empty());

        for i in (0..10_000).step_by(7) {
            match i % 4 {
                0 => {
                    // The priority-1 wildcard beats every literal status pattern.
                    assert_eq!(
                        routed_id(&router, &format!("fleet/g{i}/status")),
                        Some(10_001)
                    );
                }
                1 => {
                    let m = router
                        .route(&format!("fleet/g{i}/dl/d{i}"))
                        .expect("matches");
                    assert_eq!(m.topic_id, i);
                    assert_eq!(m.captures, caps(&[("datalogger", &format!("d{i}"))]));
                }
                2 => {
                    let m = router
                        .route(&format!("fleet/g{i}/dl/d{i}/x/y"))
                        .expect("matches");
                    assert_eq!(m.topic_id, i);
                    assert_eq!(m.captures, caps(&[("datalogger", &format!("d{i}"))]));
                }
                _ => {
                    let m = router
                        .route(&format!("site{i}/gateway/gw/datalogger/dl"))
                        .expect("matches");
                    assert_eq!(m.topic_id, i);
                    assert_eq!(m.captures, caps(&[("gateway", "gw"), ("datalogger", "dl")]));
                }
            }
        }
        assert_eq!(routed_id(&router, "fleet/unknown/x"), Some(10_000));
        assert_eq!(routed_id(&router, "fleet"), Some(10_000));
        assert_eq!(routed_id(&router, "site1/gateway/gw/datalogger/dl"), None);
        assert_eq!(routed_id(&router, "elsewhere"), None);

        // The walk touches a handful of nodes, not one per route.
        let mut visits = 0;
        let levels = ["fleet", "g4002", "dl", "d", "x"];
        assert_eq!(router.best_match(&levels, &mut visits), Some(4002));
        assert!(visits < 20, "visited {visits} nodes");
    }

    #[test]
    fn deep_patterns_and_topics_do_not_overflow_the_stack() {
        // 30 000 levels: a recursive trie would overflow a 2 MiB stack when walked or dropped.
        let deep = "a/".repeat(30_000) + "b";
        let router = Router::new(vec![route(1, &deep, 0), route(2, "a/#", -1)]);
        assert_eq!(routed_id(&router, &deep), Some(1));
        let shallower = "a/".repeat(29_999) + "b";
        assert_eq!(routed_id(&router, &shallower), Some(2));
        let clone = router.clone();
        drop(router);
        assert_eq!(routed_id(&clone, &deep), Some(1));
        assert!(p(&deep).matches(&deep).is_some());
        assert_eq!(p(&"/".repeat(65_535)).wildcard_count(), 0);
    }

    #[test]
    fn many_captures_parse_quickly() {
        let pattern: Vec<String> = (0..5_000).map(|i| format!("{{c{i}}}")).collect();
        let pat = p(&pattern.join("/"));
        assert_eq!(pat.capture_names().len(), 5_000);
    }
}
