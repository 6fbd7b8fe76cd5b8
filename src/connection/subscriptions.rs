//! A session's subscriptions from SUBSCRIBE to SUBACK: which filters to ask for (the change from
//! what was asked to what the site's patterns want), and what the broker answered for each.
//! Pure, so every case is unit-tested without a broker.
//!
//! The client hands out a packet id only when it writes a SUBSCRIBE, and writes requests in the
//! order they were queued, so a request waits in `awaiting_packet_id` until its `Outgoing`
//! event names its id, and then in `awaiting_answer` until the SUBACK with that id.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::client::Grant;
use crate::events::{Subscription, SubscriptionState};

/// Filters with the QoS asked for each.
pub type Filters = BTreeMap<String, u8>;

/// What to ask of the broker to go from what was asked to what is wanted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// New filters, and filters whose QoS changed (subscribing again replaces the QoS).
    pub subscribe: Vec<(String, u8)>,
    pub unsubscribe: Vec<String>,
}

/// What the broker said about one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Granted {
        filter: String,
        asked: u8,
        granted: u8,
    },
    Refused {
        filter: String,
        /// The broker's reason, where the protocol carries one (MQTT 5).
        reason: Option<String>,
    },
}

#[derive(Debug, Default)]
pub struct SubscriptionBook {
    filters: BTreeMap<String, Subscription>,
    awaiting_packet_id: VecDeque<Vec<String>>,
    awaiting_answer: HashMap<u16, Vec<String>>,
}

impl SubscriptionBook {
    /// What to ask for so the broker holds exactly `wanted`.
    pub fn change_to(&self, wanted: &Filters) -> SubscriptionChange {
        SubscriptionChange {
            subscribe: wanted
                .iter()
                .filter(|(filter, qos)| {
                    self.filters.get(*filter).map(|known| known.qos) != Some(**qos)
                })
                .map(|(filter, qos)| (filter.clone(), *qos))
                .collect(),
            unsubscribe: self
                .filters
                .keys()
                .filter(|filter| !wanted.contains_key(*filter))
                .cloned()
                .collect(),
        }
    }

    /// The client has queued one SUBSCRIBE for these filters: they are pending.
    pub fn requested(&mut self, filters: &[(String, u8)]) {
        for (filter, qos) in filters {
            self.filters.insert(
                filter.clone(),
                Subscription {
                    filter: filter.clone(),
                    qos: *qos,
                    state: SubscriptionState::Pending,
                    granted_qos: None,
                },
            );
        }
        self.awaiting_packet_id
            .push_back(filters.iter().map(|(filter, _)| filter.clone()).collect());
    }

    /// The client has queued an UNSUBSCRIBE: the filter is no longer ours.
    pub fn removed(&mut self, filter: &str) {
        self.filters.remove(filter);
    }

    /// The client wrote the oldest queued SUBSCRIBE with this packet id.
    pub fn sent(&mut self, packet_id: u16) {
        if let Some(filters) = self.awaiting_packet_id.pop_front() {
            self.awaiting_answer.insert(packet_id, filters);
        }
    }

    /// The broker's SUBACK: one grant per filter of the request, in its order. Returns what
    /// changed.
    pub fn answered(&mut self, packet_id: u16, grants: &[Grant]) -> Vec<Answer> {
        let Some(filters) = self.awaiting_answer.remove(&packet_id) else {
            return Vec::new();
        };
        let mut answers = Vec::new();
        for (filter, grant) in filters.into_iter().zip(grants) {
            // Removed or asked again meanwhile: a later answer speaks for it.
            let Some(subscription) = self.filters.get_mut(&filter) else {
                continue;
            };
            if subscription.state != SubscriptionState::Pending {
                continue;
            }
            match grant {
                Grant::Granted(qos) => {
                    subscription.state = SubscriptionState::Granted;
                    subscription.granted_qos = Some(*qos);
                    answers.push(Answer::Granted {
                        filter,
                        asked: subscription.qos,
                        granted: *qos,
                    });
                }
                Grant::Refused(reason) => {
                    subscription.state = SubscriptionState::Refused;
                    subscription.granted_qos = None;
                    answers.push(Answer::Refused {
                        filter,
                        reason: reason.clone(),
                    });
                }
            }
        }
        answers
    }

    /// A new session (or a re-subscription after silence): nothing counts as asked, so
    /// `change_to` asks for every filter again, and answers of an earlier session are ignored.
    pub fn start_over(&mut self) {
        self.filters.clear();
        self.awaiting_packet_id.clear();
        self.awaiting_answer.clear();
    }

    /// Every filter asked for, with its state, by filter.
    pub fn list(&self) -> Vec<Subscription> {
        self.filters.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(entries: &[(&str, u8)]) -> Filters {
        entries
            .iter()
            .map(|(filter, qos)| (filter.to_string(), *qos))
            .collect()
    }

    fn refused(book: &SubscriptionBook) -> Vec<String> {
        book.list()
            .into_iter()
            .filter(|subscription| subscription.state == SubscriptionState::Refused)
            .map(|subscription| subscription.filter)
            .collect()
    }

    fn states(book: &SubscriptionBook) -> Vec<(String, SubscriptionState, Option<u8>)> {
        book.list()
            .into_iter()
            .map(|s| (s.filter, s.state, s.granted_qos))
            .collect()
    }

    #[test]
    fn a_fresh_session_asks_for_everything() {
        let wanted = filters(&[("a/+", 1), ("b/#", 0)]);
        let change = SubscriptionBook::default().change_to(&wanted);
        assert_eq!(change.subscribe, vec![("a/+".into(), 1), ("b/#".into(), 0)]);
        assert!(change.unsubscribe.is_empty());
    }

    #[test]
    fn only_new_changed_and_dropped_filters_are_asked_for() {
        let mut book = SubscriptionBook::default();
        book.requested(&[("a/+".into(), 1), ("b/#".into(), 0), ("c".into(), 1)]);
        let wanted = filters(&[("a/+", 1), ("b/#", 1), ("d", 2)]);
        let change = book.change_to(&wanted);
        assert_eq!(change.subscribe, vec![("b/#".into(), 1), ("d".into(), 2)]);
        assert_eq!(change.unsubscribe, vec!["c".to_string()]);
    }

    #[test]
    fn filters_are_pending_until_their_answer_grants_or_refuses_them() {
        let mut book = SubscriptionBook::default();
        book.requested(&[("a/+".into(), 1), ("secret/#".into(), 1)]);
        book.requested(&[("c".into(), 2)]);
        assert!(states(&book)
            .iter()
            .all(|(_, state, _)| *state == SubscriptionState::Pending));
        book.sent(7);
        book.sent(8);
        // Answers may come in any order; each names its request by packet id.
        assert_eq!(
            book.answered(8, &[Grant::Granted(1)]),
            vec![Answer::Granted {
                filter: "c".into(),
                asked: 2,
                granted: 1
            }]
        );
        assert_eq!(
            book.answered(7, &[Grant::Granted(1), Grant::Refused(None)]),
            vec![
                Answer::Granted {
                    filter: "a/+".into(),
                    asked: 1,
                    granted: 1
                },
                Answer::Refused {
                    filter: "secret/#".into(),
                    reason: None,
                }
            ]
        );
        assert_eq!(
            states(&book),
            vec![
                ("a/+".into(), SubscriptionState::Granted, Some(1)),
                ("c".into(), SubscriptionState::Granted, Some(1)),
                ("secret/#".into(), SubscriptionState::Refused, None),
            ]
        );
        assert_eq!(refused(&book), vec!["secret/#".to_string()]);
        // An answer nobody waits for changes nothing.
        assert!(book.answered(9, &[Grant::Granted(0)]).is_empty());
    }

    #[test]
    fn a_new_session_asks_again_and_ignores_answers_of_the_old_one() {
        let mut book = SubscriptionBook::default();
        book.requested(&[("a".into(), 1)]);
        book.sent(1);
        book.start_over();
        assert!(book.answered(1, &[Grant::Granted(1)]).is_empty());
        let wanted = filters(&[("a", 1)]);
        assert_eq!(book.change_to(&wanted).subscribe, vec![("a".into(), 1)]);
        book.requested(&[("a".into(), 1)]);
        book.sent(1);
        assert_eq!(book.answered(1, &[Grant::Refused(None)]).len(), 1);
        assert_eq!(refused(&book), vec!["a".to_string()]);
    }

    #[test]
    fn a_removed_filter_is_forgotten_even_if_its_answer_comes_later() {
        let mut book = SubscriptionBook::default();
        book.requested(&[("a".into(), 1), ("b".into(), 1)]);
        book.sent(3);
        book.removed("b");
        assert_eq!(
            book.answered(3, &[Grant::Granted(1), Grant::Granted(1)])
                .len(),
            1
        );
        assert_eq!(book.list().len(), 1);
    }
}
