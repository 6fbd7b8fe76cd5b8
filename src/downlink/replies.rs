//! Waiting for devices to confirm commands: the confirm rules of a process's open commands by
//! site, checked against every live message its connections receive. Loaded from the outbox
//! (at start, on every supervisor pass, when another instance stores a command) and added to
//! when this instance stores one, so the instance that receives the reply confirms it whichever
//! instance sent the command.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};
use serde_json::Value;

use super::outbox::transition;
use super::report::CommandReport;
use super::status::CommandStatus;
use crate::entity::{device_command, mqtt_connection_log};
use crate::parsers::ConfirmRule;

#[derive(Debug, Clone, PartialEq)]
struct Awaited {
    command_id: i32,
    rule: ConfirmRule,
    /// When it was added, as a count of additions: a reload keeps what was added while it read.
    added: u64,
}

/// The replies this process waits for. Cloning shares it.
#[derive(Clone, Default)]
pub struct ReplyWatch {
    by_site: Arc<RwLock<HashMap<i32, Vec<Awaited>>>>,
    /// Whether any site waits, read without the lock on every message.
    waiting: Arc<AtomicBool>,
    additions: Arc<AtomicU64>,
}

impl ReplyWatch {
    fn update<T>(&self, change: impl FnOnce(&mut HashMap<i32, Vec<Awaited>>) -> T) -> T {
        // A poisoned lock still holds a usable map.
        let mut by_site = self
            .by_site
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = change(&mut by_site);
        by_site.retain(|_, awaited| !awaited.is_empty());
        self.waiting.store(!by_site.is_empty(), Ordering::Release);
        result
    }

    /// Waits for the reply that confirms a command of the site.
    pub fn expect(&self, site_id: i32, command_id: i32, rule: ConfirmRule) {
        let added = self.additions.fetch_add(1, Ordering::AcqRel) + 1;
        self.update(|by_site| {
            let awaited = by_site.entry(site_id).or_default();
            if !awaited.iter().any(|known| known.command_id == command_id) {
                awaited.push(Awaited {
                    command_id,
                    rule,
                    added,
                });
            }
        });
    }

    /// Taken before reading the outbox for [`ReplyWatch::replace`].
    fn mark(&self) -> u64 {
        self.additions.load(Ordering::Acquire)
    }

    /// Replaces what one site (or, with `None`, every site) waits for with what the outbox
    /// said, keeping what was added after `mark` (stored while the outbox was read).
    fn replace(&self, site_id: Option<i32>, rows: Vec<(i32, i32, ConfirmRule)>, mark: u64) {
        self.update(|by_site| {
            let replaced = |site: i32| site_id.is_none_or(|only| only == site);
            for (site, awaited) in by_site.iter_mut() {
                if replaced(*site) {
                    awaited.retain(|awaited| awaited.added > mark);
                }
            }
            for (site_id, command_id, rule) in rows {
                let awaited = by_site.entry(site_id).or_default();
                if !awaited.iter().any(|known| known.command_id == command_id) {
                    awaited.push(Awaited {
                        command_id,
                        rule,
                        added: mark,
                    });
                }
            }
        });
    }

    /// The commands a live message confirms, no longer waited for. A retained message is old
    /// news and confirms nothing; the payload is decoded only when the topic matches a rule.
    pub fn confirmed_by(
        &self,
        site_id: i32,
        topic: &str,
        payload: &[u8],
        retained: bool,
    ) -> Vec<i32> {
        if retained || !self.waiting.load(Ordering::Acquire) {
            return Vec::new();
        }
        let topic_awaited = {
            let by_site = self
                .by_site
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            by_site.get(&site_id).is_some_and(|awaited| {
                awaited
                    .iter()
                    .any(|awaited| awaited.rule.topic.as_str() == topic)
            })
        };
        if !topic_awaited {
            return Vec::new();
        }
        let Ok(payload) = serde_json::from_slice::<Value>(payload) else {
            return Vec::new();
        };
        self.update(|by_site| {
            let Some(awaited) = by_site.get_mut(&site_id) else {
                return Vec::new();
            };
            let mut confirmed = Vec::new();
            awaited.retain(|awaited| {
                let met = awaited.rule.is_met_by(topic, &payload);
                if met {
                    confirmed.push(awaited.command_id);
                }
                !met
            });
            confirmed
        })
    }

    /// Stops waiting for a command (it ended).
    pub fn forget(&self, site_id: i32, command_id: i32) {
        self.update(|by_site| {
            if let Some(awaited) = by_site.get_mut(&site_id) {
                awaited.retain(|awaited| awaited.command_id != command_id);
            }
        });
    }

    #[cfg(test)]
    fn waits_for(&self, site_id: i32) -> Vec<i32> {
        let by_site = self.by_site.read().unwrap();
        by_site
            .get(&site_id)
            .map(|awaited| awaited.iter().map(|awaited| awaited.command_id).collect())
            .unwrap_or_default()
    }
}

fn rule_of(command: &device_command::Model) -> Option<ConfirmRule> {
    serde_json::from_str(command.confirm_rule.as_deref()?).ok()
}

/// Open commands with a confirm rule: not confirmed, failed or expired yet.
async fn unconfirmed(
    db: &DatabaseConnection,
    site_id: Option<i32>,
) -> Result<Vec<device_command::Model>, DbErr> {
    let mut select = device_command::Entity::find()
        .filter(device_command::Column::ConfirmRule.is_not_null())
        .filter(device_command::Column::Status.is_in([
            CommandStatus::Queued.as_str(),
            CommandStatus::Sent.as_str(),
            CommandStatus::Delivered.as_str(),
        ]));
    if let Some(site_id) = site_id {
        select = select.filter(device_command::Column::SiteId.eq(site_id));
    }
    select.all(db).await
}

/// Loads what one site (or every site) waits for from the outbox.
pub async fn reload_replies(
    watch: &ReplyWatch,
    db: &DatabaseConnection,
    site_id: Option<i32>,
) -> Result<(), DbErr> {
    let mark = watch.mark();
    let rows = unconfirmed(db, site_id)
        .await?
        .into_iter()
        .filter_map(|command| Some((command.site_id, command.id, rule_of(&command)?)))
        .collect();
    watch.replace(site_id, rows, mark);
    Ok(())
}

/// Marks a command confirmed. A command still `queued` (the reply came before it was sent, from
/// an earlier switch) stays waited for.
pub async fn confirm(
    db: &DatabaseConnection,
    watch: &ReplyWatch,
    report: &CommandReport,
    site_id: i32,
    command_id: i32,
) -> Result<(), DbErr> {
    match transition(db, command_id, CommandStatus::Confirmed, None, Utc::now()).await? {
        Some(command) => report.told(&command),
        None => {
            let still_queued = device_command::Entity::find_by_id(command_id)
                .one(db)
                .await?
                .filter(|command| command.status == CommandStatus::Queued.as_str());
            if let Some(rule) = still_queued.as_ref().and_then(rule_of) {
                watch.expect(site_id, command_id, rule);
            }
        }
    }
    Ok(())
}

/// When a sent command stops waiting for its reply.
fn confirm_deadline(command: &device_command::Model, rule: &ConfirmRule) -> Option<DateTime<Utc>> {
    Some(command.sent_at? + chrono::Duration::seconds(rule.within_secs))
}

/// Commands whose device did not confirm them in time end `failed`, saying what was expected,
/// with a `command_failed` line in the site's connection log.
pub async fn fail_unconfirmed(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<device_command::Model>, DbErr> {
    let mut failed = Vec::new();
    for command in unconfirmed(db, None).await? {
        let Some(rule) = rule_of(&command) else {
            continue;
        };
        let overdue = confirm_deadline(&command, &rule).is_some_and(|deadline| deadline <= now);
        if !overdue {
            continue;
        }
        let expected = serde_json::to_string(&rule.fields).unwrap_or_default();
        let error = format!(
            "the device did not confirm within {} s: no message on '{}' with {expected}",
            rule.within_secs, rule.topic
        );
        if let Some(command) = transition(
            db,
            command.id,
            CommandStatus::Failed,
            Some(error.clone()),
            now,
        )
        .await?
        {
            // Like a refused publish: a line in the site's connection log.
            tracing::warn!(
                site_id = command.site_id,
                command_id = command.id,
                "{error}"
            );
            mqtt_connection_log::ActiveModel {
                site_id: Set(command.site_id),
                event: Set("command_failed".to_owned()),
                message: Set(format!("command {} failed: {error}", command.id)),
                created_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?;
            failed.push(command);
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn rule(topic: &str, state: &str) -> ConfirmRule {
        ConfirmRule {
            topic: topic.into(),
            fields: BTreeMap::from([("/state".to_owned(), json!(state))]),
            within_secs: 30,
        }
    }

    #[test]
    fn a_matching_live_message_confirms_once() {
        let watch = ReplyWatch::default();
        watch.expect(1, 10, rule("relay/1", "on"));
        watch.expect(1, 11, rule("relay/2", "on"));
        watch.expect(2, 12, rule("relay/1", "on"));
        assert!(watch
            .confirmed_by(1, "relay/1", br#"{"state":"off"}"#, false)
            .is_empty());
        assert!(
            watch
                .confirmed_by(1, "relay/1", br#"{"state":"on"}"#, true)
                .is_empty(),
            "retained news confirms nothing"
        );
        assert!(watch
            .confirmed_by(1, "relay/1", b"not json", false)
            .is_empty());
        assert_eq!(
            watch.confirmed_by(1, "relay/1", br#"{"state":"on"}"#, false),
            vec![10]
        );
        assert!(watch
            .confirmed_by(1, "relay/1", br#"{"state":"on"}"#, false)
            .is_empty());
        assert_eq!(watch.waits_for(1), vec![11]);
        assert_eq!(
            watch.waits_for(2),
            vec![12],
            "another site's command waits on"
        );
    }

    #[test]
    fn a_reload_replaces_one_site_or_all() {
        let watch = ReplyWatch::default();
        watch.expect(1, 10, rule("a", "on"));
        watch.expect(2, 20, rule("b", "on"));
        let mark = watch.mark();
        watch.replace(Some(1), vec![(1, 11, rule("a", "on"))], mark);
        assert_eq!(watch.waits_for(1), vec![11]);
        assert_eq!(watch.waits_for(2), vec![20]);
        // Stored while the outbox was read: kept.
        let mark = watch.mark();
        watch.expect(2, 21, rule("b", "on"));
        watch.replace(None, Vec::new(), mark);
        assert_eq!(watch.waits_for(2), vec![21]);
        assert!(watch.waits_for(1).is_empty());
        watch.replace(None, Vec::new(), watch.mark());
        assert!(watch.waits_for(2).is_empty());
        assert!(!watch.waiting.load(Ordering::Acquire));
        watch.expect(3, 30, rule("c", "on"));
        watch.forget(3, 30);
        assert!(!watch.waiting.load(Ordering::Acquire));
    }
}
