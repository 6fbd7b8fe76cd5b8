//! Device identifiers, sensor names and topics as the writer keeps them: one shared copy of each
//! name with its hash worked out once, so the many map keys built from them hash and compare like
//! integers.

use std::hash::Hash;
use std::sync::Arc;

use foldhash::HashMap;

/// A device identifier or sensor name, shared rather than copied, with its hash worked out once:
/// the same few names recur in every batch, and keys built from them are hashed, cloned and
/// compared many times per message. Equal text means equal names, whichever copy holds it.
#[derive(Clone)]
pub struct Name {
    hash: u64,
    text: Arc<str>,
}

/// One seed per process: equal text must give equal hashes in every map, and names come from
/// devices, so the seed must not be one an attacker could know in advance.
static NAME_HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

impl Name {
    fn with_text(text: Arc<str>) -> Name {
        use std::hash::BuildHasher;
        Name {
            hash: NAME_HASHER.hash_one(&*text),
            text,
        }
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name::with_text(Arc::from(text))
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// By text, so rows sorted by key come out in the same order in every writer.
impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.text, f)
    }
}

/// (site, gateway identifier).
pub type GatewayKey = (i32, Name);
/// (site, gateway identifier, datalogger identifier).
pub type DataloggerKey = (i32, Name, Name);
/// (site, gateway identifier, datalogger identifier, sensor name).
pub type SensorKey = (i32, Name, Name, Name);

/// One shared copy of each name seen recently, so folding a message allocates no strings for
/// names it has seen before.
#[derive(Debug, Default)]
pub struct Names {
    known: HashMap<Arc<str>, Name>,
}

impl Names {
    /// The shared copy of `name`, made on first sight.
    pub fn intern(&mut self, name: &str) -> Name {
        if let Some(known) = self.known.get(name) {
            return known.clone();
        }
        if self.known.len() >= NAMES_LIMIT {
            self.known.clear();
        }
        let shared = Name::from(name);
        self.known.insert(shared.text.clone(), shared.clone());
        shared
    }

    /// The shared copy of `name` if there is one; never allocates.
    pub fn get(&self, name: &str) -> Option<Name> {
        self.known.get(name).cloned()
    }
}

/// Names remembered before the set starts afresh, so a flood of unique names cannot grow memory
/// forever.
const NAMES_LIMIT: usize = 200_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_shared_once_seen_and_found_without_copying() {
        let mut names = Names::default();
        assert!(names.get("dl-1").is_none());
        let first = names.intern("dl-1");
        let again = names.intern(&String::from("dl-1"));
        assert!(
            Arc::ptr_eq(&first.text, &again.text),
            "one shared copy per name"
        );
        let found = names.get("dl-1").expect("known after interning");
        assert!(Arc::ptr_eq(&first.text, &found.text));
        assert_eq!(first, Name::from("dl-1"), "equal text, equal names");
        assert_ne!(first, Name::from("dl-2"));
        assert_eq!(&*names.intern("dl-2"), "dl-2");
    }
}
