//! The session's side of the command outbox: it sends its site's open commands, oldest first,
//! over its own client and follows each to the broker's acknowledgement. Only a connection's
//! first shard sends, and only the instance that holds its lease runs it, so a command goes out
//! from one place.
//!
//! A command is handed to the client once per session. When the session breaks before the
//! broker acknowledged it, the client forgets it (see the clients) and the next session sends it
//! again from the outbox: at least once, like any QoS 1 message over a broken connection.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr};

use super::client::{Client, OutgoingPublish};

/// Commands handed to the client and not yet acknowledged, at most: below the client's own
/// window of packet ids for our publishes, so none waits there for an id to come free.
const MAX_IN_FLIGHT: usize = 12;
use crate::downlink::{self, CommandReport, CommandStatus};
use crate::entity::device_command;

/// What a session knows of the commands it handed to its client: pure bookkeeping.
#[derive(Debug, Default)]
struct Tracker {
    /// Handed to the client, in order, waiting to be written: (command id, QoS).
    awaiting_write: VecDeque<(i32, u8)>,
    /// Written at QoS 1 or 2, by packet id, waiting for the broker's acknowledgement.
    awaiting_ack: HashMap<u16, i32>,
    /// Every command handed out in this session.
    handed_out: HashSet<i32>,
}

/// What writing a publish meant for its command.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// QoS 0: written is all the delivery there is.
    Delivered(i32),
    /// Waiting for the broker now.
    Sent(i32),
    /// Not one of ours (none handed out).
    Unknown,
}

impl Tracker {
    fn handed(&mut self, id: i32, qos: u8) {
        self.awaiting_write.push_back((id, qos));
        self.handed_out.insert(id);
    }

    fn is_handed_out(&self, id: i32) -> bool {
        self.handed_out.contains(&id)
    }

    /// Handed to the client and not acknowledged yet.
    fn in_flight(&self) -> usize {
        self.awaiting_write.len() + self.awaiting_ack.len()
    }

    /// The client writes publishes in the order they were handed to it.
    fn written(&mut self, packet_id: u16) -> Written {
        match self.awaiting_write.pop_front() {
            None => Written::Unknown,
            Some((id, 0)) => {
                self.handed_out.remove(&id);
                Written::Delivered(id)
            }
            Some((id, _)) => {
                self.awaiting_ack.insert(packet_id, id);
                Written::Sent(id)
            }
        }
    }

    fn acknowledged(&mut self, packet_id: u16) -> Option<i32> {
        let id = self.awaiting_ack.remove(&packet_id)?;
        self.handed_out.remove(&id);
        Some(id)
    }

    fn forget(&mut self) {
        self.awaiting_write.clear();
        self.awaiting_ack.clear();
        self.handed_out.clear();
    }
}

pub(super) struct Downlink {
    site_id: i32,
    db: DatabaseConnection,
    report: CommandReport,
    tracker: Tracker,
    /// Open commands beyond `MAX_IN_FLIGHT`: handed over as those in flight are acknowledged.
    backlog: bool,
}

impl Downlink {
    pub(super) fn new(site_id: i32, db: DatabaseConnection, report: CommandReport) -> Downlink {
        Downlink {
            site_id,
            db,
            report,
            tracker: Tracker::default(),
            backlog: false,
        }
    }

    async fn move_to(
        &self,
        id: i32,
        status: CommandStatus,
        error: Option<String>,
    ) -> Result<(), DbErr> {
        if let Some(command) = downlink::transition(&self.db, id, status, error, Utc::now()).await?
        {
            self.report.told(&command);
        }
        Ok(())
    }

    /// The site's open commands that this session has not handed out yet, in order; those
    /// whose time ran out end `expired` instead.
    pub(super) async fn ready_to_send(&mut self) -> Result<Vec<device_command::Model>, DbErr> {
        let now = Utc::now();
        let mut ready = Vec::new();
        for command in downlink::open_commands(&self.db, self.site_id).await? {
            if self.tracker.is_handed_out(command.id) {
                continue;
            }
            if command.status == CommandStatus::Queued.as_str() && command.expires_at <= now {
                self.move_to(command.id, CommandStatus::Expired, None)
                    .await?;
                continue;
            }
            ready.push(command);
        }
        Ok(ready)
    }

    /// Hands commands to the client in order, a few at a time; the rest follow as those are
    /// acknowledged.
    pub(super) fn hand_to(&mut self, commands: Vec<device_command::Model>, client: &mut Client) {
        self.backlog = false;
        for command in commands {
            if self.tracker.in_flight() >= MAX_IN_FLIGHT {
                self.backlog = true;
                return;
            }
            let device_command::Model {
                id,
                topic,
                payload,
                qos,
                retain,
                ..
            } = command;
            let qos = u8::try_from(qos).unwrap_or(1).min(2);
            let publish = OutgoingPublish {
                topic,
                payload: Bytes::from(payload),
                qos,
                retain,
            };
            client.publish(publish);
            self.tracker.handed(id, qos);
        }
    }

    /// The client wrote one of our publishes. Returns whether commands wait for room in the
    /// client's queue (the session then hands them over).
    pub(super) async fn on_written(&mut self, packet_id: u16) -> Result<bool, DbErr> {
        match self.tracker.written(packet_id) {
            Written::Delivered(id) => {
                self.move_to(id, CommandStatus::Sent, None).await?;
                self.move_to(id, CommandStatus::Delivered, None).await?;
            }
            Written::Sent(id) => self.move_to(id, CommandStatus::Sent, None).await?,
            Written::Unknown => {}
        }
        Ok(self.backlog)
    }

    /// Commands wait for one in flight to be acknowledged.
    pub(super) fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// The broker acknowledged (or, on MQTT 5, refused) one of our publishes. Returns the
    /// refusal to log.
    pub(super) async fn on_acknowledged(
        &mut self,
        packet_id: u16,
        refusal: Option<String>,
    ) -> Result<Option<String>, DbErr> {
        let Some(id) = self.tracker.acknowledged(packet_id) else {
            return Ok(None);
        };
        match refusal {
            None => {
                self.move_to(id, CommandStatus::Delivered, None).await?;
                Ok(None)
            }
            Some(refusal) => {
                self.move_to(id, CommandStatus::Failed, Some(refusal.clone()))
                    .await?;
                Ok(Some(format!("command {id} failed: {refusal}")))
            }
        }
    }

    /// The session broke: what it handed out is sent again by the next one.
    pub(super) fn on_session_lost(&mut self) {
        self.tracker.forget();
        self.backlog = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_are_matched_to_commands_in_the_order_they_were_handed_out() {
        let mut tracker = Tracker::default();
        tracker.handed(10, 1);
        tracker.handed(11, 0);
        tracker.handed(12, 2);
        assert!(tracker.is_handed_out(11));
        assert_eq!(tracker.written(5), Written::Sent(10));
        assert_eq!(tracker.written(0), Written::Delivered(11));
        assert!(!tracker.is_handed_out(11));
        assert_eq!(tracker.written(6), Written::Sent(12));
        assert_eq!(tracker.written(7), Written::Unknown);
        // Acknowledgements come by packet id, in any order.
        assert_eq!(tracker.acknowledged(6), Some(12));
        assert_eq!(tracker.acknowledged(5), Some(10));
        assert_eq!(tracker.acknowledged(5), None);
        assert!(!tracker.is_handed_out(10));
    }

    #[test]
    fn a_lost_session_forgets_everything_it_handed_out() {
        let mut tracker = Tracker::default();
        tracker.handed(1, 1);
        assert_eq!(tracker.written(9), Written::Sent(1));
        tracker.handed(2, 1);
        tracker.forget();
        assert!(!tracker.is_handed_out(1));
        assert!(!tracker.is_handed_out(2));
        assert_eq!(tracker.acknowledged(9), None);
        assert_eq!(tracker.written(10), Written::Unknown);
    }
}
