//! Discovery: every topic seen, folded per batch into one counter row per (site, topic) so the
//! database sees one upsert per topic per batch, not one per message.

use chrono::{DateTime, Utc};

use super::names::{Name, Names};
use super::Prepared;

#[derive(Debug, Clone, PartialEq)]
pub struct TopicTally {
    pub site_id: i32,
    pub topic: Name,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub sample: Sample,
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

/// The start of a topic's latest payload. Kept as bytes and made into text only when it is
/// written: most samples are replaced by a later one before the next flush.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Sample {
    pub fn of(payload: &[u8], max_bytes: usize) -> Sample {
        Sample {
            bytes: payload[..payload.len().min(max_bytes)].to_vec(),
            truncated: payload.len() > max_bytes,
        }
    }

    /// The sample as text: invalid UTF-8 replaced, an ellipsis if the payload was longer.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        // PostgreSQL text cannot hold NUL; the whole payload stays byte-exact in the parsing log.
        if text.contains('\0') {
            text = text.replace('\0', "\u{FFFD}");
        }
        if self.truncated {
            text.push('…');
        }
        text
    }
}

/// One tally per (site, topic) of the batch; topic names are shared through `names`.
pub fn tally(batch: &[Prepared], sample_bytes: usize, names: &mut Names) -> Vec<TopicTally> {
    // Per topic: how many, since when, and the latest message, which gives the rest.
    let mut tallies: foldhash::HashMap<(i32, &str), (i64, DateTime<Utc>, &Prepared)> =
        foldhash::HashMap::with_capacity_and_hasher(batch.len(), Default::default());
    for message in batch {
        let key = (message.site_id, message.topic.as_str());
        match tallies.get_mut(&key) {
            Some((count, first_seen, latest)) => {
                *count += 1;
                *first_seen = (*first_seen).min(message.received_at);
                if message.received_at >= latest.received_at {
                    *latest = message;
                }
            }
            None => {
                tallies.insert(key, (1, message.received_at, message));
            }
        }
    }
    tallies
        .into_values()
        .map(|(count, first_seen, latest)| TopicTally {
            site_id: latest.site_id,
            topic: names.intern(&latest.topic),
            count,
            first_seen,
            last_seen: latest.received_at,
            sample: Sample::of(&latest.payload, sample_bytes),
            is_processable: latest.is_processable(),
            mqtt_topic_id: latest.route.as_ref().map(|(id, _)| *id),
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
            retained: false,
            payload: payload.as_bytes().to_vec().into(),
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
        let tallies = tally(&batch, 64, &mut Names::default());
        assert_eq!(tallies.len(), 3);
        let a = tallies
            .iter()
            .find(|t| t.site_id == 1 && &*t.topic == "a")
            .expect("tally for a");
        assert_eq!(a.count, 2);
        assert_eq!(a.sample.text(), "second");
        assert_eq!(a.first_seen, start);
        assert_eq!(a.last_seen, start + Duration::seconds(1));
    }

    #[test]
    fn a_sample_never_holds_nul() {
        let sample = Sample::of(&[0xff, 0xfe, 0x00], 16);
        assert!(!sample.text().contains('\0'));
        assert_eq!(sample.text(), "\u{FFFD}\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn a_long_payload_is_cut_and_marked() {
        let sample = Sample::of(&[b'x'; 40], 16);
        assert_eq!(sample.text(), format!("{}…", "x".repeat(16)));
        assert_eq!(Sample::of(b"short", 16).text(), "short");
    }
}
