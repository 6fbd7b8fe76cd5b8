//! Telling a command's new status: the WebSocket's `command_status` event and the commands
//! counter of `/metrics`.

use std::sync::Arc;

use crate::entity::device_command;
use crate::events::{Event, Hub};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct CommandReport {
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
}

impl CommandReport {
    pub fn told(&self, command: &device_command::Model) {
        self.metrics.command_status(&command.status);
        self.hub.send(&Event::CommandStatus {
            site_id: command.site_id,
            id: command.id,
            status: command.status.clone(),
            error: command.error.clone(),
        });
    }
}
