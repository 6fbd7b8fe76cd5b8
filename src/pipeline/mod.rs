//! The message pipeline: discover → route → parse (in the connection task, pure) → persist in
//! batches → acknowledge to the broker → notify browsers (in the writer task).

pub mod discover;
pub mod notify;
pub mod persist;
pub mod postgres_arrays;
pub mod prepare;
pub mod replay;
pub mod route;
pub mod transaction;
pub mod writer;

pub use prepare::{prepare, Limits, Outcome, Prepared, RouteCache, SiteRoutes};
pub use writer::{spawn_writer, TrySendError, WriterHandle};
