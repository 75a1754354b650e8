//! The key table: every client key the gateway knows, from the config file
//! (by its secret) and from the key store (by the SHA-256 of its secret),
//! with each key's runtime state (limiter counters, last use) kept by name
//! across rebuilds. The request path reads one `ArcSwap` and never touches
//! the database; a config reload or a store change publishes a new table.

use arc_swap::ArcSwap;
use filters::auth::{ClientKey, KeySource};
use filters::limits::Counters;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// What is kept of a key while the gateway runs, whatever reloads.
#[derive(Debug, Default)]
pub struct KeyRuntime {
    /// Unix seconds of the last request (0: none since start).
    pub last_used: AtomicI64,
    /// Memory-backend limiter counters (also the fallback while Redis is
    /// unreachable).
    pub counters: Arc<Mutex<Counters>>,
}

impl KeyRuntime {
    pub fn touch(&self, now: i64) {
        // Most requests find the second already written: a load, no store.
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// A key as the request path finds it.
#[derive(Debug)]
pub struct KeyEntry {
    pub key: Arc<ClientKey>,
    pub runtime: Arc<KeyRuntime>,
    /// The key's name as its limiter subject names it, shared rather than
    /// copied per request.
    pub subject_name: Arc<str>,
    /// SHA-256 of the key's secret: a key rotated under the same name is
    /// told apart by it (admin UI sessions), and it is no secret itself.
    pub secret_hash: [u8; 32],
}

impl std::ops::Deref for KeyEntry {
    type Target = ClientKey;
    fn deref(&self) -> &ClientKey {
        &self.key
    }
}

/// A store key as the store hands it over.
#[derive(Debug, Clone)]
pub struct StoreKey {
    pub hash: [u8; 32],
    pub key: Arc<ClientKey>,
}

#[derive(Default)]
struct Table {
    /// Config keys by their secret.
    by_secret: HashMap<String, Arc<KeyEntry>>,
    /// Store keys by the SHA-256 of their secret.
    by_hash: HashMap<[u8; 32], Arc<KeyEntry>>,
    /// Every key by name; config keys win a clash (a store key shadowed
    /// by a config key of the same name is not served).
    by_name: HashMap<String, Arc<KeyEntry>>,
}

#[derive(Default)]
struct Sources {
    config: Vec<(String, Arc<ClientKey>)>,
    store: Vec<StoreKey>,
    runtimes: HashMap<String, Arc<KeyRuntime>>,
}

#[derive(Default)]
pub struct Keys {
    table: ArcSwap<Table>,
    sources: Mutex<Sources>,
}

impl Keys {
    /// The key a client's credential names, if any.
    pub fn find(&self, credential: &str) -> Option<Arc<KeyEntry>> {
        let table = self.table.load();
        if let Some(e) = table.by_secret.get(credential) {
            return Some(e.clone());
        }
        // Only minted keys are in the store: other strings skip the hash.
        if !filters::auth::is_minted(credential) {
            return None;
        }
        table
            .by_hash
            .get(&filters::auth::key_hash(credential))
            .cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<KeyEntry>> {
        self.table.load().by_name.get(name).cloned()
    }

    /// How many keys (config and store) are known.
    pub fn len(&self) -> usize {
        self.table.load().by_name.len()
    }

    /// Every key, config keys first, each group by name.
    pub fn all(&self) -> Vec<Arc<KeyEntry>> {
        let mut v: Vec<_> = self.table.load().by_name.values().cloned().collect();
        v.sort_by(|a, b| {
            (a.key.source != KeySource::Config, &a.key.name)
                .cmp(&(b.key.source != KeySource::Config, &b.key.name))
        });
        v
    }

    /// Publishes the config's keys (at start and on every reload).
    pub fn set_config(&self, keys: &HashMap<String, Arc<ClientKey>>) {
        let mut sources = lock(&self.sources);
        sources.config = keys.iter().map(|(s, k)| (s.clone(), k.clone())).collect();
        self.publish(&mut sources);
    }

    /// Publishes the store's keys (whenever the store changed).
    pub fn set_store(&self, keys: Vec<StoreKey>) {
        let mut sources = lock(&self.sources);
        sources.store = keys;
        self.publish(&mut sources);
    }

    fn publish(&self, sources: &mut Sources) {
        let mut table = Table::default();
        let mut runtimes = HashMap::new();
        let mut entry = |key: &Arc<ClientKey>, secret_hash: [u8; 32]| {
            let runtime = sources.runtimes.get(&key.name).cloned().unwrap_or_default();
            runtimes.insert(key.name.clone(), runtime.clone());
            Arc::new(KeyEntry {
                key: key.clone(),
                runtime,
                subject_name: Arc::from(key.name.as_str()),
                secret_hash,
            })
        };
        for (secret, key) in &sources.config {
            let e = entry(key, filters::auth::key_hash(secret));
            table.by_name.insert(key.name.clone(), e.clone());
            table.by_secret.insert(secret.clone(), e);
        }
        for s in &sources.store {
            if table.by_name.contains_key(&s.key.name) {
                log::warn!(
                    "store key '{}' is not served: a config key has the same name",
                    s.key.name
                );
                continue;
            }
            let e = entry(&s.key, s.hash);
            table.by_name.insert(s.key.name.clone(), e.clone());
            table.by_hash.insert(s.hash, e);
        }
        // Runtime state of keys that are gone goes with them.
        sources.runtimes = runtimes;
        self.table.store(Arc::new(table));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filters::auth::KeySpec;

    fn key(name: &str, source: KeySource) -> Arc<ClientKey> {
        Arc::new(ClientKey::from_spec(KeySpec::named(name), source, None).unwrap())
    }

    #[test]
    fn finds_config_keys_by_secret_and_store_keys_by_hash() {
        let keys = Keys::default();
        keys.set_config(&[("sk-config-key".to_owned(), key("cfg", KeySource::Config))].into());
        let minted = "sk-ms-0123456789abcdefghijABCDEFGHIJ01";
        assert!(filters::auth::is_minted(minted));
        keys.set_store(vec![StoreKey {
            hash: filters::auth::key_hash(minted),
            key: key("runtime", KeySource::Store),
        }]);
        assert_eq!(keys.find("sk-config-key").unwrap().key.name, "cfg");
        assert_eq!(keys.find(minted).unwrap().key.name, "runtime");
        assert!(keys
            .find("sk-ms-0123456789abcdefghijABCDEFGHIJ02")
            .is_none());
        assert_eq!(
            keys.all()
                .iter()
                .map(|e| e.key.name.as_str())
                .collect::<Vec<_>>(),
            ["cfg", "runtime"]
        );
    }

    #[test]
    fn runtime_state_survives_rebuilds_and_goes_with_its_key() {
        let keys = Keys::default();
        let minted = "sk-ms-0123456789abcdefghijABCDEFGHIJ01";
        let store = |names: &[&str]| {
            names
                .iter()
                .map(|n| StoreKey {
                    hash: filters::auth::key_hash(&format!("{minted}{n}")),
                    key: key(n, KeySource::Store),
                })
                .collect::<Vec<_>>()
        };
        keys.set_store(store(&["a", "b"]));
        keys.by_name("a").unwrap().runtime.touch(42);
        keys.set_store(store(&["a"]));
        keys.set_config(&HashMap::new());
        assert_eq!(
            keys.by_name("a")
                .unwrap()
                .runtime
                .last_used
                .load(Ordering::Relaxed),
            42
        );
        assert!(keys.by_name("b").is_none());
        keys.set_store(store(&["b"]));
        keys.set_store(store(&["a"]));
        assert_eq!(
            keys.by_name("a")
                .unwrap()
                .runtime
                .last_used
                .load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn a_config_key_shadows_a_store_key_of_the_same_name() {
        let keys = Keys::default();
        keys.set_config(&[("sk-config-key".to_owned(), key("same", KeySource::Config))].into());
        let minted = "sk-ms-0123456789abcdefghijABCDEFGHIJ01";
        keys.set_store(vec![StoreKey {
            hash: filters::auth::key_hash(minted),
            key: key("same", KeySource::Store),
        }]);
        assert!(keys.find(minted).is_none());
        assert_eq!(keys.by_name("same").unwrap().key.source, KeySource::Config);
    }
}
