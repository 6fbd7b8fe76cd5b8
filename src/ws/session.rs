//! One browser's WebSocket session.

pub async fn handle_socket() {}
