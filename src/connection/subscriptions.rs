//! Which filters a session subscribes to: the change between the filters wanted (from the site's
//! patterns) and those already asked of the broker. Pure, so it is unit-tested without a broker.

use std::collections::BTreeMap;

/// Filters with the QoS asked for each.
pub type Filters = BTreeMap<String, u8>;

/// What to ask of the broker to go from `subscribed` to `wanted`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// New filters, and filters whose QoS changed (subscribing again replaces the QoS).
    pub subscribe: Vec<(String, u8)>,
    pub unsubscribe: Vec<String>,
}

impl SubscriptionChange {
    pub fn between(subscribed: &Filters, wanted: &Filters) -> SubscriptionChange {
        SubscriptionChange {
            subscribe: wanted
                .iter()
                .filter(|(filter, qos)| subscribed.get(*filter) != Some(qos))
                .map(|(filter, qos)| (filter.clone(), *qos))
                .collect(),
            unsubscribe: subscribed
                .keys()
                .filter(|filter| !wanted.contains_key(*filter))
                .cloned()
                .collect(),
        }
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

    #[test]
    fn a_fresh_session_subscribes_to_everything() {
        let wanted = filters(&[("a/+", 1), ("b/#", 0)]);
        let change = SubscriptionChange::between(&Filters::new(), &wanted);
        assert_eq!(change.subscribe, vec![("a/+".into(), 1), ("b/#".into(), 0)]);
        assert!(change.unsubscribe.is_empty());
    }

    #[test]
    fn only_new_changed_and_dropped_filters_are_asked_for() {
        let subscribed = filters(&[("a/+", 1), ("b/#", 0), ("c", 1)]);
        let wanted = filters(&[("a/+", 1), ("b/#", 1), ("d", 2)]);
        let change = SubscriptionChange::between(&subscribed, &wanted);
        assert_eq!(change.subscribe, vec![("b/#".into(), 1), ("d".into(), 2)]);
        assert_eq!(change.unsubscribe, vec!["c".to_string()]);
        assert_eq!(
            SubscriptionChange::between(&wanted, &wanted),
            SubscriptionChange::default()
        );
    }
}
