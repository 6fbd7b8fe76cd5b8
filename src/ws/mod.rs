//! Browser sessions on `/ws`: each reads the event hub, narrowed to one site on request, and is
//! dropped when it falls too far behind, so producers never wait on a slow browser.

mod session;

pub use session::handle_socket;
