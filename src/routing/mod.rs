//! Topic routing: operators' patterns validated and turned into broker subscription filters, and
//! every incoming topic matched to its best pattern through a trie. Used by the supervisor
//! (what to subscribe to) and the pipeline (which parser reads a message).

mod pattern;
mod route_cache;
mod router;
mod site_routes;

pub use pattern::{publish_topic_problem, PatternError, TopicPattern};
pub use route_cache::RouteCache;
pub use router::{Route, RouteMatch, Router};
pub use site_routes::{SiteRoutes, TopicSpec};
