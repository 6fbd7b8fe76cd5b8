//! Commands to devices: a request checked before anything is stored (`request`), the outbox in
//! the database that survives restarts and outages (`outbox`), each command's status and the
//! moves it may make (`status`), what wakes the connection that sends them (`bell`), and how a
//! change is told to browsers and `/metrics` (`report`), and the device replies that confirm
//! commands made from a parser's template (`replies`).

mod bell;
mod outbox;
mod replies;
mod report;
mod request;
mod status;

pub use bell::CommandBell;
pub use outbox::{enqueue, expire_overdue, open_commands, transition, Enqueued};
pub use replies::{confirm, fail_unconfirmed, reload_replies, ReplyWatch};
pub use report::CommandReport;
pub use request::{check_idempotency_key, InvalidCommand, NewCommand, MAX_EXPIRES_IN_SECS};
pub use status::CommandStatus;
