//! Discovery: every topic seen, folded per batch into one counter row per (site, topic) so the
//! database sees one upsert per topic per batch, not one per message.

use chrono::{DateTime, Utc};

use super::Prepared;

#[derive(Debug, Clone, PartialEq)]
pub struct TopicTally {
    pub site_id: i32,
    pub topic: String,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub sample: String,
    pub is_processable: bool,
    pub mqtt_topic_id: Option<i32>,
}

impl TopicTally {
    /// Folds a later tally of the same topic in: counts add up, the latest sample wins.
    pub fn absorb(&mut self, later: TopicTally) {
        self.count += later.count;
        self.first_seen = self.first_seen.min(later.first_seen);
        if later.last_seen >= self.last_seen {
            self.last_seen = later.last_seen;
            self.sample = later.sample;
            self.is_processable = later.is_processable;
            self.mqtt_topic_id = later.mqtt_topic_id;
        }
    }
}

pub fn tally(batch: &[Prepared], sample_bytes: usize) -> Vec<TopicTally> {
    // Per topic: its tally and the latest message, whose sample is taken once at the end.
    let mut tallies: foldhash::HashMap<(i32, &str), (TopicTally, &Prepared)> =
        foldhash::HashMap::default();
    for message in batch {
        let key = (message.site_id, message.topic.as_str());
        let topic_id = message.route.as_ref().map(|(id, _)| *id);
        match tallies.get_mut(&key) {
            Some((tally, latest)) => {
                tally.count += 1;
                tally.first_seen = tally.first_seen.min(message.received_at);
                if message.received_at >= tally.last_seen {
                    tally.last_seen = message.received_at;
                    tally.is_processable = message.is_processable();
                    tally.mqtt_topic_id = topic_id;
                    *latest = message;
                }
            }
            None => {
                let tally = TopicTally {
                    site_id: message.site_id,
                    topic: message.topic.clone(),
                    count: 1,
                    first_seen: message.received_at,
                    last_seen: message.received_at,
                    sample: String::new(),
                    is_processable: message.is_processable(),
                    mqtt_topic_id: topic_id,
                };
                tallies.insert(key, (tally, message));
            }
        }
    }
    tallies
        .into_values()
        .map(|(mut tally, latest)| {
            tally.sample = latest.sample(sample_bytes);
            tally
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Outcome;
    use chrono::Duration;

    fn message(site_id: i32, topic: &str, payload: &str, at: DateTime<Utc>) -> Prepared {
        Prepared {
            site_id,
            topic: topic.into(),
            received_at: at,
            payload: payload.as_bytes().to_vec(),
            route: None,
            outcome: Outcome::Unrouted,
            ack: None,
        }
    }

    #[test]
    fn counts_fold_per_site_and_topic_and_keep_the_latest_sample() {
        let start = Utc::now();
        let batch = vec![
            message(1, "a", "first", start),
            message(1, "a", "second", start + Duration::seconds(1)),
            message(2, "a", "other site", start),
            message(1, "b", "b", start),
        ];
        let tallies = tally(&batch, 64);
        assert_eq!(tallies.len(), 3);
        let a = tallies
            .iter()
            .find(|t| t.site_id == 1 && t.topic == "a")
            .expect("tally for a");
        assert_eq!(a.count, 2);
        assert_eq!(a.sample, "second");
        assert_eq!(a.first_seen, start);
        assert_eq!(a.last_seen, start + Duration::seconds(1));
    }
}
