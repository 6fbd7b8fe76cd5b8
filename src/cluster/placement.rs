//! Which connection shards this instance should own: an even spread over the live instances
//! (the busiest owns at most one more than the least busy) that moves as few shards as it can
//! and settles instead of flapping. Pure: the lease manager feeds it what the database says and
//! carries out the answer.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;

/// One client of a connection: (connection id, shard number).
pub type ShardKey = (i32, i32);

/// What the database says, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot<'a> {
    pub me: &'a str,
    /// Instances whose heartbeat is fresh, this one included.
    pub instances: BTreeSet<&'a str>,
    /// Every shard that should run (active connections of active sites).
    pub wanted: BTreeSet<ShardKey>,
    /// Unexpired leases and their owners.
    pub owners: BTreeMap<ShardKey, &'a str>,
}

/// What this instance should do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Free shards to take.
    pub take: Vec<ShardKey>,
    /// Owned shards to give up: no longer wanted, or more than this instance's share.
    pub release: Vec<ShardKey>,
}

/// How many shards each live instance should own: `base` each, and `base + 1` for the `rest`
/// instances already owning the most (ties by id), so a balanced spread stays as it is.
fn targets(snapshot: &Snapshot<'_>) -> BTreeMap<String, usize> {
    let count = snapshot.instances.len().max(1);
    let base = snapshot.wanted.len() / count;
    let rest = snapshot.wanted.len() % count;
    let mut owned: Vec<(usize, &str)> = snapshot
        .instances
        .iter()
        .map(|instance| {
            let held = snapshot
                .owners
                .iter()
                .filter(|(key, owner)| *owner == instance && snapshot.wanted.contains(key))
                .count();
            (held, *instance)
        })
        .collect();
    owned.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    owned
        .into_iter()
        .enumerate()
        .map(|(rank, (_, instance))| (instance.to_string(), base + usize::from(rank < rest)))
        .collect()
}

/// A number that differs between instances for the same shard, so instances starting at once
/// reach for different free shards instead of all racing for the first.
fn preference(me: &str, key: ShardKey) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one((me, key))
}

pub fn place(snapshot: &Snapshot<'_>) -> Placement {
    let me = snapshot.me;
    let mine: BTreeSet<ShardKey> = snapshot
        .owners
        .iter()
        .filter(|(_, owner)| **owner == me)
        .map(|(key, _)| *key)
        .collect();
    let mut placement = Placement::default();
    // Shards no longer wanted go, whatever the counts.
    placement.release.extend(
        mine.iter()
            .filter(|key| !snapshot.wanted.contains(key))
            .copied(),
    );
    let kept: Vec<ShardKey> = mine
        .iter()
        .filter(|key| snapshot.wanted.contains(key))
        .copied()
        .collect();
    let target = targets(snapshot).get(me).copied().unwrap_or(0);
    let connections_of = |keys: &[ShardKey]| -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for (connection, _) in keys {
            *counts.entry(*connection).or_insert(0) += 1;
        }
        counts
    };
    if kept.len() > target {
        // Give up shards of connections this instance holds several of first, so one
        // connection's shards spread over instances; then the highest keys.
        let counts = connections_of(&kept);
        let mut candidates = kept.clone();
        candidates.sort_by(|a, b| counts[&b.0].cmp(&counts[&a.0]).then_with(|| b.cmp(a)));
        placement
            .release
            .extend(candidates.into_iter().take(kept.len() - target));
    } else if kept.len() < target {
        let counts = connections_of(&kept);
        let mut free: Vec<ShardKey> = snapshot
            .wanted
            .iter()
            .filter(|key| {
                snapshot
                    .owners
                    .get(key)
                    .is_none_or(|owner| !snapshot.instances.contains(owner))
            })
            .copied()
            .collect();
        // Shards of connections this instance holds none of first.
        free.sort_by_key(|key| {
            (
                counts.get(&key.0).copied().unwrap_or(0),
                preference(me, *key),
            )
        });
        placement
            .take
            .extend(free.into_iter().take(target - kept.len()));
    }
    placement.take.sort_unstable();
    placement.release.sort_unstable();
    placement
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs every instance's decision in turn, as the lease loops do, until nothing changes;
    /// returns the owners and how many shards changed hands.
    fn settle(
        instances: &[&str],
        wanted: &BTreeSet<ShardKey>,
        owners: &mut BTreeMap<ShardKey, String>,
    ) -> usize {
        let mut moves = 0;
        for _round in 0..20 {
            let mut changed = false;
            for me in instances {
                let view: BTreeMap<ShardKey, &str> = owners
                    .iter()
                    .map(|(key, owner)| (*key, owner.as_str()))
                    .collect();
                let snapshot = Snapshot {
                    me,
                    instances: instances.iter().copied().collect(),
                    wanted: wanted.clone(),
                    owners: view,
                };
                let placement = place(&snapshot);
                for key in &placement.release {
                    owners.remove(key);
                    changed = true;
                }
                for key in &placement.take {
                    // A lease taken from an instance that is gone counts as a move too.
                    if owners.insert(*key, me.to_string()).is_some() {
                        moves += 1;
                    }
                    changed = true;
                }
                moves += placement
                    .release
                    .iter()
                    .filter(|key| wanted.contains(key))
                    .count();
            }
            if !changed {
                return moves;
            }
        }
        panic!("placement did not settle: {owners:?}");
    }

    fn counts(instances: &[&str], owners: &BTreeMap<ShardKey, String>) -> Vec<usize> {
        instances
            .iter()
            .map(|instance| owners.values().filter(|owner| owner == instance).count())
            .collect()
    }

    fn shards(connections: i32, per_connection: i32) -> BTreeSet<ShardKey> {
        (1..=connections)
            .flat_map(|connection| (0..per_connection).map(move |shard| (connection, shard)))
            .collect()
    }

    #[test]
    fn twelve_connections_spread_four_four_four() {
        let instances = ["a", "b", "c"];
        let wanted = shards(12, 1);
        let mut owners = BTreeMap::new();
        settle(&instances, &wanted, &mut owners);
        assert_eq!(counts(&instances, &owners), vec![4, 4, 4]);
        assert_eq!(owners.len(), 12);
    }

    #[test]
    fn a_balanced_spread_stays_as_it_is() {
        let instances = ["a", "b", "c"];
        let wanted = shards(13, 1);
        let mut owners = BTreeMap::new();
        settle(&instances, &wanted, &mut owners);
        let before = owners.clone();
        assert_eq!(settle(&instances, &wanted, &mut owners), 0);
        assert_eq!(owners, before);
        let mut sorted = counts(&instances, &owners);
        sorted.sort_unstable();
        assert_eq!(sorted, vec![4, 4, 5]);
    }

    #[test]
    fn a_joining_instance_takes_only_its_share_and_a_leaving_one_hands_over_only_its_own() {
        let wanted = shards(12, 1);
        let mut owners = BTreeMap::new();
        settle(&["a", "b"], &wanted, &mut owners);
        assert_eq!(counts(&["a", "b"], &owners), vec![6, 6]);
        // c joins: exactly four shards move, two from each.
        let moves = settle(&["a", "b", "c"], &wanted, &mut owners);
        assert_eq!(counts(&["a", "b", "c"], &owners), vec![4, 4, 4]);
        assert_eq!(moves, 4);
        // b leaves (its leases expire): its four go, nothing else moves.
        let before = owners.clone();
        let moves = settle(&["a", "c"], &wanted, &mut owners);
        assert_eq!(counts(&["a", "c"], &owners), vec![6, 6]);
        assert_eq!(moves, 4);
        for (key, owner) in &before {
            if owner != "b" {
                assert_eq!(&owners[key], owner, "{key:?} moved needlessly");
            }
        }
    }

    #[test]
    fn the_shards_of_one_connection_go_to_different_instances() {
        let instances = ["a", "b", "c"];
        let wanted = shards(1, 3);
        let mut owners = BTreeMap::new();
        settle(&instances, &wanted, &mut owners);
        let mut holders: Vec<&String> = owners.values().collect();
        holders.sort();
        holders.dedup();
        assert_eq!(holders.len(), 3, "{owners:?}");
    }

    #[test]
    fn unwanted_shards_are_released_and_dead_owners_do_not_count() {
        let wanted: BTreeSet<ShardKey> = [(1, 0), (2, 0)].into_iter().collect();
        let owners: BTreeMap<ShardKey, &str> = [((1, 0), "a"), ((3, 0), "a"), ((2, 0), "gone")]
            .into_iter()
            .collect();
        let placement = place(&Snapshot {
            me: "a",
            instances: ["a"].into_iter().collect(),
            wanted,
            owners,
        });
        assert_eq!(placement.release, vec![(3, 0)]);
        assert_eq!(placement.take, vec![(2, 0)]);
    }

    #[test]
    fn nothing_wanted_means_nothing_taken() {
        let placement = place(&Snapshot {
            me: "a",
            instances: ["a", "b"].into_iter().collect(),
            ..Snapshot::default()
        });
        assert_eq!(placement, Placement::default());
    }
}
