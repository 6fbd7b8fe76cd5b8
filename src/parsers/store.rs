//! The parser registry in force, shared by every connection and the API; swapped whole on reload.

use std::path::Path;
use std::sync::{Arc, RwLock};

use super::{LoadError, Registry};

/// The parser registry in force. Readers take a cheap snapshot; a reload swaps it whole, so a
/// message is always parsed by one consistent registry.
#[derive(Clone)]
pub struct ParserStore {
    current: Arc<RwLock<Arc<Registry>>>,
}

impl ParserStore {
    pub fn new(registry: Registry) -> ParserStore {
        ParserStore {
            current: Arc::new(RwLock::new(Arc::new(registry))),
        }
    }

    pub fn current(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the folder again; on any error the registry in force stays as it was.
    pub fn reload(&self, directory: &Path) -> Result<Arc<Registry>, Vec<LoadError>> {
        let registry = Arc::new(Registry::load(directory)?);
        match self.current.write() {
            Ok(mut guard) => *guard = registry.clone(),
            Err(poisoned) => *poisoned.into_inner() = registry.clone(),
        }
        Ok(registry)
    }
}
