//! The reconcile decision: desired clients (from the database) against running ones. Pure, so
//! every case is unit-tested without a broker.

use std::collections::BTreeMap;

use crate::connection::{ConnectionSettings, LiveSettings};

/// A client that should run: an active connection of an active site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredClient {
    pub site_id: i32,
    pub settings: ConnectionSettings,
    pub live: LiveSettings,
}

/// What the supervisor knows of a running client.
#[derive(Debug, Clone, Copy)]
pub struct RunningView<'a> {
    pub settings: &'a ConnectionSettings,
    pub live: &'a LiveSettings,
    /// The task ended on its own (it should not have): treat as crashed.
    pub finished: bool,
}

/// What to do with one client, named by its key (a site's shard in the supervisor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action<K> {
    Start(K),
    Stop(K),
    /// New session settings (or a crashed task): stop the old client, start a new one.
    Restart(K),
    /// Same session, new patterns, discovery filter or silence limit: re-subscribe and swap
    /// the router.
    UpdateTopics(K),
}

pub fn plan<K: Ord + Copy>(
    desired: &BTreeMap<K, DesiredClient>,
    running: &BTreeMap<K, RunningView<'_>>,
) -> Vec<Action<K>> {
    let mut actions = Vec::new();
    for (site_id, wanted) in desired {
        match running.get(site_id) {
            None => actions.push(Action::Start(*site_id)),
            Some(view) if view.finished || *view.settings != wanted.settings => {
                actions.push(Action::Restart(*site_id))
            }
            Some(view) if *view.live != wanted.live => actions.push(Action::UpdateTopics(*site_id)),
            Some(_) => {}
        }
    }
    for site_id in running.keys() {
        if !desired.contains_key(site_id) {
            actions.push(Action::Stop(*site_id));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::TopicSpec;

    /// The live settings of a site with these patterns and nothing else.
    fn live(topics: Vec<TopicSpec>) -> LiveSettings {
        LiveSettings {
            topics,
            ..LiveSettings::default()
        }
    }

    fn settings(site_id: i32) -> ConnectionSettings {
        ConnectionSettings {
            shard: 0,
            shards: 1,
            client_cert_file: None,
            client_key_file: None,
            last_will: None,
            protocol: crate::connection::Protocol::V3_1_1,
            session_expiry_secs: None,
            connection_id: site_id * 10,
            host: "127.0.0.1".into(),
            port: 1883,
            username: None,
            password: None,
            client_id: format!("client-{site_id}"),
            use_tls: false,
            ca_file: None,
            keepalive_secs: 30,
            clean_session: false,
        }
    }

    fn topic(id: i32, pattern: &str) -> TopicSpec {
        TopicSpec {
            id,
            pattern: pattern.into(),
            parser: "flat_telemetry".into(),
            qos: 1,
            priority: 0,
            is_active: true,
        }
    }

    fn desired(
        entries: Vec<(i32, ConnectionSettings, Vec<TopicSpec>)>,
    ) -> BTreeMap<i32, DesiredClient> {
        entries
            .into_iter()
            .map(|(site_id, settings, topics)| {
                (
                    site_id,
                    DesiredClient {
                        site_id,
                        settings,
                        live: live(topics),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn nothing_running_starts_everything_desired() {
        let wanted = desired(vec![(1, settings(1), vec![]), (2, settings(2), vec![])]);
        assert_eq!(
            plan(&wanted, &BTreeMap::new()),
            vec![Action::Start(1), Action::Start(2)]
        );
    }

    #[test]
    fn unwanted_clients_stop() {
        let nothing = LiveSettings::default();
        let running_settings = settings(3);
        let running = BTreeMap::from([(
            3,
            RunningView {
                settings: &running_settings,
                live: &nothing,
                finished: false,
            },
        )]);
        assert_eq!(plan(&BTreeMap::new(), &running), vec![Action::Stop(3)]);
    }

    #[test]
    fn unchanged_clients_are_left_alone() {
        let topics = vec![topic(1, "a/#")];
        let wanted = desired(vec![(1, settings(1), topics.clone())]);
        let running_settings = settings(1);
        let running_live = live(topics);
        let running = BTreeMap::from([(
            1,
            RunningView {
                settings: &running_settings,
                live: &running_live,
                finished: false,
            },
        )]);
        assert!(plan(&wanted, &running).is_empty());
    }

    #[test]
    fn changed_session_settings_restart() {
        for change in [
            |s: &mut ConnectionSettings| s.host = "broker.example".into(),
            |s: &mut ConnectionSettings| s.port = 8883,
            |s: &mut ConnectionSettings| s.password = Some("new".into()),
            |s: &mut ConnectionSettings| s.use_tls = true,
            |s: &mut ConnectionSettings| s.client_id = "other".into(),
            |s: &mut ConnectionSettings| s.keepalive_secs = 60,
        ] {
            let nothing = LiveSettings::default();
            let mut changed = settings(1);
            change(&mut changed);
            let wanted = desired(vec![(1, changed, vec![])]);
            let running_settings = settings(1);
            let running = BTreeMap::from([(
                1,
                RunningView {
                    settings: &running_settings,
                    live: &nothing,
                    finished: false,
                },
            )]);
            assert_eq!(plan(&wanted, &running), vec![Action::Restart(1)]);
        }
    }

    #[test]
    fn changed_patterns_resubscribe_without_restart() {
        let wanted = desired(vec![(
            1,
            settings(1),
            vec![topic(1, "a/#"), topic(2, "b/+")],
        )]);
        let running_settings = settings(1);
        let running_live = live(vec![topic(1, "a/#")]);
        let running = BTreeMap::from([(
            1,
            RunningView {
                settings: &running_settings,
                live: &running_live,
                finished: false,
            },
        )]);
        assert_eq!(plan(&wanted, &running), vec![Action::UpdateTopics(1)]);
    }

    #[test]
    fn a_crashed_task_is_restarted() {
        let nothing = LiveSettings::default();
        let wanted = desired(vec![(1, settings(1), vec![])]);
        let running_settings = settings(1);
        let running = BTreeMap::from([(
            1,
            RunningView {
                settings: &running_settings,
                live: &nothing,
                finished: true,
            },
        )]);
        assert_eq!(plan(&wanted, &running), vec![Action::Restart(1)]);
    }

    #[test]
    fn a_thousand_clients_plan_in_one_pass() {
        let nothing = LiveSettings::default();
        let wanted = desired(
            (0..1000)
                .map(|site| (site, settings(site), vec![]))
                .collect(),
        );
        let running_settings: Vec<ConnectionSettings> = (500..1500).map(settings).collect();
        let running: BTreeMap<i32, RunningView<'_>> = running_settings
            .iter()
            .enumerate()
            .map(|(index, settings)| {
                (
                    500 + index as i32,
                    RunningView {
                        settings,
                        live: &nothing,
                        finished: false,
                    },
                )
            })
            .collect();
        let actions = plan(&wanted, &running);
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Start(_)))
                .count(),
            500
        );
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Stop(_)))
                .count(),
            500
        );
    }

    #[test]
    fn a_new_discovery_filter_or_silence_limit_resubscribes_without_restart() {
        let running_settings = settings(1);
        let running_live = live(vec![topic(1, "a/#")]);
        for change in [
            |l: &mut LiveSettings| l.discovery_filter = Some("plant/#".into()),
            |l: &mut LiveSettings| l.max_silence_secs = Some(60),
        ] {
            let mut changed = running_live.clone();
            change(&mut changed);
            let wanted = BTreeMap::from([(
                1,
                DesiredClient {
                    site_id: 1,
                    settings: settings(1),
                    live: changed,
                },
            )]);
            let running = BTreeMap::from([(
                1,
                RunningView {
                    settings: &running_settings,
                    live: &running_live,
                    finished: false,
                },
            )]);
            assert_eq!(plan(&wanted, &running), vec![Action::UpdateTopics(1)]);
        }
    }
}
