//! Where a command stands, and the moves between statuses the outbox allows: a command never
//! goes back in time, except `sent` → `queued` when the session that wrote it broke before the
//! broker acknowledged it.

/// `queued` → `sent` → `delivered` → `confirmed`; or `failed` / `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommandStatus {
    /// Stored, waiting for the connection.
    Queued,
    /// Written to the broker, not acknowledged yet.
    Sent,
    /// The broker acknowledged it (PUBACK, PUBCOMP for QoS 2; QoS 0 once written).
    Delivered,
    /// The device's reply matched the template's confirm rule.
    Confirmed,
    /// The broker refused it (MQTT 5 reason code), it could not be published, or its device did
    /// not confirm it in time.
    Failed,
    /// Its time ran out before it could be sent; never sent.
    Expired,
}

impl CommandStatus {
    pub const ALL: [CommandStatus; 6] = [
        CommandStatus::Queued,
        CommandStatus::Sent,
        CommandStatus::Delivered,
        CommandStatus::Confirmed,
        CommandStatus::Failed,
        CommandStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Queued => "queued",
            CommandStatus::Sent => "sent",
            CommandStatus::Delivered => "delivered",
            CommandStatus::Confirmed => "confirmed",
            CommandStatus::Failed => "failed",
            CommandStatus::Expired => "expired",
        }
    }

    pub fn parse(name: &str) -> Option<CommandStatus> {
        CommandStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// The statuses a command may be in to move to this one.
    pub fn reached_from(self) -> &'static [CommandStatus] {
        match self {
            CommandStatus::Queued => &[CommandStatus::Sent],
            CommandStatus::Sent => &[CommandStatus::Queued],
            CommandStatus::Delivered => &[CommandStatus::Queued, CommandStatus::Sent],
            CommandStatus::Confirmed => &[CommandStatus::Sent, CommandStatus::Delivered],
            // From `delivered` when the device did not confirm in time.
            CommandStatus::Failed => &[
                CommandStatus::Queued,
                CommandStatus::Sent,
                CommandStatus::Delivered,
            ],
            CommandStatus::Expired => &[CommandStatus::Queued],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in CommandStatus::ALL {
            assert_eq!(CommandStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(CommandStatus::parse("done"), None);
    }

    #[test]
    fn a_command_moves_forward_and_only_a_broken_session_sends_it_back() {
        use CommandStatus::*;
        assert!(Sent.reached_from().contains(&Queued));
        assert!(Delivered.reached_from().contains(&Sent));
        assert!(Confirmed.reached_from().contains(&Delivered));
        assert_eq!(Queued.reached_from(), &[Sent]);
        // An expired command was never sent; a final one never moves again.
        assert_eq!(Expired.reached_from(), &[Queued]);
        for to in CommandStatus::ALL {
            for from in to.reached_from() {
                let final_status = matches!(from, Confirmed | Failed | Expired);
                assert!(!final_status, "{from:?} → {to:?}");
            }
        }
    }
}
