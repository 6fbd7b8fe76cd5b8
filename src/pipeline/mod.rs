//! The message pipeline: prepare (decode → route → parse, pure, in the connection task) → the
//! writer batches → persist in one transaction → acknowledge to the broker → notify browsers.

pub mod discover;
pub mod names;
pub mod notify;
pub mod persist;
pub mod prepare;
pub mod replay;
pub mod writer;

pub use prepare::{prepare, Arrival, Limits, Outcome, Prepared, RawMessage};
pub use writer::{spawn_writer, TrySendError, WriterContext, WriterHandle};
